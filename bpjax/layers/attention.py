"""Causal self-attention as one layer: the projections, the heads, the masked softmax and the
output projection, with the whole layer's backward by hand.

Shapes: ``B`` rows, ``T`` positions, ``C`` channels, ``nh`` heads of ``hs = C / nh``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .base import with_backward
from .dense import rows, wide
from .products import matmul, matmul_nt, matmul_tn, row_major, weight_grad


# --------------------------------------------------------------------------------------------
# Causal self-attention, one layer: projections, heads, scaled scores, causal mask, softmax,
# dropout, weighted sum, output projection.  With q, k, v [B, nh, T, hs] from x @ W_attn + b_attn:
#   S = q k^T / √hs (future masked to -inf),  P = softmax(S),  P' = dropout(P) (P without dropout),
#   Yh = P' v,  out = merge(Yh) @ W_proj + b_proj
#   d_Yh = split(d_out @ W_proj^T),  d_P' = d_Yh v^T,  d_v = P'^T d_Yh,  d_P = d_P' * mask / (1 - p),
#   d_S = P * (d_P - rowsum(d_P * P))   (softmax; masked entries have P = 0, so d_S = 0 there)
#   d_q = d_S k / √hs,  d_k = d_S^T q / √hs,  d_x = d_qkv @ W_attn^T
# Layouts (XLA:CPU's bfloat16 GEMM takes row-major a @ b only, products.py): q k^T and d_Yh v^T
# multiply k^T and v^T copied straight out of qkv, and the float32 products' rounding to bfloat16 is
# done in the copies that split and merge the heads, not in passes of their own; the causal mask is
# added (0 or -inf), which XLA fuses into the scores' product.
# --------------------------------------------------------------------------------------------
def _heads(a, n_head: int, dtype=None, *, keys_last: bool = False):
    """``a`` [B, T, C] as its heads [B, nh, T, hs] (``keys_last``: [B, nh, hs, T], each head
    transposed) in ``dtype`` (default ``a``'s): one copy, the rounding of a float32 product fused in."""
    B, T, C = a.shape
    h = a.reshape(B, T, n_head, C // n_head).transpose((0, 2, 3, 1) if keys_last else (0, 2, 1, 3))
    return row_major(h.astype(a.dtype if dtype is None else dtype))


def _merge(a):
    B, nh, T, hs = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)


def _keep(key, p: float, shape):
    """Dropout's mask: True where an entry is kept (probability ``1 - p``); None without dropout."""
    return None if key is None or not p else jax.random.bernoulli(key, 1.0 - p, shape)


def _attention_parts(x, W_attn, b_attn, W_proj, b_proj, key=None, p: float = 0.0):
    C, n_head = x.shape[-1], W_attn.shape[2]
    qkv = matmul(x, W_attn.reshape(C, 3 * C), rounded=False)
    if b_attn is not None:  # the bias added in float32 at least, the heads' products in x's dtype
        qkv = wide(qkv) + wide(b_attn.reshape(3 * C))
    # each head tensor is one copy out of qkv, rounded to x's dtype on the way: q, k^T and v for the
    # forward's products, k and v^T for the backward's (unused by the plain forward: XLA drops them)
    qs, ks, vs = (qkv[..., i * C : (i + 1) * C] for i in range(3))
    q, kT, v = _heads(qs, n_head, x.dtype), _heads(ks, n_head, x.dtype, keys_last=True), _heads(vs, n_head, x.dtype)
    k, vT = _heads(ks, n_head, x.dtype), _heads(vs, n_head, x.dtype, keys_last=True)
    T = x.shape[1]
    S = wide(matmul(q, kT)) * (1.0 / math.sqrt(C // n_head))
    S = S + jnp.where(jnp.tril(jnp.ones((T, T), bool)), 0.0, -jnp.inf).astype(S.dtype)  # the future masked: S + -inf
    S = S - jax.lax.stop_gradient(S.max(-1, keepdims=True))  # the diagonal is never masked: finite
    e = jnp.exp(S)
    P = e / e.sum(-1, keepdims=True)
    keep = _keep(key, p, P.shape)
    P_used = P if keep is None else jnp.where(keep, P * (1.0 / (1.0 - p)), 0.0)  # dropout on the probabilities
    P_used = P_used.astype(x.dtype)
    y = _merge(matmul(P_used, v, rounded=False)).astype(x.dtype)
    out = wide(matmul(y, W_proj))
    return (out if b_proj is None else out + wide(b_proj)), (q, k, vT, P, keep, P_used, y)


def attention_plain(x, W_attn, b_attn, W_proj, b_proj, key=None, p: float = 0.0):
    """``x`` [B, T, C]; ``W_attn`` [C, 3, nh, hs]: the q, k and v projections of each of the nh heads
    of hs = C / nh (the head count is read off this shape; reshaped to [C, 3C] it is makemore's and
    nanoGPT's ``c_attn`` weight, transposed), ``b_attn`` their bias ([3, nh, hs] or [3C]; None: none);
    ``W_proj`` [C, C], ``b_proj`` [C] (or None) -> [B, T, C]. Position t attends to positions 0..t
    only. ``key``, ``p``: dropout of probability ``p`` on the attention probabilities, its mask drawn
    from ``key`` (None: no dropout; ``p`` is static)."""
    return _attention_parts(x, W_attn, b_attn, W_proj, b_proj, key, p)[0]


def _attention_fwd(x, W_attn, b_attn, W_proj, b_proj, key=None, p=0.0):
    out, (q, k, vT, P, keep, P_used, y) = _attention_parts(x, W_attn, b_attn, W_proj, b_proj, key, p)
    return out, (x, W_attn, b_attn, W_proj, b_proj, q, k, vT, P, keep, P_used, y)  # the biases for shape and dtype


def _attention_bwd(p, res, d_out):
    x, W_attn, b_attn, W_proj, b_proj, q, k, vT, P, keep, P_used, y = res
    C, n_head = x.shape[-1], W_attn.shape[2]
    scale = 1.0 / math.sqrt(C // n_head)
    d_outc = d_out.astype(x.dtype)  # the products in the inputs' dtype
    d_W_proj = weight_grad(rows(y), rows(d_outc))
    d_b_proj = None if b_proj is None else rows(d_out).sum(0).astype(b_proj.dtype)
    d_Yh = _heads(matmul_nt(d_outc, W_proj, rounded=False), n_head, x.dtype)
    d_P = wide(matmul(d_Yh, vT))  # into the probabilities used
    d_v = matmul_tn(P_used, d_Yh)
    if keep is not None:  # through dropout: the kept entries, scaled
        d_P = jnp.where(keep, d_P * (1.0 / (1.0 - p)), 0.0)
    d_S = (P * (d_P - (d_P * P).sum(-1, keepdims=True)) * scale).astype(x.dtype)
    d_q = matmul(d_S, k)
    d_k = matmul_tn(d_S, q)
    d_qkv = jnp.concatenate([_merge(d_q), _merge(d_k), _merge(d_v)], -1)
    d_x = matmul_nt(d_qkv, W_attn.reshape(C, 3 * C))
    d_W_attn = weight_grad(rows(x), rows(d_qkv)).reshape(W_attn.shape)
    d_b_attn = None if b_attn is None else wide(rows(d_qkv)).sum(0).reshape(b_attn.shape).astype(b_attn.dtype)
    return d_x, d_W_attn, d_b_attn, d_W_proj, d_b_proj, None


attention = with_backward(
    attention_plain,
    _attention_fwd,
    _attention_bwd,
    nondiff_argnums=(6,),
    doc="""
:func:`attention_plain` with the whole layer's backward by hand (see the comment above):
the softmax's ``d_S = P * (d_P - rowsum(d_P * P))`` between the projections' matmuls; with dropout,
``d_P`` through the kept entries, scaled by ``1 / (1 - p)``.""",
)
