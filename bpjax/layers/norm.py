"""Normalisation: batch norm (training and eval mode, with running statistics) and layer norm.

Shapes: ``N`` rows (every axis but the last: ``B`` or ``B·T``), ``H`` (or ``C``) features.
"""

from __future__ import annotations

import math

import jax

from ..errors import ConfigError
from .base import with_backward

BN_EPS = 1e-5
MOMENTUM = 0.1
"""``nn.BatchNorm1d``'s momentum: ``running = 0.9 * running + 0.1 * batch statistic``."""


# --------------------------------------------------------------------------------------------
# Batch norm, training mode, Bessel's n - 1, over every axis but the last (n = rows = B or B*T).
#   h_preact = bngain * bn_raw + bnbias,   bn_raw = (x - mean) * (var + eps)^-1/2
#   d_x = bngain * bn_var_inv / n * (n*d - sum(d) - n/(n-1) * bn_raw * sum(d * bn_raw))
# --------------------------------------------------------------------------------------------
def _bn_rows(x) -> tuple[tuple[int, ...], int]:
    axes = tuple(range(x.ndim - 1))
    n = math.prod(x.shape[:-1])
    if n < 2:
        raise ConfigError(
            f"batch norm needs at least 2 rows per batch (Bessel's n - 1 would be 0), "
            f"got input of shape {tuple(x.shape)}; use a batch size >= 2"
        )
    return axes, n


def batchnorm_parts(h_pre_bn, bngain, bnbias):
    """The forward's named pieces: ``(h_preact, bn_raw, bn_var_inv)``."""
    axes, n = _bn_rows(h_pre_bn)
    bn_mean_i = 1 / n * h_pre_bn.sum(axes, keepdims=True)
    bn_diff = h_pre_bn - bn_mean_i
    bn_diff_sq = bn_diff**2
    bn_var = 1 / (n - 1) * bn_diff_sq.sum(axes, keepdims=True)  # Bessel's correction
    bn_var_inv = (bn_var + BN_EPS) ** -0.5
    bn_raw = bn_diff * bn_var_inv
    h_preact = bngain * bn_raw + bnbias
    return h_preact, bn_raw, bn_var_inv


def batchnorm_plain(h_pre_bn, bngain, bnbias):
    """Training-mode batch norm. ``h_pre_bn`` [..., H]; ``bngain``, ``bnbias`` broadcast to [..., H].

    Statistics are over every axis but the last, with Bessel's ``n - 1`` and eps 1e-5.
    """
    return batchnorm_parts(h_pre_bn, bngain, bnbias)[0]


def _batchnorm_fwd(h_pre_bn, bngain, bnbias):
    h_preact, bn_raw, bn_var_inv = batchnorm_parts(h_pre_bn, bngain, bnbias)
    return h_preact, (bn_raw, bn_var_inv, bngain, bnbias)


def batchnorm_backward(res, d_h_preact):
    """The hand-written rule on the residuals ``(bn_raw, bn_var_inv, bngain, bnbias)``:
    ``(d_h_pre_bn, d_bngain, d_bnbias)``."""
    bn_raw, bn_var_inv, bngain, bnbias = res
    axes, n = _bn_rows(bn_raw)
    d_bnbias_full = d_h_preact.sum(axes, keepdims=True)
    d_bngain_full = (bn_raw * d_h_preact).sum(axes, keepdims=True)
    d_h_pre_bn = (
        bngain
        * bn_var_inv
        / n
        * (n * d_h_preact - d_h_preact.sum(axes, keepdims=True) - n / (n - 1) * bn_raw * d_bngain_full)
    )
    # bngain, bnbias hold one value per feature ([1, H] or [H]): keepdims sums reshape onto them.
    return d_h_pre_bn, d_bngain_full.reshape(bngain.shape), d_bnbias_full.reshape(bnbias.shape)


batchnorm = with_backward(
    batchnorm_plain,
    _batchnorm_fwd,
    batchnorm_backward,
    doc=""":func:`batchnorm_plain` with the notebook's one-line backward for ``h_pre_bn``.""",
)


def batchnorm_eval(h_pre_bn, bngain, bnbias, bnmean, bnvar):
    """Eval-mode batch norm: fixed statistics (a calibration's or running ones) instead of the batch's.

    ``bngain * (h_pre_bn - bnmean) * (bnvar + eps)^-1/2 + bnbias``; every argument broadcasts to
    ``h_pre_bn`` [..., H]. The one eval-mode batch norm of every model (no backward: eval only).
    """
    return bngain * (h_pre_bn - bnmean) * (bnvar + BN_EPS) ** -0.5 + bnbias


def batch_stats(x):
    """Mean and Bessel variance of ``x`` [..., H] over every axis but the last (no gradient)."""
    x = jax.lax.stop_gradient(x)
    axes = tuple(range(x.ndim - 1))
    return x.mean(axes), x.var(axes, ddof=1)


def running_stats(like) -> dict:
    """``{"running_mean": 0, "running_var": 1}`` shaped like ``like`` [H]: ``nn.BatchNorm1d``'s start."""
    import jax.numpy as jnp

    return {"running_mean": jnp.zeros_like(like), "running_var": jnp.ones_like(like)}


def running_batchnorm(ly, x, bngain, bnbias, running: dict, momentum: float = MOMENTUM):
    """``nn.BatchNorm1d``: batch norm that keeps running statistics, as explicit state.

    Training mode (``ly.training``): ``ly.batchnorm`` on the batch's statistics, and ``running``
    (``{"running_mean", "running_var"}``, [H]) moved ``momentum`` of the way to them (Bessel's
    variance); eval mode: ``ly.batchnorm_eval`` with the running ones, which stay. Returns
    ``(y, running)``.
    """
    if not ly.training:
        return ly.batchnorm_eval(x, bngain, bnbias, running["running_mean"], running["running_var"]), running
    mean, var = batch_stats(x)
    new = {
        "running_mean": (1 - momentum) * running["running_mean"] + momentum * mean,
        "running_var": (1 - momentum) * running["running_var"] + momentum * var,
    }
    return ly.batchnorm(x, bngain, bnbias), new


# --------------------------------------------------------------------------------------------
# Layer norm (makemore's nn.LayerNorm: over the last axis, biased variance, eps 1e-5).
#   xhat = (x - mean) * rstd,  y = g * xhat + b,  rstd = (var + eps)^-1/2,  n = C features
#   d_x = rstd / n * (n * d_xhat - sum(d_xhat) - xhat * sum(d_xhat * xhat)),  d_xhat = g * d_y
#   (batch norm's one-line backward, over the feature axis, with n where batch norm has n - 1)
# --------------------------------------------------------------------------------------------
LN_EPS = 1e-5


def _layernorm_parts(x, g, b):
    mean = x.mean(-1, keepdims=True)
    diff = x - mean
    rstd = ((diff**2).mean(-1, keepdims=True) + LN_EPS) ** -0.5
    xhat = diff * rstd
    return (xhat * g if b is None else g * xhat + b), xhat, rstd


def layernorm_plain(x, g, b):
    """``x`` [..., C] normalised over its last axis, times ``g`` [C], plus ``b`` [C] (None: no bias)."""
    return _layernorm_parts(x, g, b)[0]


def _layernorm_fwd(x, g, b):
    y, xhat, rstd = _layernorm_parts(x, g, b)
    return y, (xhat, rstd, g, b is None)


def _layernorm_bwd(res, d_y):
    xhat, rstd, g, no_bias = res
    n = xhat.shape[-1]
    d_xhat = g * d_y
    d_x = rstd / n * (n * d_xhat - d_xhat.sum(-1, keepdims=True) - xhat * (d_xhat * xhat).sum(-1, keepdims=True))
    axes = tuple(range(d_y.ndim - 1))
    return d_x, (d_y * xhat).sum(axes), None if no_bias else d_y.sum(axes)


layernorm = with_backward(
    layernorm_plain,
    _layernorm_fwd,
    _layernorm_bwd,
    doc=""":func:`layernorm_plain` with the one-line backward
``rstd/n * (n*d_xhat - sum(d_xhat) - xhat*sum(d_xhat*xhat))``.""",
)
