"""Dense layers: linear, embedding, a GPT's position embedding and tied head, FlattenConsecutive, and
makemore's context linear.

Shapes: ``B`` batch rows (any number of leading axes where noted), ``T`` context length, ``E``
embedding size, ``K`` fan-in (or context positions), ``H`` hidden units, ``V`` vocabulary size.
Weights are stored ``[in, out]`` (a PyTorch ``nn.Linear``'s weight transposed).
"""

from __future__ import annotations

import jax.numpy as jnp

from ..errors import ConfigError
from .base import with_backward
from .products import matmul, matmul_nt, weight_grad


def wide(a):
    """``a`` in at least float32 (float32 and float64 unchanged): where products computed in bfloat16
    (:meth:`bpjax.layers.Layers.computing_in`) meet sums, as autocast does, the bias adds and their
    gradients' row sums, the softmax, are in float32."""
    return a.astype(jnp.promote_types(a.dtype, jnp.float32))


# --------------------------------------------------------------------------------------------
# Linear.  y = x @ W + b,   d_x = d_y @ W.T,  d_W = x.T @ d_y,  d_b = sum_rows(d_y)
# (In bfloat16: the products' inputs and results bfloat16, y and the bias sums float32.)
# --------------------------------------------------------------------------------------------
def linear_plain(x, W, b=None):
    """``x`` [..., K] @ ``W`` [K, N] (+ ``b`` [N]) -> [..., N]. ``b=None``: no bias. The product is in
    the inputs' dtype; ``y`` in at least float32 (:func:`wide`)."""
    y = wide(matmul(x, W))
    return y if b is None else y + wide(b)


def rows(a):
    """``a`` [..., C] as rows [N, C]: the leading axes (batch, time) flattened."""
    return a.reshape(-1, a.shape[-1])


def _linear_fwd(x, W, b=None):
    return linear_plain(x, W, b), (x, W, b)  # b for its dtype (no copy is made under jit)


def _linear_bwd(res, d_y):
    x, W, b = res
    x2, d_y2 = rows(x), rows(d_y)
    d_yc = d_y2.astype(x.dtype)  # the products in the inputs' dtype
    d_x = matmul_nt(d_yc, W).reshape(x.shape)
    return d_x, weight_grad(x2, d_yc), None if b is None else d_y2.sum(0).astype(b.dtype)


linear = with_backward(
    linear_plain,
    _linear_fwd,
    _linear_bwd,
    doc=""":func:`linear_plain` with the backward ``(d_y @ W.T, x.T @ d_y, d_y.sum(0))``.

Leading axes of ``x`` (batch, time) are rows for the weight and bias gradients.""",
)


# --------------------------------------------------------------------------------------------
# Embedding.  emb = C[X],   d_C[i] = sum over positions (b, t) with X[b, t] == i of d_emb[b, t]
# --------------------------------------------------------------------------------------------
def embedding_plain(C, X):
    """``C`` [V, E] gathered at ``X`` [B, T] int (any shape) -> ``emb`` [B, T, E]."""
    return C[X]


def _embedding_fwd(C, X):
    # C itself is kept only for its shape and dtype (no copy is made under jit).
    return embedding_plain(C, X), (C, X)


def _embedding_bwd(res, d_emb):
    C, X = res
    d_C = jnp.zeros_like(C).at[X.reshape(-1)].add(d_emb.reshape(-1, C.shape[1]))
    return d_C, None


embedding = with_backward(
    embedding_plain,
    _embedding_fwd,
    _embedding_bwd,
    doc=""":func:`embedding_plain` with the backward a scatter-add of ``d_emb`` into ``d_C``.

This is the notebook's double loop ``d_C[X[i, j]] += d_emb[i, j]`` as one scatter-add.""",
)


# --------------------------------------------------------------------------------------------
# Position embedding (GPT).  x = tok + wpe[:T]  (broadcast over the batch),
#   d_tok = d_x,  d_wpe[t] = sum over the batch of d_x[:, t] for t < T, 0 beyond
# --------------------------------------------------------------------------------------------
def add_positions_plain(tok, wpe):
    """``tok`` [B, T, C] plus the first T rows of the position table ``wpe`` [block_size, C]."""
    return tok + wpe[: tok.shape[-2]]


def _add_positions_fwd(tok, wpe):
    return add_positions_plain(tok, wpe), wpe.shape


def _add_positions_bwd(wpe_shape, d_x):
    T = d_x.shape[-2]
    d_wpe = jnp.zeros(wpe_shape, d_x.dtype).at[:T].set(d_x.reshape(-1, T, wpe_shape[-1]).sum(0))
    return d_x, d_wpe


add_positions = with_backward(
    add_positions_plain,
    _add_positions_fwd,
    _add_positions_bwd,
    doc=""":func:`add_positions_plain` with the backward ``(d_x, the batch's sum of d_x into wpe's first T rows)``.""",
)


# --------------------------------------------------------------------------------------------
# Tied head (GPT: the output layer is the token embedding).  logits = x @ wte.T
#   d_x = d_logits @ wte,   d_wte = d_logits.T @ x   (JAX adds the embedding's own gradient to it)
# --------------------------------------------------------------------------------------------
def tied_head_plain(x, wte):
    """``x`` [..., C] @ ``wte`` [V, C] transposed -> logits [..., V] (at least float32): the head that
    shares the token embedding's weights (nanoGPT's ``lm_head.weight = wte.weight``)."""
    return wide(matmul_nt(x, wte))


def _tied_head_fwd(x, wte):
    return tied_head_plain(x, wte), (x, wte)


def _tied_head_bwd(res, d_logits):
    x, wte = res
    x2, d2 = rows(x), rows(d_logits).astype(x.dtype)
    return matmul(d2, wte).reshape(x.shape), weight_grad(d2, x2)


tied_head = with_backward(
    tied_head_plain,
    _tied_head_fwd,
    _tied_head_bwd,
    doc=""":func:`tied_head_plain` with the backward ``(d_logits @ wte, d_logits.T @ x)``.""",
)


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


flatten_consecutive = with_backward(
    flatten_consecutive_plain,
    _flatten_fwd,
    _flatten_bwd,
    nondiff_argnums=(1,),
    doc=""":func:`flatten_consecutive_plain` with the backward "reshape the gradient back".""",
)


# --------------------------------------------------------------------------------------------
# Context linear (makemore's MLP): h = concat_k(wte[ids[..., k]]) @ W + b, computed as a sum of
# per-token projections  P_k = wte @ W_k  ([V, H] each, W_k the k-th E rows of W):
#   h = sum_k P_k[ids[..., k]] + b        (K·V·E·H multiply-adds instead of B·T·K·E·H)
#   d_P_k[v] = sum of d_h over the positions with ids[..., k] == v  (a scatter-add),
#   d_wte = sum_k d_P_k @ W_k^T,  d_W_k = wte^T @ d_P_k,  d_b = sum d_h
# --------------------------------------------------------------------------------------------
def _projections(wte, K: int, W):
    V, E = wte.shape
    # a batched matmul over k with wte broadcast: XLA:CPU runs it 2x faster than the einsum
    return jnp.broadcast_to(wte, (K, V, E)) @ W.reshape(K, E, W.shape[1])  # [K, V, H]


def context_linear_plain(wte, ids, W, b):
    """``wte`` [V, E] gathered at ``ids`` [..., K], the K embeddings concatenated, then ``@ W`` [K·E, H]
    ``+ b`` [H] -> [..., H]: ``linear(embedding(wte, ids).reshape(..., K·E), W, b)``, associated as a
    sum of per-token projections (the same value, far fewer FLOPs when V < B·T)."""
    K = ids.shape[-1]
    P = _projections(wte, K, W)
    h = b
    for k in range(K):  # K gathers of [..., H] that XLA fuses with the sum (one [..., K, H] gather is 4x slower)
        h = h + P[k][ids[..., k]]
    return h


def _context_linear_fwd(wte, ids, W, b):
    return context_linear_plain(wte, ids, W, b), (wte, ids, W)


def _context_linear_bwd(res, d_h):
    wte, ids, W = res
    V, E = wte.shape
    K, H = ids.shape[-1], W.shape[1]
    d_rows = d_h.reshape(-1, H)
    d_P = jnp.zeros((K, V, H), d_h.dtype)
    for k in range(K):  # d_P_k[v] += d_h at every position whose k-th token is v
        d_P = d_P.at[k, ids[..., k].reshape(-1)].add(d_rows)
    W3 = W.reshape(K, E, H)
    d_wte = (d_P @ jnp.swapaxes(W3, 1, 2)).sum(0)  # sum_k d_P_k @ W_k^T: a batched dot XLA:CPU runs as NT
    d_W = (jnp.broadcast_to(wte.T, (K, E, V)) @ d_P).reshape(K * E, H)
    return d_wte, None, d_W, d_rows.sum(0)


context_linear = with_backward(
    context_linear_plain,
    _context_linear_fwd,
    _context_linear_bwd,
    doc=""":func:`context_linear_plain` with the backward a scatter-add into the per-token projections, then
two small matmuls (see the comment above).""",
)
