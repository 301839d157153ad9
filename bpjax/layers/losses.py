"""Losses: the fused cross-entropy of exercise 2 and makemore's masked one.

Shapes: ``N`` rows (any leading axes, flattened), ``V`` vocabulary size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import with_backward


# --------------------------------------------------------------------------------------------
# Cross-entropy.  loss = -mean_i log softmax(logits_i)[Y_i]
#   d_logits = (softmax(logits) - one_hot(Y)) / n
# --------------------------------------------------------------------------------------------
def _cross_entropy_parts(logits, Y):
    """The notebook's chunked softmax, its loss taken as log-softmax. Rows flattened: ``logits``
    [..., V] -> [N, V], ``Y`` [...] -> [N]. Returns ``(loss, probs)``.

    ``logprobs = norm_logits - log(counts_sum)``, where the notebook has ``probs.log()``: the same
    value, but where a probability underflows float32 (a confident wrong guess at a wild
    initialisation) ``probs.log()`` is ``-inf`` and the loss ``inf``; log-softmax stays finite and
    exact, as PyTorch's ``F.cross_entropy`` (measured: the part-3 MLP at its ``randn`` init, one seed:
    ``inf`` against 25.42). The atomic chain of exercise 1 (:func:`bpjax.models.mlp.forward_chunked`)
    keeps ``probs.log()``, as written. ``probs`` is the backward's residual.
    """
    V = logits.shape[-1]
    logits, Y = logits.reshape(-1, V), Y.reshape(-1)
    n = logits.shape[0]
    logit_maxes = logits.max(1, keepdims=True)
    norm_logits = logits - logit_maxes  # subtract the max so exp cannot overflow
    counts = jnp.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = norm_logits - jnp.log(counts_sum)
    loss = -logprobs[jnp.arange(n), Y].mean()
    return loss, probs


def cross_entropy_plain(logits, Y):
    """Mean negative log-likelihood. ``logits`` [..., V] float, ``Y`` [...] int -> scalar."""
    return _cross_entropy_parts(logits, Y)[0]


def _cross_entropy_fwd(logits, Y):
    loss, probs = _cross_entropy_parts(logits, Y)
    return loss, (probs, Y, logits.shape)


def _cross_entropy_bwd(res, d_loss):
    probs, Y, shape = res
    n, V = probs.shape
    d_logits = (probs - jax.nn.one_hot(Y.reshape(-1), V, dtype=probs.dtype)) * (d_loss / n)
    return d_logits.reshape(shape), None  # Y is an integer input: no cotangent


cross_entropy = with_backward(
    cross_entropy_plain,
    _cross_entropy_fwd,
    _cross_entropy_bwd,
    doc=""":func:`cross_entropy_plain` with the fused backward ``(probs - one_hot(Y)) / n``.""",
)


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


cross_entropy_masked = with_backward(
    cross_entropy_masked_plain,
    _cross_entropy_masked_fwd,
    _cross_entropy_masked_bwd,
    doc=""":func:`cross_entropy_masked_plain` with the fused backward ``(probs - one_hot(Y)) * mask / n_valid``.""",
)
