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


def gradient_fn(model, grad: str) -> Callable:
    """``(params, state, X, Y) -> ((loss, new_state), grads)``: the one thing ``--grad`` swaps
    (``jax.value_and_grad`` of :meth:`bpjax.models.Model.training_loss`)."""
    from .. import models

    spec = models.get(model)
    if grad not in GRADS:
        raise ConfigError(f"grad must be one of {', '.join(GRADS)}, got {grad!r}")
    return jax.value_and_grad(spec.training_loss(grad), has_aux=True)


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


def train_step_fn(grad_fn: Callable, tx: optax.GradientTransformation, mesh=None) -> Callable:
    """One training step as a ``lax.scan`` body: ``((params, opt_state, state), (X, Y)) ->
    ((params, opt_state, state), loss)``; ``mesh``: the batch's rows split across it."""
    constrain = row_constraint(mesh)

    def one_step(carry, batch):
        params, opt_state, state = carry
        (loss, state), grads = grad_fn(params, state, *constrain(batch))
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, state), loss

    return one_step
