"""Dropout: each entry kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``, else zeroed.

The mask is drawn from a key (``jax.random.bernoulli``) in the forward and kept as the residual, so
the backward zeroes the same entries: ``d_x = d_y * mask / (1 - p)``. With no key, or ``p`` 0, the
layer is the identity (eval mode, a run without dropout). A model's forward takes its keys from the
layer set, ``ly.key()`` (see :meth:`bpjax.layers.Layers.with_key`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import with_backward


def dropout_plain(x, key, p: float):
    """``x`` (any shape) with each entry kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``;
    ``key``: the mask's key (None: no dropout); ``p`` static, ``0 <= p < 1``."""
    if key is None or not p:
        return x
    keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
    return jnp.where(keep, x * (1.0 / (1.0 - p)), 0.0).astype(x.dtype)


def _dropout_fwd(x, key, p):
    if key is None or not p:
        return x, None
    keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
    return jnp.where(keep, x * (1.0 / (1.0 - p)), 0.0).astype(x.dtype), keep


def _dropout_bwd(p, keep, d_y):
    if keep is None:
        return d_y, None
    return jnp.where(keep, d_y * (1.0 / (1.0 - p)), 0.0).astype(d_y.dtype), None


dropout = with_backward(
    dropout_plain,
    _dropout_fwd,
    _dropout_bwd,
    nondiff_argnums=(2,),
    doc=""":func:`dropout_plain` with the backward ``d_y * mask / (1 - p)``, the mask kept from the forward.""",
)
