"""One ``jax.custom_vjp`` per layer: the forward and its hand-written backward side by side.

Each layer comes twice:

* ``<layer>_plain`` — the forward in plain ``jnp``; ``jax.grad`` differentiates it (the oracle);
* ``<layer>`` — the same forward wrapped in ``jax.custom_vjp``, whose ``bwd`` is the formula
  derived in the notebook. Residuals are named after the notebook's variables.

Each custom layer is built *from* its plain twin (``jax.custom_vjp(<layer>_plain)``, see
:func:`with_backward`): its forward is the plain function itself, not a restated body, so a model
built from either set computes the same value and only the backward differs. :data:`PLAIN` and
:data:`MANUAL` bundle the two sets so a model
is written once (see ``bpjax.mlp``) and ``--grad manual|autodiff`` is one swap.

Shapes: ``B`` batch rows (any number of leading axes where noted), ``T`` context length,
``E`` embedding size, ``K`` fan-in, ``H`` hidden units, ``V`` vocabulary size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .errors import ConfigError

BN_EPS = 1e-5


def with_backward(plain: Callable, fwd: Callable, bwd: Callable, *, nondiff_argnums=(), doc: str = ""):
    """``plain`` wrapped in ``jax.custom_vjp`` with the hand-written rule ``(fwd, bwd)``.

    The primal function *is* ``plain`` (``layer.fun is plain``): only the backward is new. ``fwd``
    returns ``(plain's output, residuals)``; ``bwd(residuals, d_out)`` returns one cotangent per
    argument (``None`` for an integer one).
    """
    f = jax.custom_vjp(plain, nondiff_argnums=nondiff_argnums)
    f.defvjp(fwd, bwd)
    f.__name__ = f.__qualname__ = plain.__name__.removesuffix("_plain")
    f.__doc__ = doc
    return f


# --------------------------------------------------------------------------------------------
# Cross-entropy.  loss = -mean_i log softmax(logits_i)[Y_i]
#   d_logits = (softmax(logits) - one_hot(Y)) / n
# --------------------------------------------------------------------------------------------
def _cross_entropy_parts(logits, Y):
    """The notebook's chunked softmax + NLL. Returns ``(loss, probs)``."""
    n = logits.shape[0]
    logit_maxes = logits.max(1, keepdims=True)
    norm_logits = logits - logit_maxes  # subtract the max so exp cannot overflow
    counts = jnp.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = jnp.log(probs)
    loss = -logprobs[jnp.arange(n), Y].mean()
    return loss, probs


def cross_entropy_plain(logits, Y):
    """Mean negative log-likelihood. ``logits`` [B, V] float, ``Y`` [B] int -> scalar."""
    return _cross_entropy_parts(logits, Y)[0]


def _cross_entropy_fwd(logits, Y):
    loss, probs = _cross_entropy_parts(logits, Y)
    return loss, (probs, Y)


def _cross_entropy_bwd(res, d_loss):
    probs, Y = res
    n, V = probs.shape
    d_logits = (probs - jax.nn.one_hot(Y, V, dtype=probs.dtype)) * (d_loss / n)
    return d_logits, None  # Y is an integer input: no cotangent


cross_entropy = with_backward(cross_entropy_plain, _cross_entropy_fwd, _cross_entropy_bwd, doc="""
:func:`cross_entropy_plain` with the fused backward ``(probs - one_hot(Y)) / n``.""")


# --------------------------------------------------------------------------------------------
# Masked cross-entropy (makemore's padded sequences: targets -1 are ignored).
#   loss = -sum_{i: Y_i >= 0} log softmax(logits_i)[Y_i] / n_valid
#   d_logits = (softmax(logits) - one_hot(Y)) * mask / n_valid
# --------------------------------------------------------------------------------------------
def _masked_parts(logits, Y):
    """Rows flattened: ``logits`` [..., V] -> [R, V], ``Y`` [...] -> [R]. Returns ``(loss, probs,
    mask, n_valid)``; ``n_valid`` is at least 1, so a batch with no target gives loss 0, not 0/0."""
    V = logits.shape[-1]
    logits, Y = logits.reshape(-1, V), Y.reshape(-1)
    mask = Y >= 0
    logit_maxes = logits.max(1, keepdims=True)  # subtract the max so exp cannot overflow
    norm_logits = logits - logit_maxes
    counts = jnp.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    probs = counts / counts_sum
    logprobs = norm_logits - jnp.log(counts_sum)
    picked = jnp.take_along_axis(logprobs, jnp.where(mask, Y, 0)[:, None], axis=1)[:, 0]
    n_valid = jnp.maximum(mask.sum(), 1).astype(logits.dtype)
    loss = -jnp.where(mask, picked, 0).sum() / n_valid
    return loss, probs, mask, n_valid


def cross_entropy_masked_plain(logits, Y):
    """Mean negative log-likelihood over the real targets. ``logits`` [..., V] float, ``Y`` [...]
    int with ``-1`` where there is no target (PyTorch's ``ignore_index=-1``) -> scalar."""
    return _masked_parts(logits, Y)[0]


def _cross_entropy_masked_fwd(logits, Y):
    loss, probs, mask, n_valid = _masked_parts(logits, Y)
    return loss, (probs, Y, mask, n_valid, logits.shape)


def _cross_entropy_masked_bwd(res, d_loss):
    probs, Y, mask, n_valid, shape = res
    one_hot = jax.nn.one_hot(jnp.where(mask, Y.reshape(-1), 0), probs.shape[1], dtype=probs.dtype)
    d_logits = (probs - one_hot) * (mask[:, None] * (d_loss / n_valid))  # a masked row gets exactly 0
    return d_logits.reshape(shape), None


cross_entropy_masked = with_backward(cross_entropy_masked_plain, _cross_entropy_masked_fwd,
                                     _cross_entropy_masked_bwd, doc="""
:func:`cross_entropy_masked_plain` with the fused backward ``(probs - one_hot(Y)) * mask / n_valid``.""")


# --------------------------------------------------------------------------------------------
# Batch norm, training mode, Bessel's n - 1, over every axis but the last (n = rows = B or B*T).
#   h_preact = bngain * bn_raw + bnbias,   bn_raw = (x - mean) * (var + eps)^-1/2
#   d_x = bngain * bn_var_inv / n * (n*d - sum(d) - n/(n-1) * bn_raw * sum(d * bn_raw))
# --------------------------------------------------------------------------------------------
def _bn_rows(x) -> tuple[tuple[int, ...], int]:
    axes = tuple(range(x.ndim - 1))
    n = math.prod(x.shape[:-1])
    if n < 2:
        raise ConfigError(f"batch norm needs at least 2 rows per batch (Bessel's n - 1 would be 0), "
                          f"got input of shape {tuple(x.shape)}; use a batch size >= 2")
    return axes, n


def _batchnorm_parts(h_pre_bn, bngain, bnbias):
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
    return _batchnorm_parts(h_pre_bn, bngain, bnbias)[0]


def _batchnorm_fwd(h_pre_bn, bngain, bnbias):
    h_preact, bn_raw, bn_var_inv = _batchnorm_parts(h_pre_bn, bngain, bnbias)
    return h_preact, (bn_raw, bn_var_inv, bngain, bnbias)


def _batchnorm_bwd(res, d_h_preact):
    bn_raw, bn_var_inv, bngain, bnbias = res
    axes, n = _bn_rows(bn_raw)
    d_bnbias_full = d_h_preact.sum(axes, keepdims=True)
    d_bngain_full = (bn_raw * d_h_preact).sum(axes, keepdims=True)
    d_h_pre_bn = bngain * bn_var_inv / n * (n * d_h_preact - d_h_preact.sum(axes, keepdims=True)
                                            - n / (n - 1) * bn_raw * d_bngain_full)
    # bngain, bnbias hold one value per feature ([1, H] or [H]): keepdims sums reshape onto them.
    return d_h_pre_bn, d_bngain_full.reshape(bngain.shape), d_bnbias_full.reshape(bnbias.shape)


batchnorm = with_backward(batchnorm_plain, _batchnorm_fwd, _batchnorm_bwd, doc="""
:func:`batchnorm_plain` with the notebook's one-line backward for ``h_pre_bn``.""")


def batchnorm_eval(h_pre_bn, bngain, bnbias, bnmean, bnvar):
    """Eval-mode batch norm: fixed statistics (a calibration's or running ones) instead of the batch's.

    ``bngain * (h_pre_bn - bnmean) * (bnvar + eps)^-1/2 + bnbias``; every argument broadcasts to
    ``h_pre_bn`` [..., H]. The one eval-mode batch norm of every model.
    """
    return bngain * (h_pre_bn - bnmean) * (bnvar + BN_EPS) ** -0.5 + bnbias


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


tanh = with_backward(tanh_plain, _tanh_fwd, _tanh_bwd, doc="""
:func:`tanh_plain` with the backward ``(1 - h**2) * d_h``, reusing the output ``h``.""")


# --------------------------------------------------------------------------------------------
# Linear.  y = x @ W + b,   d_x = d_y @ W.T,  d_W = x.T @ d_y,  d_b = sum_rows(d_y)
# --------------------------------------------------------------------------------------------
def linear_plain(x, W, b=None):
    """``x`` [..., K] @ ``W`` [K, N] (+ ``b`` [N]) -> [..., N]. ``b=None``: no bias."""
    y = x @ W
    return y if b is None else y + b


def weight_grad(x, d_y):
    """``x.T @ d_y`` for rows ``x`` [N, K] and ``d_y`` [N, M] -> [K, M]: a weight's gradient.

    On XLA:CPU a dot that contracts the LHS's first axis misses the fast (YNN) GEMM path, and
    its transposes are slow (~0.6 ns an element) and fuse their producers into a strided loop.
    So one operand is transposed explicitly, behind optimization barriers (XLA cannot fold it
    back into the dot): ``x.T`` (N·K elements), or, when that is more, ``d_y.T`` and the [M, K]
    product, ``(d_y.T @ x).T`` (N·M + M·K). The value is the same. Measured (steps/s, same session):
    Transformer ~103 -> 126-135 (with attention's transposed operands materialised too), BoW 1,816 ->
    2,059, Bengio's MLP 2,065 -> 2,176; the MLP and WaveNet unchanged (the first rule alone, before
    this choice: WaveNet 2,640 -> 3,080).
    """
    (n, k), m = x.shape, d_y.shape[1]
    barrier = jax.lax.optimization_barrier
    if n * m + m * k < n * k:
        return barrier(barrier(d_y.T) @ x).T
    return barrier(x.T) @ d_y


def _linear_fwd(x, W, b=None):
    return linear_plain(x, W, b), (x, W, b is None)


def _linear_bwd(res, d_y):
    x, W, no_bias = res
    x2 = x.reshape(-1, x.shape[-1])
    d_y2 = d_y.reshape(-1, d_y.shape[-1])
    d_x = (d_y2 @ W.T).reshape(x.shape)
    return d_x, weight_grad(x2, d_y2), None if no_bias else d_y2.sum(0)


linear = with_backward(linear_plain, _linear_fwd, _linear_bwd, doc="""
:func:`linear_plain` with the backward ``(d_y @ W.T, x.T @ d_y, d_y.sum(0))``.

Leading axes of ``x`` (batch, time) are rows for the weight and bias gradients.""")


# --------------------------------------------------------------------------------------------
# FlattenConsecutive(n).  [B, T, C] -> [B, T/n, n·C] (-> [B, n·C] when T/n == 1): a reshape, so
#   d_x = d_y reshaped back to [B, T, C]
# --------------------------------------------------------------------------------------------
def _flat_shape(x, n: int):
    if x.ndim != 3:
        raise ConfigError(f"flatten_consecutive expects [batch, time, channels], got shape {tuple(x.shape)}")
    B, T, C = x.shape
    if T % n:
        raise ConfigError(f"flatten_consecutive({n}) needs a time axis divisible by {n}, got T = {T}")
    return (B, n * C) if T == n else (B, T // n, n * C)


def flatten_consecutive_plain(x, n: int):
    """Concatenate every ``n`` consecutive time steps: the lecture's ``FlattenConsecutive``."""
    return x.reshape(_flat_shape(x, n))


def _flatten_fwd(x, n):
    return flatten_consecutive_plain(x, n), x.shape


def _flatten_bwd(n, x_shape, d_y):
    return (d_y.reshape(x_shape),)


flatten_consecutive = with_backward(flatten_consecutive_plain, _flatten_fwd, _flatten_bwd, nondiff_argnums=(1,),
                                    doc="""
:func:`flatten_consecutive_plain` with the backward "reshape the gradient back".""")


# --------------------------------------------------------------------------------------------
# Embedding.  emb = C[X],   d_C[i] = sum over positions (b, t) with X[b, t] == i of d_emb[b, t]
# --------------------------------------------------------------------------------------------
def embedding_plain(C, X):
    """``C`` [V, E] gathered at ``X`` [B, T] int -> ``emb`` [B, T, E]."""
    return C[X]


def _embedding_fwd(C, X):
    # C itself is kept only for its shape and dtype (no copy is made under jit).
    return embedding_plain(C, X), (C, X)


def _embedding_bwd(res, d_emb):
    C, X = res
    d_C = jnp.zeros_like(C).at[X.reshape(-1)].add(d_emb.reshape(-1, C.shape[1]))
    return d_C, None


embedding = with_backward(embedding_plain, _embedding_fwd, _embedding_bwd, doc="""
:func:`embedding_plain` with the backward a scatter-add of ``d_emb`` into ``d_C``.

This is the notebook's double loop ``d_C[X[i, j]] += d_emb[i, j]`` as one scatter-add.""")


# --------------------------------------------------------------------------------------------
class Layers(NamedTuple):
    """A set of layer functions: the model is written once against this interface."""

    embedding: Callable
    linear: Callable
    batchnorm: Callable
    tanh: Callable
    cross_entropy: Callable
    flatten_consecutive: Callable
    cross_entropy_masked: Callable


PLAIN = Layers(embedding_plain, linear_plain, batchnorm_plain, tanh_plain, cross_entropy_plain,
               flatten_consecutive_plain, cross_entropy_masked_plain)
"""Plain ``jnp`` layers: ``jax.grad`` derives their backward (the oracle)."""

MANUAL = Layers(embedding, linear, batchnorm, tanh, cross_entropy, flatten_consecutive, cross_entropy_masked)
"""``custom_vjp`` layers: their backward is hand-written above."""
