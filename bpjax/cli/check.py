"""``bpjax check``: every hand-written gradient of a model against ``jax.grad``, on one real batch."""

from __future__ import annotations

import inspect

from ..errors import ConfigError
from ..io import atomic_write_json
from .args import add_data_arg, add_model_arg, seed

HELP = "compare every hand-written gradient with jax.grad"


def add_args(c) -> None:
    add_data_arg(c)
    add_model_arg(c)
    c.add_argument("--float64", action="store_true", help="run the check in float64")
    c.add_argument("--batch-size", type=int, default=32, help="rows in the batch (default 32)")
    c.add_argument("--seed", type=seed, default=0, help="init and batch seed (default 0)")
    c.add_argument("--json", metavar="FILE", help="also write the rows as JSON")


def _check_batch_size(spec, batch_size: int, float64: bool) -> None:
    if spec.min_batch >= 2 and (batch_size < 2 or (batch_size < 3 and not float64)):
        raise ConfigError(
            f"--batch-size must be >= 2 (batch norm divides by n - 1), and >= 3 in float32 (with "
            f"2 rows batch norm's gradient is O(eps) and float32 cancellation dominates it), "
            f"got {batch_size}"
        )
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")


def tables_on_a_batch(cfg, splits, vocab_size: int, batch_size: int, key_seed: int, float64: bool):
    """``(loss, tables)``: the model of ``cfg`` at its init, on a random batch of the training rows."""
    import jax
    import jax.numpy as jnp

    spec = cfg.spec
    Xtr, Ytr = splits["train"]
    with jax.enable_x64(float64):
        dtype = jnp.float64 if float64 else jnp.float32
        k_init, k_batch = jax.random.split(jax.random.key(key_seed))
        ix = jax.random.randint(k_batch, (batch_size,), 0, Xtr.shape[0])
        X, Y = jnp.asarray(Xtr)[ix], jnp.asarray(Ytr)[ix]
        if "dtype" in inspect.signature(spec.init).parameters:  # drawn in dtype (bpjax's models)
            params, state = spec.init(k_init, vocab_size=vocab_size, dtype=dtype, **cfg.sizes)
        else:  # a model of your own: its float32 init, cast
            params, state = spec.init(k_init, vocab_size=vocab_size, **cfg.sizes)
        params, state = jax.tree_util.tree_map(lambda a: a.astype(dtype), (params, state))
        return float(spec.loss(params, state, X, Y)[0]), spec.tables(params, state, X, Y)


def run(args) -> int:
    import numpy as np

    from ..data import load_dataset
    from ..training import Config

    cfg = Config(args.model)
    _check_batch_size(cfg.spec, args.batch_size, args.float64)
    vocab, splits, info = load_dataset(
        args.data, block_size=cfg.block_size, split_seed=cfg.split_seed, layout=cfg.spec.data
    )
    cfg = cfg.with_data(info)
    if args.batch_size > len(splits["train"][0]):
        raise ConfigError(
            f"--batch-size {args.batch_size:,} is more than the {len(splits['train'][0]):,} training rows"
        )
    loss, tables = tables_on_a_batch(cfg, splits, vocab.size, args.batch_size, args.seed, args.float64)
    dtype = "float64" if args.float64 else "float32"
    print(
        f"bpjax check --model {args.model}: {info['words']} words, vocabulary {vocab.size}, batch "
        f"{args.batch_size}, seed {args.seed}, {np.dtype(dtype).name}; loss {loss:.4f}"
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
