"""Optimizers: the notebook's step-decay SGD, and AdamW, as ``optax`` transformations.

Both keep their learning rates in the optimizer *state*, not in the program: models that differ
only in their learning rate share one compiled step and train together under ``vmap`` (``bpjax
sweep``). :data:`OPTIMIZERS` names them (the one place): ``make_optimizer(cfg)`` builds
``cfg.optimizer``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ConfigError

ADAMW_WEIGHT_DECAY = 0.01
"""AdamW's decoupled weight decay when none is given: makemore's (and PyTorch's) default."""


class StepDecayState(NamedTuple):
    count: jax.Array  # int32: updates applied so far
    lr: jax.Array  # float32: the rate before the decay step
    lr_decayed: jax.Array  # float32: the rate from the decay step on


def scale_by_step_decay(lr: float, decay_step: int, factor: float) -> optax.GradientTransformation:
    """``u -> -rate * u`` with ``rate = lr`` for steps < ``decay_step``, then ``lr * factor``.

    (``lr * factor`` is rounded once from Python's double: 0.1 then 0.01 exactly.)
    """

    def init(params):
        return StepDecayState(
            jnp.zeros([], jnp.int32), jnp.asarray(lr, jnp.float32), jnp.asarray(float(lr) * float(factor), jnp.float32)
        )

    def update(updates, state, params=None):
        rate = jnp.where(state.count < decay_step, state.lr, state.lr_decayed)
        updates = jax.tree_util.tree_map(lambda g: (-rate).astype(g.dtype) * g, updates)
        return updates, StepDecayState(state.count + 1, state.lr, state.lr_decayed)

    return optax.GradientTransformation(init, update)


def sgd_step_decay(lr: float, decay_step: int, factor: float) -> optax.GradientTransformation:
    """SGD with the notebook's schedule: ``p -= lr * g`` for steps < ``decay_step``, then ``lr * factor``."""
    return scale_by_step_decay(lr, decay_step, factor)


def adamw_step_decay(
    lr: float,
    decay_step: int,
    factor: float,
    weight_decay: float,
    *,
    b1: float = 0.9,
    b2: float = 0.99,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """AdamW as ``torch.optim.AdamW`` (and ``optax.adamw``): ``p -= rate * (m̂ / (√v̂ + eps) +
    weight_decay * p)``, with the step-decay ``rate``. Defaults: makemore's betas (0.9, 0.99), eps 1e-8.

    Weight decay applies to every parameter, as makemore's ``AdamW(model.parameters(), ...)`` does.
    """
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.add_decayed_weights(weight_decay),
        scale_by_step_decay(lr, decay_step, factor),
    )


class CosineState(NamedTuple):
    count: jax.Array  # int32: updates applied so far
    lr: jax.Array  # float32: the peak rate
    min_lr: jax.Array  # float32: the final rate


def scale_by_warmup_cosine(lr: float, min_lr: float, warmup: int, decay_end: int) -> optax.GradientTransformation:
    """``u -> -rate * u``, nanoGPT's ``get_lr``: ``rate = lr * (t + 1) / (warmup + 1)`` for the first
    ``warmup`` updates, then a cosine from ``lr`` down to ``min_lr`` at update ``decay_end``, and
    ``min_lr`` after it. The rates are in the state (models of other rates share one program)."""

    def init(params):
        return CosineState(jnp.zeros([], jnp.int32), jnp.asarray(lr, jnp.float32), jnp.asarray(min_lr, jnp.float32))

    def update(updates, state, params=None):
        t = state.count.astype(jnp.float32)
        ratio = jnp.clip((t - warmup) / max(decay_end - warmup, 1), 0.0, 1.0)
        cosine = state.min_lr + 0.5 * (1.0 + jnp.cos(jnp.pi * ratio)) * (state.lr - state.min_lr)
        rate = jnp.where(state.count < warmup, state.lr * (t + 1) / (warmup + 1), cosine)
        updates = jax.tree_util.tree_map(lambda g: (-rate).astype(g.dtype) * g, updates)
        return updates, CosineState(state.count + 1, state.lr, state.min_lr)

    return optax.GradientTransformation(init, update)


def schedule(cfg) -> optax.GradientTransformation:
    """The learning rate of ``cfg`` as the last transformation of its optimizer (:data:`SCHEDULES`)."""
    if cfg.schedule == "cosine":
        min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
        return scale_by_warmup_cosine(cfg.lr, min_lr, cfg.warmup_steps, cfg.steps)
    return scale_by_step_decay(cfg.lr, cfg.decay_step, cfg.lr_decay_factor)


def learning_rate(cfg, step: int) -> float:
    """The rate :func:`schedule` applies at update ``step`` (0-based), on the host, in float32 as its
    transformations compute it (TensorBoard's ``lr``; a test holds it to the optimizer's updates)."""
    lr = np.float32(cfg.lr)
    if cfg.schedule == "cosine":
        min_lr = np.float32(cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr)
        warmup, t = cfg.warmup_steps, np.float32(step)
        if step < warmup:
            return float(lr * (t + 1) / np.float32(warmup + 1))
        ratio = np.clip((t - warmup) / np.float32(max(cfg.steps - warmup, 1)), 0, 1)
        return float(min_lr + np.float32(0.5) * (1 + np.cos(np.float32(np.pi) * ratio)) * (lr - min_lr))
    return float(lr if step < cfg.decay_step else np.float32(float(cfg.lr) * float(cfg.lr_decay_factor)))


def matrices(params):
    """The parameters of two or more axes (weights and embeddings; not biases, gains or norms):
    nanoGPT's ``p.dim() >= 2``, the ones it decays."""
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def _sgd(cfg) -> optax.GradientTransformation:
    return schedule(cfg)


def _adamw(cfg) -> optax.GradientTransformation:
    wd = ADAMW_WEIGHT_DECAY if cfg.weight_decay is None else cfg.weight_decay
    if cfg.schedule == "step" and cfg.weight_decay_on == "all":  # bpjax 0.1's transformation, state and all
        return adamw_step_decay(cfg.lr, cfg.decay_step, cfg.lr_decay_factor, wd)
    mask = matrices if cfg.weight_decay_on == "matrices" else None
    return optax.chain(
        optax.scale_by_adam(b1=0.9, b2=0.99, eps=1e-8), optax.add_decayed_weights(wd, mask), schedule(cfg)
    )


OPTIMIZERS = {
    "sgd": (_sgd, "the notebook's plain SGD"),
    "adamw": (_adamw, "AdamW (betas 0.9, 0.99, eps 1e-8; --weight-decay, default 0.01)"),
}
"""name -> (builder from a config, description): ``--optimizer``'s choices. Both follow the schedule of
``--schedule`` (:data:`SCHEDULES`)."""

SCHEDULES = ("step", "cosine")
"""``step``: ``lr``, then ``lr * lr_decay_factor`` from ``lr_decay_step`` (the notebook's); ``cosine``:
linear warmup over ``warmup_steps``, then a cosine to ``min_lr`` at the last step (nanoGPT's)."""

WEIGHT_DECAYED = ("adamw",)
"""The optimizers that take ``--weight-decay``."""

DECAYED_PARAMETERS = ("all", "matrices")
"""``--weight-decay-on``: every parameter (makemore's AdamW), or :func:`matrices` only (nanoGPT's)."""


def make_optimizer(cfg) -> optax.GradientTransformation:
    """The optimizer of a :class:`~bpjax.training.Config`: ``cfg.optimizer`` with its schedule, after
    clipping the gradient at ``cfg.grad_clip`` (its global norm; 0: none)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    tx = OPTIMIZERS[cfg.optimizer][0](cfg)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx) if cfg.grad_clip else tx
