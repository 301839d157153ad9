"""Activations: tanh (the notebook's) and GPT-2's GELU (makemore's Transformer). Any shape."""

from __future__ import annotations

import math

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
