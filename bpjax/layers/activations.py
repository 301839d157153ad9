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
# Φ without 1 + erf's cancellation where x < 0 (float32: PyTorch's form is off by 4e-5 relative at
# x = -3.2, 1e-3 at x = -5):
#   float64: ½ erfc(-x / √2);
#   float32: ½ + ½ erf(x / √2) for |x| <= 1 (Φ >= 0.16: no cancellation); beyond, the tail
#            t = φ(x) · R(1/x²) / |x| = Φ(-|x|), Φ = t for x < -1 and 1 - t for x > 1 (monotone
#            where erf's form wobbles by a few ulps below 1), R a (5, 5) rational fit of the Mills
#            ratio |x|(1 - Φ(|x|))/φ(x) on 1/x² in (0, 1] (relative error 3.7e-9 in float64).
#            XLA's float32 erfc evaluates three polynomials, an exp and two divides an element;
#            this, erf's rational, an exp and one more rational (the GPT's step with bfloat16
#            products, 4 alternated pairs: ~0.7 of ~21 ms of thread time less, ~0.4 ms of wall
#            time, within this VM's noise). Over 3M points in [-20, 10], against float64: Φ within
#            4e-6 relative, x Φ(x) within 2.2e-6 (XLA's erfc: 1.4e-5 and 6.6e-6).
# --------------------------------------------------------------------------------------------
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MILLS_P = (1.0, 18.61857182, 97.3394463, 159.71036378, 67.32794709, 3.18523959)
_MILLS_Q = (1.0, 19.61856831, 113.95855746, 229.77873529, 145.79304437, 19.34995127)


def _horner(coefs, v):
    r = coefs[-1]
    for c in coefs[-2::-1]:
        r = r * v + c
    return r


def normal_cdf(x):
    """Φ(x), the standard normal's CDF, accurate in the tail where x < 0 (see the comment above)."""
    if x.dtype == jnp.float64:
        return 0.5 * jax.lax.erfc(-x * _SQRT_HALF)
    body = 0.5 + 0.5 * jax.lax.erf(x * _SQRT_HALF)
    s = jnp.maximum(jnp.abs(x), 1.0)
    v = 1.0 / (s * s)
    tail = (_INV_SQRT_2PI * jnp.exp(-0.5 * x * x)) * _horner(_MILLS_P, v) / (_horner(_MILLS_Q, v) * s)
    return jnp.where(jnp.abs(x) <= 1.0, body, jnp.where(x < 0, tail, 1.0 - tail))


def gelu_exact_plain(x):
    """The exact GELU ``x Φ(x)``, Φ the standard normal's CDF (:func:`normal_cdf`); any shape."""
    return x * normal_cdf(x)


def _gelu_exact_fwd(x):
    cdf = normal_cdf(x)
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
