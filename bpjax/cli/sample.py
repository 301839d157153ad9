"""``bpjax sample``: names from a trained run, printed as they are drawn."""

from __future__ import annotations

from .args import positive_int, seed

HELP = "sample names from a trained run"


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


def run(args) -> int:
    from ..training import load_run

    run = load_run(args.run)
    for name in run.iter_sample(n=args.n, seed=args.seed, max_len=args.max_len):  # printed as drawn
        print(name)
    return 0
