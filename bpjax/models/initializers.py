"""Initialisations shared by several models: PyTorch's defaults, as makemore's modules get them."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def torch_linear(key, fan_in: int, fan_out: int, dtype=None):
    """``(W [fan_in, fan_out], b [fan_out])`` ~ U(±1/√fan_in): PyTorch's ``nn.Linear`` default init
    (its weight ``[out, in]``, stored transposed)."""
    dtype = jnp.float32 if dtype is None else dtype
    kW, kb = jax.random.split(key)
    bound = 1.0 / fan_in**0.5
    return (
        jax.random.uniform(kW, (fan_in, fan_out), dtype, -bound, bound),
        jax.random.uniform(kb, (fan_out,), dtype, -bound, bound),
    )
