"""The jitted training step, the ``lax.scan`` chunk runner, and eval: shared by train, sweep and bench.

One step: draw a minibatch on device from ``fold_in(key, step)``, take the loss and gradients from
the gradient function (``jax.value_and_grad`` of the model's ``loss_manual`` or of its plain
``loss``), update with an ``optax`` transformation. ``--grad manual|autodiff`` swaps only the
gradient function. Steps run inside ``lax.scan`` in chunks; one host round trip per chunk brings
back its losses and whether every parameter is still finite.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import layers as L
from .config import Config
from .errors import ConfigError
from .io import host_memory_available
from .models import Model
from .optim import make_optimizer

MAX_CHUNK_ROWS = 1 << 22
"""A chunk's minibatches are drawn before its scan: cap them at ~4M rows (16 MiB of int32 ids per
context position) whatever ``--chunk`` says."""


def gradient_fn(model: str | Model, grad: str) -> Callable:
    """``(params, state, X, Y) -> ((loss, new_state), grads)``: the one thing ``--grad`` swaps
    (``jax.value_and_grad`` of :meth:`bpjax.models.Model.training_loss`)."""
    from . import models

    spec = models.get(model)
    if grad not in ("manual", "autodiff"):
        raise ConfigError(f"grad must be one of manual, autodiff, got {grad!r}")
    return jax.value_and_grad(spec.training_loss(grad), has_aux=True)


def init_train_state(cfg: Config, vocab_size: int):
    """``(params, opt_state, state, key_data)`` of a fresh run: the seed is split once into the
    init key and the minibatch key (``fit``, ``sweep`` and ``bench`` start alike)."""
    k_init, key = jax.random.split(jax.random.key(cfg.seed))
    params, state = cfg.spec.init(k_init, vocab_size=vocab_size, **cfg.sizes)
    return params, make_optimizer(cfg).init(params), state, np.asarray(jax.random.key_data(key))


def available_memory() -> int | None:
    """Bytes the default device can still take: an accelerator's free memory, or the host's
    ``MemAvailable``; None where neither is known."""
    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        stats = getattr(dev, "memory_stats", lambda: None)() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return host_memory_available()


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_state_fits(cfg: Config, vocab_size: int, models: int = 1) -> None:
    """Refuse, before anything is allocated, ``models`` copies of the model's parameters and
    optimizer state (and their gradients and update) that would not fit: one
    :class:`~bpjax.errors.ConfigError` naming the model's sizes. Shapes from ``jax.eval_shape``."""
    def shapes():
        params, state = cfg.spec.init(jax.random.key(0), vocab_size=vocab_size, **cfg.sizes)
        return params, make_optimizer(cfg).init(params), state

    p, opt, state = jax.eval_shape(shapes)
    nbytes = lambda t: sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(t))  # noqa: E731
    need = models * (3 * nbytes(p) + nbytes(opt) + nbytes(state))  # params, grads, update, optimizer
    have = available_memory()
    if have is not None and need > have:
        n = sum(x.size for x in jax.tree_util.tree_leaves(p))
        many = f"{models:,} x " if models > 1 else ""
        options = [f"--{k.replace('_', '-')} {v:,}" for k, v in cfg.sizes.items()] + (["--seeds/--lrs"] if models > 1
                                                                                      else [])
        raise ConfigError(f"{many}{n:,} parameters with their gradients and optimizer state need {_gb(need)}, "
                          f"more than the {_gb(have)} available; use smaller sizes ({', '.join(options)})")


def check_compiled_fits(compiled, what: str) -> None:
    """Refuse a compiled chunk whose buffers (XLA's memory analysis: arguments, outputs, temporaries)
    exceed the available memory, before it runs: a :class:`~bpjax.errors.ConfigError` naming ``what``."""
    mem, have = compiled.memory_analysis(), available_memory()
    if mem is None or have is None:
        return
    need = sum(int(getattr(mem, a, 0) or 0) for a in ("argument_size_in_bytes", "output_size_in_bytes",
                                                      "temp_size_in_bytes"))
    if need > have:
        raise ConfigError(f"one training chunk needs {_gb(need)}, more than the {_gb(have)} available; "
                          f"lower {what}")


def sample_batches(key, steps, Xtr, Ytr, batch_size: int):
    """Minibatches for the given steps: ``X`` [len(steps), B, T], ``Y`` [len(steps), B].

    Step ``i`` draws ``randint(fold_in(key, i), (B,), 0, N)``, so the stream does not depend on how
    steps are chunked (a resumed run equals a straight one bit for bit). All the chunk's draws are
    made in one batched call before the loop, which keeps the RNG out of the sequential step.
    """
    N = Xtr.shape[0]
    ix = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, N))(steps)
    return Xtr[ix], Ytr[ix]


def all_finite(tree) -> jax.Array:
    """Whether every leaf of ``tree`` is finite: one boolean, computed on device."""
    return jnp.all(jnp.stack([jnp.isfinite(p).all() for p in jax.tree_util.tree_leaves(tree)]))


def train_step_fn(grad_fn: Callable, tx: optax.GradientTransformation, mesh=None) -> Callable:
    """One training step as a ``lax.scan`` body: ``((params, opt_state, state), (X, Y)) ->
    ((params, opt_state, state), loss)``; ``mesh``: the batch's rows split across it."""
    if mesh is not None:
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        from .distributed import AXIS

        step_rows = NamedSharding(mesh, P(AXIS))  # [B, ...]

    def one_step(carry, batch):
        params, opt_state, state = carry
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, step_rows)
        (loss, state), grads = grad_fn(params, state, *batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, state), loss

    return one_step


def train_chunk_fn(grad_fn: Callable, tx: optax.GradientTransformation, batch_size: int, unroll: int = 2,
                   mesh=None):
    """The pure ``chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length)``.

    Returns ``(params, opt_state, state, losses, finite)``: ``length`` steps inside one
    ``lax.scan``, ``losses`` [length] the minibatch losses before each update (the notebook's
    ``loss.item()``), ``finite`` whether every parameter is still finite. ``mesh``: split every
    step's rows across it (data parallelism, see ``bpjax.distributed``).

    Two steps per loop iteration (``unroll`` 2) let XLA schedule across a step boundary: measured
    +12% on the WaveNet, even on the MLP; 4 was slower.
    """
    if mesh is not None:
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        from .distributed import AXIS

        chunk_rows = NamedSharding(mesh, P(None, AXIS))  # [steps, B, ...]: each device draws its rows

    one_step = train_step_fn(grad_fn, tx, mesh)

    def chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length):
        steps = step0 + jnp.arange(length, dtype=jnp.int32)
        batches = sample_batches(jax.random.wrap_key_data(key_data), steps, Xtr, Ytr, batch_size)
        if mesh is not None:
            batches = jax.lax.with_sharding_constraint(batches, chunk_rows)
        (params, opt_state, state), losses = jax.lax.scan(one_step, (params, opt_state, state), batches,
                                                         unroll=unroll)
        return params, opt_state, state, losses, all_finite(params)

    return chunk


def make_train_chunk(grad_fn: Callable, tx: optax.GradientTransformation, batch_size: int, mesh=None):
    """:func:`train_chunk_fn`, jitted: ``chunk(params, opt_state, state, key_data, step0, Xtr, Ytr,
    length)`` with ``length`` static (passed by position). With a ``mesh``, every input and output
    is replicated and each step's minibatch is split across the mesh: the same program,
    partitioned by XLA. No donation: the previous state stays valid, so a diverging chunk can be
    rolled back to it."""
    fn = train_chunk_fn(grad_fn, tx, batch_size, mesh=mesh)
    if mesh is None:
        return jax.jit(fn, static_argnums=(7,))
    from .distributed import replicated

    return jax.jit(fn, static_argnums=(7,), in_shardings=replicated(mesh), out_shardings=replicated(mesh))


def vmapped_train_chunk(cfg: Config, in_shardings=None, out_shardings=None):
    """The chunk of ``cfg`` under ``vmap`` over stacked models (params, optimizer states, model
    states and keys; the data and the step are shared), jitted with ``length`` static. The rates
    live in the optimizer states, so one program serves models of different learning rates."""
    pure = train_chunk_fn(gradient_fn(cfg.model, cfg.grad), make_optimizer(cfg), cfg.batch_size)
    fn = jax.vmap(pure, in_axes=(0, 0, 0, 0, None, None, None, None))
    if in_shardings is None:
        return jax.jit(fn, static_argnums=(7,))
    return jax.jit(fn, static_argnums=(7,), in_shardings=in_shardings, out_shardings=out_shardings)


class ChunkRunner:
    """A jitted chunk function compiled ahead of time, once per chunk length: the one compile
    cache of train, sweep and bench. ``runner.compile(length, *args)`` gives the compiled chunk
    (time its calls, not this); ``runner(length, *args)`` compiles if needed and runs;
    ``compile_seconds`` adds up the compiling. ``length`` may be a tuple of the chunk's static
    arguments (a recorded chunk's ``(length, head, verify)``)."""

    def __init__(self, jitted: Callable):
        self.jitted, self.compiled, self.compile_seconds = jitted, {}, 0.0

    def compile(self, length, *args):
        if length not in self.compiled:
            t = time.perf_counter()
            static = length if isinstance(length, tuple) else (length,)
            self.compiled[length] = self.jitted.lower(*args, *static).compile()
            self.compile_seconds += time.perf_counter() - t
        return self.compiled[length]

    def __call__(self, length: int, *args):
        return self.compile(length, *args)(*args)


def chunk_length(cfg: Config, models: int = 1) -> int:
    """``cfg.chunk``, capped so that a chunk's pre-drawn minibatches stay under :data:`MAX_CHUNK_ROWS`."""
    return min(cfg.chunk, max(1, MAX_CHUNK_ROWS // (cfg.batch_size * models)))


def segments(start: int, end: int, cut_every: list[int]) -> list[tuple[int, int]]:
    """Split [start, end) at every multiple of each positive entry of ``cut_every``."""
    cuts = {start, end}
    for k in cut_every:
        if k > 0:
            cuts.update(range((start // k + 1) * k, end, k))
    pts = sorted(c for c in cuts if start <= c <= end)
    return list(zip(pts[:-1], pts[1:], strict=True))


# --------------------------------------------------------------------------------------------
# Eval: split losses in eval mode
# --------------------------------------------------------------------------------------------
_LOSS_SUMS: dict = {}


def _loss_sum(model: Model):
    """Jitted ``(sum of eval-mode cross-entropy, number of targets)`` over a chunk of rows, one per
    model (compiled once per shape). Windows: one target a row; sequences: the non -1 targets."""
    if model not in _LOSS_SUMS:
        if model.data == "sequences":
            def loss_sum(p, st, X, Y):
                n = (Y >= 0).sum()
                return L.cross_entropy_masked_plain(model.logits_eval(p, st, X), Y) * n, n
        else:
            def loss_sum(p, st, X, Y):
                return L.cross_entropy_plain(model.logits_eval(p, st, X), Y) * X.shape[0], X.shape[0]
        _LOSS_SUMS[model] = jax.jit(loss_sum)
    return _LOSS_SUMS[model]


def split_losses(model: str | Model, params, stats, splits: dict, names=("train", "val", "test"),
                 rows: int = 32768) -> dict:
    """Eval-mode mean cross-entropy per split (the notebook's ``split_loss``), in row chunks: the sum
    over the split's targets divided by their count (a sequence's -1 targets are not targets)."""
    from . import models

    spec = models.get(model)
    loss_sum = _loss_sum(spec)
    if spec.data == "sequences":  # a row holds T targets: keep a chunk's activations as small as windows'
        rows = max(1, rows // splits[names[0]][0].shape[1]) if names else rows
    out = {}
    for k in names:
        X, Y = splits[k]
        total, count = 0.0, 0
        for i in range(0, len(X), rows):
            s, n = loss_sum(params, stats, jnp.asarray(X[i:i + rows]), jnp.asarray(Y[i:i + rows]))
            total, count = total + float(s), count + int(n)
        out[f"{k}_loss"] = total / count
    return out
