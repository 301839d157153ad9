"""Activations: tanh (the notebook's), GPT-2's tanh GELU (makemore's Transformer) and the exact erf GELU
(nanoGPT's ``nn.GELU()``). Any shape."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .base import with_backward


# --------------------------------------------------------------------------------------------
# tanh.  h = tanh(x),  d_x = (1 - h^2) * d_h
# --------------------------------------------------------------------------------------------
def tanh_plain(x):
    """Elementwise ``tanh``; any shape."""
    return jnp.tanh(x)


def _tanh_fwd(x):
    h = tanh_plain(x)
    return h, h


def _tanh_bwd(h, d_h):
    return ((1.0 - h**2) * d_h,)


tanh = with_backward(
    tanh_plain,
    _tanh_fwd,
    _tanh_bwd,
    doc=""":func:`tanh_plain` with the backward ``(1 - h**2) * d_h``, reusing the output ``h``.""",
)


# --------------------------------------------------------------------------------------------
# GELU, the tanh approximation of GPT-2 (makemore's NewGELU).
#   u = √(2/π) (x + 0.044715 x³),  y = ½ x (1 + tanh u)
#   d_x = d_y * (½ (1 + tanh u) + ½ x (1 - tanh² u) √(2/π) (1 + 3·0.044715 x²))
# --------------------------------------------------------------------------------------------
_GELU_C = math.sqrt(2.0 / math.pi)


def gelu_plain(x):
    """GPT-2's GELU (the tanh approximation), any shape."""
    return 0.5 * x * (1.0 + jnp.tanh(_GELU_C * (x + 0.044715 * x**3)))


def _gelu_fwd(x):
    return gelu_plain(x), x


def _gelu_bwd(x, d_y):
    t = jnp.tanh(_GELU_C * (x + 0.044715 * x**3))
    return (d_y * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * _GELU_C * (1.0 + 3 * 0.044715 * x**2)),)


gelu = with_backward(
    gelu_plain,
    _gelu_fwd,
    _gelu_bwd,
    doc=""":func:`gelu_plain` with its derivative ``½(1 + tanh u) + ½x(1 - tanh²u)·√(2/π)(1 + 0.134145x²)``.""",
)


# --------------------------------------------------------------------------------------------
# GELU, exact (PyTorch's nn.GELU(), nanoGPT's).  y = x Φ(x),  Φ(x) = ½ (1 + erf(x / √2))
#   d_x = d_y * (Φ(x) + x φ(x)),   φ(x) = exp(-x²/2) / √(2π)
# Φ is computed as ½ erfc(-x / √2): the same value, without 1 + erf's cancellation where x < 0
# (float32: PyTorch's form is off by 4e-5 relative at x = -3.2, 1e-3 at x = -5).
# --------------------------------------------------------------------------------------------
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_exact_plain(x):
    """The exact GELU ``x Φ(x)``, Φ the standard normal's CDF; any shape."""
    return x * (0.5 * jax.lax.erfc(-x * _SQRT_HALF))


def _gelu_exact_fwd(x):
    cdf = 0.5 * jax.lax.erfc(-x * _SQRT_HALF)
    return x * cdf, (x, cdf)


def _gelu_exact_bwd(res, d_y):
    x, cdf = res
    return (d_y * (cdf + x * (_INV_SQRT_2PI * jnp.exp(-0.5 * x * x))),)


gelu_exact = with_backward(
    gelu_exact_plain,
    _gelu_exact_fwd,
    _gelu_exact_bwd,
    doc=""":func:`gelu_exact_plain` with its derivative ``Φ(x) + x·φ(x)``, Φ kept from the forward.""",
)
