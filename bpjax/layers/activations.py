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
#   float32: ½ + ½ erf(x / √2) for |x| <= 1 (Φ >= 0.16: no cancellation), erf(z) by its Taylor
#            series to z^15 (|z| <= 1/√2: truncation 4.5e-9; no division); beyond, the tail
#            t = φ(x) · R(1/x²) / |x| = Φ(-|x|), Φ = t for x < -1 and 1 - t for x > 1 (monotone
#            where erf's form wobbles by a few ulps below 1), R a (5, 5) rational fit of the Mills
#            ratio |x|(1 - Φ(|x|))/φ(x) on 1/x² in (0, 1] (relative error 3.7e-9 in float64),
#            evaluated as P(w)/Q(w) in w = x² (both polynomials times w^5: no reciprocal; |x|
#            clipped at 16, beyond which φ is 0 in float32). Every transcendental and division is
#            used once, so XLA computes Φ in one loop fusion instead of materialising erf, exp
#            and the tail as arrays of their own (XLA:CPU does not fuse an expensive op into two
#            consumers). Over 3M points in [-20, 10], against float64: Φ and x Φ(x) within 4.2e-6
#            relative (XLA's erfc: 1.4e-5), the error of x² rounded in φ's exponent.
# The backward recomputes Φ and φ from x (behind a barrier, so that XLA does not share them with the
# forward's fusion): one pass reading x, where keeping Φ would write and read a float32 array; in the
# GPT's step with bfloat16 products this form, the forward's single fusion and the attention's head
# copies (attention.py) together: ~3% less time a step (16 alternated chunks in one process).
# --------------------------------------------------------------------------------------------
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MILLS_P = (1.0, 18.61857182, 97.3394463, 159.71036378, 67.32794709, 3.18523959)
_MILLS_Q = (1.0, 19.61856831, 113.95855746, 229.77873529, 145.79304437, 19.34995127)


_MILLS_P_REV, _MILLS_Q_REV = _MILLS_P[::-1], _MILLS_Q[::-1]
_TAIL_CLIP = 16.0
_ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(8))


def _horner(coefs, v):
    r = coefs[-1]
    for c in coefs[-2::-1]:
        r = r * v + c
    return r


def _normal_pdf(x):
    """φ(x) = exp(-x²/2) / √(2π)."""
    return _INV_SQRT_2PI * jnp.exp(-0.5 * x * x)


def normal_cdf(x):
    """Φ(x), the standard normal's CDF, accurate in the tail where x < 0 (see the comment above)."""
    if x.dtype == jnp.float64:
        return 0.5 * jax.lax.erfc(-x * _SQRT_HALF)
    z = x * _SQRT_HALF
    body = 0.5 + 0.5 * (z * _horner(_ERF_TAYLOR, z * z))
    a = jnp.abs(x)
    s = jnp.clip(a, 1.0, _TAIL_CLIP)
    w = s * s
    tail = _normal_pdf(x) * _horner(_MILLS_P_REV, w) / (_horner(_MILLS_Q_REV, w) * s)
    neg = x < 0
    return jnp.where(a <= 1.0, body, jnp.where(neg, 0.0, 1.0) + jnp.where(neg, 1.0, -1.0) * tail)


def gelu_exact_plain(x):
    """The exact GELU ``x Φ(x)``, Φ the standard normal's CDF (:func:`normal_cdf`); any shape."""
    return x * normal_cdf(x)


def _gelu_exact_fwd(x):
    return x * normal_cdf(x), x


def _gelu_exact_bwd(x, d_y):
    x = jax.lax.optimization_barrier(x)
    return (d_y * (normal_cdf(x) + x * _normal_pdf(x)),)


gelu_exact = with_backward(
    gelu_exact_plain,
    _gelu_exact_fwd,
    _gelu_exact_bwd,
    doc=""":func:`gelu_exact_plain` with its derivative ``Φ(x) + x·φ(x)``, Φ recomputed from x.""",
)
