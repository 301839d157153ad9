"""Layers along a time axis: BoW's causal average.

Shapes: ``B`` rows (words), ``T`` positions, ``C`` channels.
"""

from __future__ import annotations

import jax.numpy as jnp

from .base import with_backward


# --------------------------------------------------------------------------------------------
# Causal mean (BoW).  y_t = 1/(t+1) sum_{s<=t} x_s,  i.e. y = A @ x with A lower-triangular, rows
# summing to 1; so d_x = A.T @ d_y:  d_x_s = sum_{t>=s} d_y_t / (t+1)
# --------------------------------------------------------------------------------------------
def _causal_weights(T: int, dtype, transposed: bool = False):
    """``A`` [T, T] (``A[t, s] = 1/(t+1)`` for ``s <= t``), or ``A^T`` built as such (not transposed
    by XLA: a dot contracting the LHS's first axis misses XLA:CPU's fast GEMM path)."""
    t = jnp.arange(T)
    if transposed:
        return jnp.where(t[:, None] <= t[None, :], 1.0 / (t[None, :] + 1.0), 0.0).astype(dtype)
    return jnp.where(t[None, :] <= t[:, None], 1.0 / (t[:, None] + 1.0), 0.0).astype(dtype)


def _time_matmul(M, x, axis: int):
    """``M`` [T, T] applied along ``x``'s ``axis``: ``y[.., t, ..] = sum_s M[t, s] x[.., s, ..]``. With
    ``axis`` 0 (time-major) it is one [T, T] @ [T, rest] GEMM, no transposes."""
    return jnp.moveaxis(jnp.tensordot(M, x, axes=([1], [axis])), 0, axis)


def causal_mean_plain(x, axis: int = 1):
    """``x`` with its time axis at ``axis`` (default 1: [B, T, C]) -> ``y`` of the same shape, position
    t the mean of positions 0..t: ``y[:, t] = x[:, :t+1].mean(1)`` for [B, T, C] (makemore's
    ``CausalBoW``: a softmax over zeros with the future masked is exactly this average). ``axis`` 0
    is time-major [T, B, C], which BoW uses: the average is then one [T, T] GEMM."""
    return _time_matmul(_causal_weights(x.shape[axis], x.dtype), x, axis)


def _causal_mean_fwd(x, axis=1):
    return causal_mean_plain(x, axis), None


def _causal_mean_bwd(axis, _, d_y):
    # d_x_s = sum_{t >= s} d_y_t / (t + 1), i.e. d_x = A^T @ d_y: a reversed cumulative sum of d_y / (t + 1),
    # computed as a [T, T] matmul (faster on XLA:CPU than its reduce-window cumsum at T = 16)
    return (_time_matmul(_causal_weights(d_y.shape[axis], d_y.dtype, transposed=True), d_y, axis),)


causal_mean = with_backward(
    causal_mean_plain,
    _causal_mean_fwd,
    _causal_mean_bwd,
    nondiff_argnums=(1,),
    doc=""":func:`causal_mean_plain` with the backward ``d_x_s = sum_{t >= s} d_y_t / (t + 1)``
(``A^T @ d_y``). ``axis``: the time axis (default 1), not differentiated.""",
)
