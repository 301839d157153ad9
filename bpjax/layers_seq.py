"""``custom_vjp`` layers of makemore's sequence models, each beside its plain twin (as :mod:`bpjax.layers`).

Shapes: ``B`` rows (words), ``T`` positions, ``E`` embedding size, ``H`` hidden size (makemore's
``n_embd2``). Weights are stored ``[in, out]``: a makemore ``nn.Linear(in, out)``'s weight transposed.

* :func:`causal_mean` — BoW's causal average ``y_t = mean(x_0..x_t)``;
* :func:`rnn` — the whole recurrence ``h_t = tanh([x_t, h_{t-1}] @ W + b)`` as one layer: forward a
  ``lax.scan`` over time, backward a reverse ``lax.scan`` of the derived cell gradient
  (backpropagation through time by hand, not JAX's autodiff of the scan);
* :func:`gru` — the same for makemore's GRU cell.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .layers import weight_grad, with_backward


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


causal_mean = with_backward(causal_mean_plain, _causal_mean_fwd, _causal_mean_bwd, nondiff_argnums=(1,), doc="""
:func:`causal_mean_plain` with the backward ``d_x_s = sum_{t >= s} d_y_t / (t + 1)`` (``A^T @ d_y``).
``axis``: the time axis (default 1), not differentiated.""")


# --------------------------------------------------------------------------------------------
# RNN.  a_t = x_t @ Wx + h_{t-1} @ Wh + b,  h_t = tanh(a_t),  h_{-1} = start   (W = [Wx; Wh])
#   reverse over t, with g the gradient reaching h_t from step t+1 (0 at the last step):
#   d_h_t = d_hs_t + g,   d_a_t = (1 - h_t^2) * d_h_t,   g <- d_a_t @ Wh.T
#   then d_x = d_a @ Wx.T,  d_Wx = sum x^T d_a,  d_Wh = sum h_{t-1}^T d_a,  d_b = sum d_a,
#   d_start = sum over rows of the g left after t = 0
# --------------------------------------------------------------------------------------------
def _split(W, E: int):
    return W[:E], W[E:]


def rnn_plain(x, start, W, b):
    """``x`` [B, T, E], ``start`` [1, H] (the learned h_{-1}), ``W`` [E+H, H], ``b`` [H] -> ``hs`` [B, T, H]."""
    Wx, Wh = _split(W, x.shape[-1])
    xW = x @ Wx + b  # every step's input term in one matmul

    def step(h, xw_t):
        h = jnp.tanh(xw_t + h @ Wh)
        return h, h

    h0 = jnp.broadcast_to(start, (x.shape[0], start.shape[-1]))
    _, hs = jax.lax.scan(step, h0, jnp.swapaxes(xW, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def _rnn_fwd(x, start, W, b):
    hs = rnn_plain(x, start, W, b)
    return hs, (x, start, W, hs)


def _rnn_bwd(res, d_hs):
    x, start, W, hs = res
    E = x.shape[-1]
    Wx, Wh = _split(W, E)
    h_prev = jnp.concatenate([jnp.broadcast_to(start, hs[:, :1].shape), hs[:, :-1]], 1)  # h_{t-1}

    def back(g, t_in):
        d_hs_t, h_t = t_in
        d_a = (1.0 - h_t**2) * (d_hs_t + g)
        return d_a @ Wh.T, d_a

    g, d_a = jax.lax.scan(back, jnp.zeros_like(hs[:, 0]), (jnp.swapaxes(d_hs, 0, 1), jnp.swapaxes(hs, 0, 1)),
                          reverse=True)
    d_a = jnp.swapaxes(d_a, 0, 1)  # [B, T, H]
    rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    d_W = jnp.concatenate([weight_grad(rows(x), rows(d_a)), weight_grad(rows(h_prev), rows(d_a))], 0)
    return d_a @ Wx.T, g.sum(0, keepdims=True).reshape(start.shape), d_W, d_a.sum((0, 1))


rnn = with_backward(rnn_plain, _rnn_fwd, _rnn_bwd, doc="""
:func:`rnn_plain` with backpropagation through time written by hand: a reverse ``lax.scan`` of
``d_a_t = (1 - h_t^2) * (d_hs_t + d_a_{t+1} @ Wh.T)``, then the weight gradients in one matmul each.""")


# --------------------------------------------------------------------------------------------
# GRU (makemore's cell).  With xh = [x_t, h] (h = h_{t-1}):
#   r = σ(xh @ Wr + br),  z = σ(xh @ Wz + bz),  hbar = tanh([x_t, r*h] @ Wn + bn),
#   h_t = (1 - z) * h + z * hbar
#   reverse, with d_h = d_hs_t + g:
#   d_hbar = d_h * z,  d_z = d_h * (hbar - h),  d_an = d_hbar * (1 - hbar^2),  d_rh = d_an @ Wn_h.T,
#   d_ar = d_rh * h * r (1 - r),  d_az = d_z * z (1 - z),
#   g <- d_h * (1 - z) + d_rh * r + d_az @ Wz_h.T + d_ar @ Wr_h.T
# --------------------------------------------------------------------------------------------
def _gru_step(Whs, h, xs_t):
    """One cell: ``xs_t`` the step's input terms ``(x@Wr_x + br, x@Wz_x + bz, x@Wn_x + bn)``."""
    Wr_h, Wz_h, Wn_h = Whs
    xr, xz, xn = xs_t
    r = jax.nn.sigmoid(xr + h @ Wr_h)
    z = jax.nn.sigmoid(xz + h @ Wz_h)
    hbar = jnp.tanh(xn + (r * h) @ Wn_h)
    return (1 - z) * h + z * hbar, (r, z, hbar)


def _gru_inputs(x, Wr, br, Wz, bz, Wn, bn):
    E = x.shape[-1]
    xs = tuple(jnp.swapaxes(x @ _split(W, E)[0] + b, 0, 1) for W, b in ((Wr, br), (Wz, bz), (Wn, bn)))
    return xs, tuple(_split(W, E)[1] for W in (Wr, Wz, Wn))


def gru_plain(x, start, Wr, br, Wz, bz, Wn, bn):
    """``x`` [B, T, E], ``start`` [1, H], each ``W`` [E+H, H] and ``b`` [H] (makemore's ``xh_to_r``,
    ``xh_to_z``, ``xh_to_hbar``) -> ``hs`` [B, T, H]."""
    xs, Whs = _gru_inputs(x, Wr, br, Wz, bz, Wn, bn)

    def step(h, xs_t):
        h, _ = _gru_step(Whs, h, xs_t)
        return h, h

    h0 = jnp.broadcast_to(start, (x.shape[0], start.shape[-1]))
    return jnp.swapaxes(jax.lax.scan(step, h0, xs)[1], 0, 1)


def _gru_fwd(x, start, Wr, br, Wz, bz, Wn, bn):
    xs, Whs = _gru_inputs(x, Wr, br, Wz, bz, Wn, bn)

    def step(h, xs_t):
        h_new, gates = _gru_step(Whs, h, xs_t)
        return h_new, (h_new, *gates)

    h0 = jnp.broadcast_to(start, (x.shape[0], start.shape[-1]))
    _, (hs, r, z, hbar) = jax.lax.scan(step, h0, xs)  # time-major [T, B, H]
    h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
    return jnp.swapaxes(hs, 0, 1), (x, start, (Wr, Wz, Wn), Whs, h_prev, r, z, hbar)


def _gru_bwd(res, d_hs):
    x, start, Ws, (Wr_h, Wz_h, Wn_h), h_prev, r, z, hbar = res
    E = x.shape[-1]

    def back(g, t_in):
        d_hs_t, h, r, z, hbar = t_in
        d_h = d_hs_t + g
        d_an = d_h * z * (1.0 - hbar**2)
        d_rh = d_an @ Wn_h.T
        d_ar = d_rh * h * r * (1.0 - r)
        d_az = d_h * (hbar - h) * z * (1.0 - z)
        g = d_h * (1.0 - z) + d_rh * r + d_az @ Wz_h.T + d_ar @ Wr_h.T
        return g, (d_ar, d_az, d_an)

    g, (d_ar, d_az, d_an) = jax.lax.scan(back, jnp.zeros_like(h_prev[0]),
                                         (jnp.swapaxes(d_hs, 0, 1), h_prev, r, z, hbar), reverse=True)
    rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    xt = rows(jnp.swapaxes(x, 0, 1))  # time-major rows, as the gates
    d_x = 0.0
    grads = []
    for d_a, W, h_in in ((d_ar, Ws[0], h_prev), (d_az, Ws[1], h_prev), (d_an, Ws[2], r * h_prev)):
        d_x = d_x + d_a @ _split(W, E)[0].T
        d_W = jnp.concatenate([weight_grad(xt, rows(d_a)), weight_grad(rows(h_in), rows(d_a))], 0)
        grads += [d_W, rows(d_a).sum(0)]
    return (jnp.swapaxes(d_x, 0, 1), g.sum(0, keepdims=True).reshape(start.shape), *grads)


gru = with_backward(gru_plain, _gru_fwd, _gru_bwd, doc="""
:func:`gru_plain` with backpropagation through time written by hand: a reverse ``lax.scan`` of the
cell's derived gradients (see the comment above), then each weight's gradient in one matmul.""")


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
    return g * xhat + b, xhat, rstd


def layernorm_plain(x, g, b):
    """``x`` [..., C] normalised over its last axis, times ``g`` [C], plus ``b`` [C]."""
    return _layernorm_parts(x, g, b)[0]


def _layernorm_fwd(x, g, b):
    y, xhat, rstd = _layernorm_parts(x, g, b)
    return y, (xhat, rstd, g)


def _layernorm_bwd(res, d_y):
    xhat, rstd, g = res
    n = xhat.shape[-1]
    d_xhat = g * d_y
    d_x = rstd / n * (n * d_xhat - d_xhat.sum(-1, keepdims=True) - xhat * (d_xhat * xhat).sum(-1, keepdims=True))
    rows = tuple(range(d_y.ndim - 1))
    return d_x, (d_y * xhat).sum(rows), d_y.sum(rows)


layernorm = with_backward(layernorm_plain, _layernorm_fwd, _layernorm_bwd, doc="""
:func:`layernorm_plain` with the one-line backward ``rstd/n * (n*d_xhat - sum(d_xhat) - xhat*sum(d_xhat*xhat))``.""")


# --------------------------------------------------------------------------------------------
# GELU, the tanh approximation of GPT-2 (makemore's NewGELU).
#   u = √(2/π) (x + 0.044715 x³),  y = ½ x (1 + tanh u)
#   d_x = d_y * (½ (1 + tanh u) + ½ x (1 - tanh² u) √(2/π) (1 + 3·0.044715 x²))
# --------------------------------------------------------------------------------------------
_GELU_C = math.sqrt(2.0 / math.pi)


def gelu_plain(x):
    """GPT-2's GELU, any shape."""
    return 0.5 * x * (1.0 + jnp.tanh(_GELU_C * (x + 0.044715 * x**3)))


def _gelu_fwd(x):
    return gelu_plain(x), x


def _gelu_bwd(x, d_y):
    t = jnp.tanh(_GELU_C * (x + 0.044715 * x**3))
    return (d_y * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * _GELU_C * (1.0 + 3 * 0.044715 * x**2)),)


gelu = with_backward(gelu_plain, _gelu_fwd, _gelu_bwd, doc="""
:func:`gelu_plain` with its derivative ``½(1 + tanh u) + ½x(1 - tanh²u)·√(2/π)(1 + 0.134145x²)``.""")


# --------------------------------------------------------------------------------------------
# Causal self-attention, one layer: projections, heads, scaled scores, causal mask, softmax,
# weighted sum, output projection.  With q, k, v [B, nh, T, hs] from x @ W_attn + b_attn:
#   S = q k^T / √hs (future masked to -inf),  P = softmax(S),  Yh = P v,  out = merge(Yh) @ W_proj + b_proj
#   d_Yh = split(d_out @ W_proj^T),  d_P = d_Yh v^T,  d_v = P^T d_Yh,
#   d_S = P * (d_P - rowsum(d_P * P))   (softmax; masked entries have P = 0, so d_S = 0 there)
#   d_q = d_S k / √hs,  d_k = d_S^T q / √hs,  d_x = d_qkv @ W_attn^T
# --------------------------------------------------------------------------------------------
def _heads(a, n_head: int):
    B, T, C = a.shape
    return a.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)  # [B, nh, T, hs]


def _merge(a):
    B, nh, T, hs = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)


def _attention_parts(x, W_attn, b_attn, W_proj, b_proj):
    C, n_head = x.shape[-1], W_attn.shape[2]
    qkv = x @ W_attn.reshape(C, 3 * C) + b_attn.reshape(3 * C)
    q, k, v = (_heads(qkv[..., i * C:(i + 1) * C], n_head) for i in range(3))
    T = x.shape[1]
    S = (q @ jnp.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(C // n_head))
    S = jnp.where(jnp.tril(jnp.ones((T, T), bool)), S, -jnp.inf)
    S = S - jax.lax.stop_gradient(S.max(-1, keepdims=True))  # the diagonal is never masked: finite
    e = jnp.exp(S)
    P = e / e.sum(-1, keepdims=True)
    y = _merge(P @ v)
    return y @ W_proj + b_proj, (q, k, v, P, y)


def attention_plain(x, W_attn, b_attn, W_proj, b_proj):
    """``x`` [B, T, C]; ``W_attn`` [C, 3, nh, hs] and ``b_attn`` [3, nh, hs]: the q, k and v
    projections of each of the nh heads of hs = C / nh (the head count is read off this shape;
    reshaped to [C, 3C] it is makemore's ``c_attn`` weight, transposed); ``W_proj`` [C, C], ``b_proj``
    [C] -> [B, T, C]. Position t attends to positions 0..t only."""
    return _attention_parts(x, W_attn, b_attn, W_proj, b_proj)[0]


def _attention_fwd(x, W_attn, b_attn, W_proj, b_proj):
    out, (q, k, v, P, y) = _attention_parts(x, W_attn, b_attn, W_proj, b_proj)
    return out, (x, W_attn, W_proj, q, k, v, P, y)


def _t(a):
    """``a`` with its last two axes swapped, materialised (the batched dot ``a^T @ b`` that contracts
    ``a``'s rows misses XLA:CPU's fast GEMM path, as in :func:`bpjax.layers.weight_grad`)."""
    return jax.lax.optimization_barrier(jnp.swapaxes(a, -1, -2))


def _attention_bwd(res, d_out):
    x, W_attn, W_proj, q, k, v, P, y = res
    C, n_head = x.shape[-1], W_attn.shape[2]
    scale = 1.0 / math.sqrt(C // n_head)
    rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    d_W_proj, d_b_proj = weight_grad(rows(y), rows(d_out)), rows(d_out).sum(0)
    d_Yh = _heads(d_out @ W_proj.T, n_head)
    d_P = d_Yh @ jnp.swapaxes(v, -1, -2)
    d_v = _t(P) @ d_Yh
    d_S = P * (d_P - (d_P * P).sum(-1, keepdims=True)) * scale
    d_q = d_S @ k
    d_k = _t(d_S) @ q
    d_qkv = jnp.concatenate([_merge(d_q), _merge(d_k), _merge(d_v)], -1)
    d_x = d_qkv @ W_attn.reshape(C, 3 * C).T
    d_W_attn = weight_grad(rows(x), rows(d_qkv)).reshape(W_attn.shape)
    return d_x, d_W_attn, rows(d_qkv).sum(0).reshape(W_attn.shape[1:]), d_W_proj, d_b_proj


attention = with_backward(attention_plain, _attention_fwd, _attention_bwd, doc="""
:func:`attention_plain` with the whole layer's backward by hand (see the comment above):
the softmax's ``d_S = P * (d_P - rowsum(d_P * P))`` between the projections' matmuls.""")


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


context_linear = with_backward(context_linear_plain, _context_linear_fwd, _context_linear_bwd, doc="""
:func:`context_linear_plain` with the backward a scatter-add into the per-token projections, then two
small matmuls (see the comment above).""")
