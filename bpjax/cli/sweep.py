"""``bpjax sweep``: many seeds and learning rates at once under ``vmap`` (:mod:`bpjax.training.sweep`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..io import check_output_dir
from ..training.step import GRADS
from .args import add_model_arg, default_shown, integer, positive_int

HELP = "train many seeds / learning rates at once under vmap"


def add_args(p) -> None:
    p.add_argument("--data", help="names file (default: the usual search)")
    add_model_arg(p)
    p.add_argument("--grad", choices=GRADS, default="manual", help="hand-written backward or jax.grad")
    p.add_argument("--seeds", default="16", help="a count (16: seeds 0..15) or a list (0,3,7)")
    lrs = p.add_argument("--lrs", default=None)
    lrs.describe = lambda m: f"initial learning rates, comma-separated (default {default_shown('lr', m or 'mlp')})"
    p.add_argument("--n-hidden", default=None, help="hidden sizes, comma-separated: one group each")
    steps = p.add_argument("--steps", type=integer, default=None)
    steps.describe = lambda m: f"steps per model (default {default_shown('steps', m or 'mlp')})"
    p.add_argument("--batch-size", type=integer, default=None)
    p.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        help="shard the models across N devices (default: one per CPU core, or one GPU)",
    )
    p.add_argument("--out", default="sweep", metavar="DIR", help="where sweep.json/.md/.png go (default sweep/)")


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def run(args) -> int:
    from ..training import Config
    from ..training.sweep import MAX_MODELS, markdown, sweep

    try:
        if "," not in args.seeds and not 1 <= int(args.seeds) <= MAX_MODELS:
            raise ConfigError(f"--seeds must be a count from 1 to {MAX_MODELS:,} or a list, got {args.seeds}")
        seeds = list(range(int(args.seeds))) if "," not in args.seeds else _ints(args.seeds)
        lrs = _floats(args.lrs) if args.lrs else None
        hiddens = _ints(args.n_hidden) if args.n_hidden else None
    except ValueError as e:
        raise ConfigError(f"could not read a number in --seeds/--lrs/--n-hidden ({e})") from None
    check_output_dir(args.out)
    over = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
    base = Config(args.model, grad=args.grad, **over)
    res = sweep(
        base, seeds=seeds, lrs=lrs or [base.lr], n_hiddens=hiddens, data=args.data, devices=args.devices, out=args.out
    )
    print()
    print(markdown(res))
    print(f"wrote {Path(args.out) / 'sweep.json'}, sweep.md and sweep.png")
    return 0 if all(g["diverged"] == 0 for g in res["groups"]) else 1
