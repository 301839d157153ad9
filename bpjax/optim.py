"""Optimizers: the notebook's step-decay SGD, and AdamW, as ``optax`` transformations.

Both keep their learning rates in the optimizer *state*, not in the program: models that differ
only in their learning rate share one compiled step and train together under ``vmap`` (``bpjax
sweep``). ``make_optimizer(cfg)`` picks one by ``cfg.optimizer``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .errors import ConfigError


class StepDecayState(NamedTuple):
    count: jax.Array  # int32: updates applied so far
    lr: jax.Array  # float32: the rate before the decay step
    lr_decayed: jax.Array  # float32: the rate from the decay step on


def scale_by_step_decay(lr: float, decay_step: int, factor: float) -> optax.GradientTransformation:
    """``u -> -rate * u`` with ``rate = lr`` for steps < ``decay_step``, then ``lr * factor``.

    (``lr * factor`` is rounded once from Python's double: 0.1 then 0.01 exactly.)
    """

    def init(params):
        return StepDecayState(jnp.zeros([], jnp.int32), jnp.asarray(lr, jnp.float32),
                              jnp.asarray(float(lr) * float(factor), jnp.float32))

    def update(updates, state, params=None):
        rate = jnp.where(state.count < decay_step, state.lr, state.lr_decayed)
        updates = jax.tree_util.tree_map(lambda g: (-rate).astype(g.dtype) * g, updates)
        return updates, StepDecayState(state.count + 1, state.lr, state.lr_decayed)

    return optax.GradientTransformation(init, update)


def sgd_step_decay(lr: float, decay_step: int, factor: float) -> optax.GradientTransformation:
    """SGD with the notebook's schedule: ``p -= lr * g`` for steps < ``decay_step``, then ``lr * factor``."""
    return scale_by_step_decay(lr, decay_step, factor)


def adamw_step_decay(lr: float, decay_step: int, factor: float, weight_decay: float, *, b1: float = 0.9,
                     b2: float = 0.99, eps: float = 1e-8) -> optax.GradientTransformation:
    """AdamW as ``torch.optim.AdamW`` (and ``optax.adamw``): ``p -= rate * (m̂ / (√v̂ + eps) +
    weight_decay * p)``, with the step-decay ``rate``. Defaults: makemore's betas (0.9, 0.99), eps 1e-8.

    Weight decay applies to every parameter, as makemore's ``AdamW(model.parameters(), ...)`` does.
    """
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.add_decayed_weights(weight_decay),
                       scale_by_step_decay(lr, decay_step, factor))


def make_optimizer(cfg) -> optax.GradientTransformation:
    """The optimizer of a :class:`bpjax.config.Config`: ``cfg.optimizer`` with its schedule."""
    if cfg.optimizer == "sgd":
        return sgd_step_decay(cfg.lr, cfg.decay_step, cfg.lr_decay_factor)
    if cfg.optimizer == "adamw":
        wd = 0.01 if cfg.weight_decay is None else cfg.weight_decay  # makemore's default
        return adamw_step_decay(cfg.lr, cfg.decay_step, cfg.lr_decay_factor, wd)
    raise ConfigError(f"optimizer must be one of sgd, adamw, got {cfg.optimizer!r}")
