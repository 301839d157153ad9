"""Recurrences through time, each one layer: makemore's RNN and GRU cells, backpropagated through
time by hand (a reverse ``lax.scan`` of the derived cell gradient, not JAX's autodiff of the scan).

Shapes: ``B`` rows (words), ``T`` positions, ``E`` input size, ``H`` hidden size (makemore's
``n_embd2``). Weights are stored ``[in, out]``: a makemore ``nn.Linear(in, out)``'s weight transposed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import with_backward
from .dense import rows
from .products import weight_grad


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

    g, d_a = jax.lax.scan(
        back, jnp.zeros_like(hs[:, 0]), (jnp.swapaxes(d_hs, 0, 1), jnp.swapaxes(hs, 0, 1)), reverse=True
    )
    d_a = jnp.swapaxes(d_a, 0, 1)  # [B, T, H]
    d_W = jnp.concatenate([weight_grad(rows(x), rows(d_a)), weight_grad(rows(h_prev), rows(d_a))], 0)
    return d_a @ Wx.T, g.sum(0, keepdims=True).reshape(start.shape), d_W, d_a.sum((0, 1))


rnn = with_backward(
    rnn_plain,
    _rnn_fwd,
    _rnn_bwd,
    doc="""
:func:`rnn_plain` with backpropagation through time written by hand: a reverse ``lax.scan`` of
``d_a_t = (1 - h_t^2) * (d_hs_t + d_a_{t+1} @ Wh.T)``, then the weight gradients in one matmul each.""",
)


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

    g, (d_ar, d_az, d_an) = jax.lax.scan(
        back, jnp.zeros_like(h_prev[0]), (jnp.swapaxes(d_hs, 0, 1), h_prev, r, z, hbar), reverse=True
    )
    xt = rows(jnp.swapaxes(x, 0, 1))  # time-major rows, as the gates
    d_x = 0.0
    grads = []
    for d_a, W, h_in in ((d_ar, Ws[0], h_prev), (d_az, Ws[1], h_prev), (d_an, Ws[2], r * h_prev)):
        d_x = d_x + d_a @ _split(W, E)[0].T
        d_W = jnp.concatenate([weight_grad(xt, rows(d_a)), weight_grad(rows(h_in), rows(d_a))], 0)
        grads += [d_W, rows(d_a).sum(0)]
    return (jnp.swapaxes(d_x, 0, 1), g.sum(0, keepdims=True).reshape(start.shape), *grads)


gru = with_backward(
    gru_plain,
    _gru_fwd,
    _gru_bwd,
    doc="""
:func:`gru_plain` with backpropagation through time written by hand: a reverse ``lax.scan`` of the
cell's derived gradients (see the comment above), then each weight's gradient in one matmul.""",
)
