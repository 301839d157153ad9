"""``bpjax sample``: names from a trained run, or a GPT's text after a prompt, printed as drawn."""

from __future__ import annotations

import sys

from ..errors import ConfigError
from ..training.sample import DRAWS
from .args import integer, positive_int, seed

HELP = "sample names (or a text model's characters) from a trained run"
TEXT_ONLY = ("prompt", "chars", "temperature", "top_k")


def add_args(s) -> None:
    s.add_argument("--run", required=True, metavar="DIR", help="a run directory written by bpjax train")
    s.add_argument("-n", type=positive_int, default=20, help="how many names (default 20)")
    s.add_argument("--seed", type=seed, default=0, help="sampling seed (default 0)")
    s.add_argument(
        "--max-len",
        type=positive_int,
        default=50,
        help="cap on a name's length (default 50; a sequence model writes at most its T characters)",
    )
    s.add_argument(
        "--draw",
        choices=DRAWS,
        default="inverse-cdf",
        help="how a character is drawn: inverse-cdf (one uniform per name and step, the fast default) or "
        "gumbel (jax.random.categorical: bpjax 0.1.0's names for a seed)",
    )
    t = s.add_argument_group("a text model (gpt)")
    t.add_argument("--prompt", help="the text to continue (default a newline, as nanoGPT's sample.py)")
    t.add_argument("--chars", type=integer, help="how many characters to write (default 500)")
    t.add_argument("--temperature", type=float, help="below 1 sharper, above 1 flatter (default 1.0)")
    t.add_argument("--top-k", type=positive_int, help="sample among the k likeliest characters (default: all)")


def run(args) -> int:
    from ..training import load_run

    run = load_run(args.run)
    given = [k for k in TEXT_ONLY if getattr(args, k) is not None]
    if run.model.data != "text":
        if given:
            raise ConfigError(
                f"--{given[0].replace('_', '-')} is for a text model; {args.run} is a "
                f"{run.model.name} run (it samples names: -n, --max-len)"
            )
        for name in run.iter_sample(n=args.n, seed=args.seed, max_len=args.max_len, draw=args.draw):  # printed as drawn
            print(name)
        return 0
    prompt = "\n" if args.prompt is None else args.prompt
    chars = run.generate(
        prompt,
        500 if args.chars is None else args.chars,
        args.seed,
        1.0 if args.temperature is None else args.temperature,
        args.top_k,
    )
    first = next(chars, "")  # the options checked before anything is written
    sys.stdout.write(prompt + first)
    for c in chars:
        sys.stdout.write(c)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
