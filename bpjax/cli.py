"""``bpjax check | train | sample | bench``.

Every error the user can fix prints one line, ``bpjax <cmd>: error: ...``, and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import BpjaxError, ConfigError
from .io import atomic_write_json


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


# --------------------------------------------------------------------------------------------
def cmd_check(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from . import mlp
    from .data import Vocab, load_words, make_splits

    if args.batch_size < 2:
        raise ConfigError(f"--batch-size must be >= 2 (batch norm divides by n - 1), got {args.batch_size}")
    words = load_words(args.data)
    vocab = Vocab.from_words(words)
    Xtr, Ytr = make_splits(words, vocab, block_size=3)["train"]
    with jax.enable_x64(args.float64):
        dtype = jnp.float64 if args.float64 else jnp.float32
        k_init, k_batch = jax.random.split(jax.random.key(args.seed))
        params = mlp.init_params(k_init, vocab_size=vocab.size, dtype=dtype)
        ix = jax.random.randint(k_batch, (args.batch_size,), 0, Xtr.shape[0])
        X, Y = jnp.asarray(Xtr)[ix], jnp.asarray(Ytr)[ix]
        print(f"bpjax check: {len(words)} words, vocabulary {vocab.size}, batch {args.batch_size}, "
              f"seed {args.seed}, {np.dtype(dtype).name}; loss {float(mlp.loss(params, X, Y)):.4f}")
        tables = mlp.gradient_tables(params, X, Y)
    for t in tables:
        print()
        print(t)
    ok = all(t.ok for t in tables)
    if args.json:
        atomic_write_json(args.json, {"rows": [r for t in tables for r in t.to_json()]})
    bad = [f"{r.table}/{r.name}" for t in tables for r in t if not r.ok]
    print("\nall rows ok" if ok else f"\nFAILED rows: {', '.join(bad)}")
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bpjax", description="Manual backpropagation, done right, in JAX.")
    sub = p.add_subparsers(dest="cmd", metavar="{check}", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="compare every hand-written gradient with jax.grad")
    c.add_argument("--data", help="names file (default: data/names.txt, $BPJAX_DATA, or the cache)")
    c.add_argument("--float64", action="store_true", help="run the check in float64")
    c.add_argument("--batch-size", type=int, default=32, help="rows in the batch (default 32)")
    c.add_argument("--seed", type=int, default=0, help="init and batch seed (default 0)")
    c.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    c.set_defaults(func=cmd_check)

    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BpjaxError as e:
        print(f"bpjax {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bpjax {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bpjax sample | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
