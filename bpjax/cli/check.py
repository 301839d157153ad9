"""``bpjax check``: every hand-written gradient of a model against ``jax.grad``, on one real batch."""

from __future__ import annotations

import inspect

from ..errors import ConfigError
from ..io import atomic_write_json
from .args import add_data_arg, add_model_arg, add_size_args, integer, seed

HELP = "compare every hand-written gradient with jax.grad"


def add_args(c) -> None:
    add_data_arg(c)
    add_model_arg(c)
    c.add_argument("--float64", action="store_true", help="run the check in float64")
    c.add_argument(
        "--compute-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="the matrix products' dtype, both sides (bfloat16: float32 parameters and reductions, "
        "bpjax train's --compute-dtype; its pass rule is bpjax.check's bfloat16 one)",
    )
    c.add_argument("--batch-size", type=integer, default=32, help="rows in the batch (default 32)")
    c.add_argument("--seed", type=seed, default=0, help="init and batch seed (default 0)")
    c.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    add_size_args(c)


def _check_batch_size(spec, batch_size: int, float64: bool) -> None:
    if spec.min_batch >= 2 and (batch_size < 2 or (batch_size < 3 and not float64)):
        raise ConfigError(
            f"--batch-size must be >= 2 (batch norm divides by n - 1), and >= 3 in float32 (with "
            f"2 rows batch norm's gradient is O(eps) and float32 cancellation dominates it), "
            f"got {batch_size}"
        )
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")


DROPOUT_KEY = 1234
"""The check's dropout masks come from ``fold_in(key(DROPOUT_KEY), i)``, the same on both sides."""


def tables_on_a_batch(cfg, splits, vocab_size: int, batch_size: int, key_seed: int, float64: bool):
    """``(loss, tables)``: the model of ``cfg`` at its init, on a random batch of the training rows (a
    text's: random windows of its train stream); with dropout, its masks fixed by :data:`DROPOUT_KEY`."""
    import jax
    import jax.numpy as jnp

    from ..data import training_arrays
    from ..training.step import sample_batches, sample_windows

    spec = cfg.spec.computing_in(cfg.compute_dtype)
    Xtr, Ytr = (jnp.asarray(a) for a in training_arrays(splits))
    with jax.enable_x64(float64):
        dtype = jnp.float64 if float64 else jnp.float32
        k_init, k_batch = jax.random.split(jax.random.key(key_seed))
        if spec.data == "text":
            X, Y = (a[0] for a in sample_windows(k_batch, jnp.arange(1), Xtr, batch_size, cfg.block_size))
        else:
            X, Y = (a[0] for a in sample_batches(k_batch, jnp.arange(1), Xtr, Ytr, batch_size))
        if "dtype" in inspect.signature(spec.init).parameters:  # drawn in dtype (bpjax's models)
            params, state = spec.init(k_init, vocab_size=vocab_size, dtype=dtype, **cfg.sizes)
        else:  # a model of your own: its float32 init, cast
            params, state = spec.init(k_init, vocab_size=vocab_size, **cfg.sizes)
        params, state = jax.tree_util.tree_map(lambda a: a.astype(dtype), (params, state))
        rate = spec.dropout(cfg.sizes)
        kw = {"key": jax.random.key(DROPOUT_KEY), "rate": rate} if rate else {}
        return float(spec.loss(params, state, X, Y, **kw)[0]), spec.tables(params, state, X, Y, **kw)


def run(args) -> int:
    import numpy as np

    from .. import models
    from ..check import Table
    from ..data import describe, load_dataset, training_arrays
    from ..training import Config

    sizes = {k: getattr(args, k) for k in models.all_sizes() if getattr(args, k, None) is not None}
    if args.float64 and args.compute_dtype != "float32":
        raise ConfigError("--float64 and --compute-dtype bfloat16 exclude each other: the check runs in one precision")
    cfg = Config(args.model, compute_dtype=args.compute_dtype, **sizes).validate()
    _check_batch_size(cfg.spec, args.batch_size, args.float64)
    vocab, splits, info = load_dataset(
        args.data, block_size=cfg.block_size, split_seed=cfg.split_seed, layout=cfg.spec.data
    )
    cfg = cfg.with_data(info)
    rows = len(training_arrays(splits)[0]) if cfg.spec.data != "text" else None
    if rows is not None and args.batch_size > rows:
        raise ConfigError(f"--batch-size {args.batch_size:,} is more than the {rows:,} training rows")
    loss, tables = tables_on_a_batch(cfg, splits, vocab.size, args.batch_size, args.seed, args.float64)
    for label, changes in cfg.spec.check_variants.items():
        if any(k in sizes for k in changes):
            continue  # a size the command line set is checked as set
        v_loss, v_tables = tables_on_a_batch(
            cfg.replace(**changes), splits, vocab.size, args.batch_size, args.seed, args.float64
        )
        tables += [Table(f"{t.title} [{label}]", t.rows, t.dtype) for t in v_tables]
    dtype = "float64" if args.float64 else "float32"
    products = "" if args.compute_dtype == "float32" else f", products in {args.compute_dtype}"
    print(
        f"bpjax check --model {args.model}: {describe(info)}, vocabulary {vocab.size}, batch "
        f"{args.batch_size}, seed {args.seed}, {np.dtype(dtype).name}{products}; loss {loss:.4f}"
    )
    for t in tables:
        print()
        print(t)
    ok = bool(tables) and all(t.ok for t in tables)  # no table checks nothing
    if args.json:
        atomic_write_json(args.json, {"rows": [r for t in tables for r in t.to_json()]})
    bad = [f"{r.table}/{r.name}" for t in tables for r in t if not r.ok]
    print("\nall rows ok" if ok else f"\nFAILED rows: {', '.join(bad)}")
    return 0 if ok else 1
