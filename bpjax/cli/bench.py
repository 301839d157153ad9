"""``bpjax bench``: training speed side by side, measured in one run (:mod:`bpjax.bench`)."""

from __future__ import annotations

from pathlib import Path

from ..bench import PEAK_GFLOPS_CPU_CORE, SECTIONS
from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text, check_output_dir
from .args import integer, model_choice

HELP = "measure training speed side by side (JSON + markdown)"


def add_args(b) -> None:
    b.add_argument("--data", help="names file (default: the usual search)")
    b.add_argument("--steps", type=integer, default=20_000, help="steps per timed repeat (default 20,000)")
    b.add_argument("--repeats", type=integer, default=5, help="repeats per row; the median is reported (default 5)")
    b.add_argument("--torch-steps", type=integer, default=2_000, help="steps per PyTorch repeat (default 2,000)")
    b.add_argument("--quick", action="store_true", help="smoke-test size: skip the largest scaling rows")
    b.add_argument("--peak-gflops", type=float, help=f"the machine's peak (default {PEAK_GFLOPS_CPU_CORE} on CPU)")
    b.add_argument(
        "--only",
        metavar="GROUPS",
        help=f"comma-separated, some of {','.join(SECTIONS)}: only these "
        "groups after the reference rows (default: all)",
    )
    b.add_argument(
        "--makemore",
        metavar="PATH",
        help="makemore.py, to time its own training step beside each of "
        "its six models (needs torch; its data loader with --num-workers 0, torch's default threads)",
    )
    b.add_argument("--text", metavar="PATH", help="the GPT's text (default tiny Shakespeare: --data shakespeare's)")
    b.add_argument(
        "--nanogpt",
        metavar="PATH",
        help="a nanoGPT checkout, to time its own train.py beside the GPT on the same configuration (needs torch)",
    )
    b.add_argument(
        "--model",
        type=model_choice,
        metavar="NAME or PATH.py:NAME",
        help="time this model's hand-written and autodiff steps after the reference rows (a model of your "
        "own: PATH.py:NAME); the other groups then run only if --only names them",
    )
    b.add_argument("--out", default="bench", metavar="DIR", help="where bench.json and bench.md go (default bench/)")


def run(args) -> int:
    from ..bench import markdown, run_bench

    if args.steps < 10 or args.repeats < 1 or args.torch_steps < 10:
        raise ConfigError("--steps and --torch-steps must be >= 10 and --repeats >= 1")
    check_output_dir(args.out)
    result = run_bench(
        data=args.data,
        steps=args.steps,
        repeats=args.repeats,
        torch_steps=args.torch_steps,
        quick=args.quick,
        peak_gflops=args.peak_gflops,
        makemore=args.makemore,
        text=args.text,
        nanogpt=args.nanogpt,
        model=args.model,
        only=None if args.only is None else {g.strip() for g in args.only.split(",") if g.strip()},
    )
    out = Path(args.out)
    atomic_write_json(out / "bench.json", result)
    md = markdown(result)
    atomic_write_text(out / "bench.md", md)
    print()
    print(md)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
