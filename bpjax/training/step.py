"""One training step: draw a minibatch, take the loss and gradients, update. Pure functions.

    (loss, state), grads = gradient_fn(model, grad)(params, state, X, Y)      # --grad's one swap
    carry, loss = train_step_fn(grad_fn, tx)((params, opt_state, state), (X, Y))

Each step's minibatch comes from ``fold_in(key, step)`` (:func:`sample_batches`), so the stream
does not depend on how steps are grouped into chunks: a resumed run equals a straight one bit for
bit. The steps run inside the ``lax.scan`` of :mod:`bpjax.training.chunk`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ConfigError

GRADS = ("manual", "autodiff")
"""``manual``: ``jax.grad`` of the model's ``loss_manual`` (the hand-written backward); ``autodiff``:
``jax.grad`` of its plain loss (``Model.training_loss``)."""


def gradient_fn(model, grad: str, rate: float = 0.0, compute_dtype: str = "float32") -> Callable:
    """``(params, state, X, Y) -> ((loss, new_state), grads)``: the one thing ``--grad`` swaps
    (``jax.value_and_grad`` of :meth:`bpjax.models.Model.training_loss`). ``rate`` above 0: dropout at
    that rate, ``(params, state, X, Y, key)``, the masks drawn from ``key``; ``compute_dtype``: the
    matrix products' (:meth:`~bpjax.models.Model.computing_in`)."""
    from .. import models

    spec = models.get(model).computing_in(compute_dtype)
    if grad not in GRADS:
        raise ConfigError(f"grad must be one of {', '.join(GRADS)}, got {grad!r}")
    loss = spec.training_loss(grad)
    if rate:

        def dropped(params, state, X, Y, key):
            return loss(params, state, X, Y, key=key, rate=rate)

        return jax.value_and_grad(dropped, has_aux=True)
    return jax.value_and_grad(loss, has_aux=True)


def init_train_state(cfg, vocab_size: int):
    """``(params, opt_state, state, key_data)`` of a fresh run of ``cfg`` (a
    :class:`~bpjax.training.Config`): the seed is split once into the init key and the minibatch key
    (``fit``, ``sweep`` and ``bench`` start alike)."""
    from .optim import make_optimizer

    k_init, key = jax.random.split(jax.random.key(cfg.seed))
    params, state = cfg.spec.init(k_init, vocab_size=vocab_size, **cfg.sizes)
    return params, make_optimizer(cfg).init(params), state, np.asarray(jax.random.key_data(key))


def sample_batches(key, steps, Xtr, Ytr, batch_size: int):
    """Minibatches for the given steps: ``X`` [len(steps), B, T], ``Y`` [len(steps), B].

    Step ``i`` draws ``randint(fold_in(key, i), (B,), 0, N)``, so the stream does not depend on how
    steps are chunked (a resumed run equals a straight one bit for bit). All the chunk's draws are
    made in one batched call before the loop, which keeps the RNG out of the sequential step.
    """
    N = Xtr.shape[0]
    ix = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, N))(steps)
    return Xtr[ix], Ytr[ix]


def sample_windows(key, steps, stream, batch_size: int, block_size: int):
    """A text's minibatches for the given steps: random windows of ``block_size + 1`` characters of
    the train ``stream`` [N], ``X`` [len(steps), B, T] the contexts and ``Y`` the next characters.

    Step ``i`` draws the windows' starts ``randint(fold_in(key, i), (B,), 0, N - T)`` (nanoGPT's
    ``torch.randint(len(data) - block_size, (batch_size,))``), so the stream does not depend on how
    steps are chunked, as :func:`sample_batches`."""
    T = block_size
    starts = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, stream.shape[0] - T))(
        steps
    )
    idx = starts[..., None] + jnp.arange(T)
    return stream[idx], stream[idx + 1]


DROPOUT_STREAM = 1
"""Step ``i``'s dropout key is ``fold_in(fold_in(key, i), DROPOUT_STREAM)``: a stream apart from the
minibatch's ``fold_in(key, i)``."""


def dropout_keys(key, steps):
    """One key per step for the layers' randomness (dropout), as stable under chunking as the minibatches."""
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, i), DROPOUT_STREAM))(steps)


def batch_sampler(cfg):
    """``(key, steps, Xtr, Ytr) -> batches``: how a run of ``cfg`` draws its minibatches (rows of its
    windows or sequences, windows of a text's stream), with each step's dropout key when its model
    draws one (``Model.dropout`` above 0). ``batches`` is ``(X, Y)`` or ``(X, Y, keys)``, stacked over steps."""
    spec, B = cfg.spec, cfg.batch_size * cfg.grad_accum
    keyed = spec.dropout(cfg.sizes) > 0

    def sample(key, steps, Xtr, Ytr):
        if spec.data == "text":
            X, Y = sample_windows(key, steps, Xtr, B, cfg.block_size)
        else:
            X, Y = sample_batches(key, steps, Xtr, Ytr, B)
        return (X, Y, dropout_keys(key, steps)) if keyed else (X, Y)

    return sample


def all_finite(tree) -> jax.Array:
    """Whether every leaf of ``tree`` is finite: one boolean, computed on device."""
    return jnp.all(jnp.stack([jnp.isfinite(p).all() for p in jax.tree_util.tree_leaves(tree)]))


def row_constraint(mesh) -> Callable:
    """``batch -> batch`` with its rows split across ``mesh`` (data parallelism; the identity without one)."""
    if mesh is None:
        return lambda batch: batch
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from .distributed import AXIS

    rows = NamedSharding(mesh, P(AXIS))
    return lambda batch: jax.lax.with_sharding_constraint(batch, rows)


def accumulated(grad_fn: Callable, micro: int) -> Callable:
    """``grad_fn`` over ``micro`` micro-batches of one batch: the mean of their losses and gradients,
    one ``lax.scan`` (``--grad-accum``). Each micro-batch's loss is a mean over its targets, so with
    equal micro-batches (and no batch statistics) the step is the one over their union."""
    if micro == 1:
        return grad_fn

    def accumulate(params, state, X, Y, *key):
        split = lambda a: a.reshape(micro, a.shape[0] // micro, *a.shape[1:])

        def one(acc, xs):
            loss_sum, grads_sum, state = acc
            j, Xj, Yj = xs
            keys = [jax.random.fold_in(k, j) for k in key]  # each micro-batch its own dropout masks
            (loss, state), grads = grad_fn(params, state, Xj, Yj, *keys)
            return (loss_sum + loss, jax.tree_util.tree_map(jnp.add, grads_sum, grads), state), None

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        xs = (jnp.arange(micro), split(X), split(Y))
        dtype = jnp.promote_types(jax.tree_util.tree_leaves(params)[0].dtype, jnp.float32)  # the loss's
        (loss, grads, state), _ = jax.lax.scan(one, (jnp.zeros((), dtype), zeros, state), xs)
        return (loss / micro, state), jax.tree_util.tree_map(lambda g: g / micro, grads)

    return accumulate


def train_step_fn(grad_fn: Callable, tx: optax.GradientTransformation, mesh=None) -> Callable:
    """One training step as a ``lax.scan`` body: ``((params, opt_state, state), batch) ->
    ((params, opt_state, state), loss)``, ``batch`` ``(X, Y)`` or ``(X, Y, key)`` (a model that draws
    dropout masks); ``mesh``: the batch's rows split across it."""
    constrain = row_constraint(mesh)

    def one_step(carry, batch):
        params, opt_state, state = carry
        X, Y = constrain(batch[:2])
        (loss, state), grads = grad_fn(params, state, X, Y, *batch[2:])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, state), loss

    return one_step
