"""makemore's MLP (Bengio et al. 2003): each position sees the previous T characters.

    ids[b, t, k] = X[b, t - k], or the blank token V where t - k < 0      [B, T, T]
    emb = wte[ids]                                     [B, T, T, E]   (wte has V + 1 rows: the blank)
    embcat = emb.reshape(B, T, T·E)
    h = tanh(embcat @ W1 + b1)                         [B, T, E2]
                                                       (computed as sum_k (wte @ W1_k)[ids[..., k]]:
                                                        :func:`bpjax.layers.context_linear`)
    logits = h @ W2 + b2                               [B, T, V]
    loss = cross_entropy_masked(logits, Y)

Each position's output depends on its own context only, so the training loss runs the MLP on the
positions that have a target (``Y >= 0``), packed first: half the positions as one static block when
they fit (about 227 of 512 with names.txt; the other half are padding whose logits makemore computes
and masks), all of them otherwise. The value and gradient are those of the whole padded batch (a row
with no target adds nothing): :func:`packed_rows_loss`. The oracle, the forward's loss, runs every
position; ``--grad autodiff`` differentiates the packed loss over the plain layers.

Registered as ``bengio`` (``mlp`` stays the notebook's). makemore's sizes: n_embd 64, n_embd2 64,
T = the longest word + 1 = 16: 69,147 parameters with names.txt. PyTorch's default init:
``wte`` ~ N(0, 1); each Linear's weight and bias ~ U(±1/√fan_in). Weights are stored ``[in, out]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from . import MAKEMORE_TRAINING, Model
from .initializers import torch_linear
from .statedict import linear_keys


def init(key, *, vocab_size: int, n_embd: int = 64, n_embd2: int = 64, block_size: int, dtype=jnp.float32):
    """``(params, {})``: ``{"wte": [V+1, E], "W1": [T·E, E2], "b1": [E2], "W2": [E2, V], "b2": [V]}``."""
    kE, k1, k2 = jax.random.split(key, 3)
    W1, b1 = torch_linear(k1, block_size * n_embd, n_embd2, dtype)
    W2, b2 = torch_linear(k2, n_embd2, vocab_size, dtype)
    return {"wte": jax.random.normal(kE, (vocab_size + 1, n_embd), dtype), "W1": W1, "b1": b1, "W2": W2, "b2": b2}, {}


def context_ids(X, blank: int):
    """``ids[b, t, k] = X[b, t - k]`` (``k = 0`` the current character), the ``blank`` id before the start.
    makemore builds the same with T rolls of ``X``."""
    T = X.shape[1]
    src = jnp.arange(T)[:, None] - jnp.arange(T)[None, :]  # [T, T]: t - k
    return jnp.where(src >= 0, X[:, jnp.clip(src, 0)], blank)


def _mlp(ly, params, ids, tap=NO_TAP):
    """``ids`` [..., T] context ids -> logits [..., V]."""
    with jax.named_scope("embedding_linear"):
        h_pre = tap("h_pre", ly.context_linear(params["wte"], ids, params["W1"], params["b1"]))
    with jax.named_scope("mlp"):
        h = tap("h", ly.tanh(h_pre))
        return tap("logits", ly.linear(h, params["W2"], params["b2"]))


def forward(ly, params, state, X, tap=NO_TAP):
    """Every position of the padded batch ``X`` [B, T] -> ``(logits [B, T, V], state)``: the oracle's
    forward and the tapped one (activations as makemore has them)."""
    return _mlp(ly, params, context_ids(X, params["wte"].shape[0] - 1), tap), state


def packed_rows_loss(rows_loss, params, rows, Y, n, head: int):
    """``rows_loss(params, rows, Y)``, a mean over the rows with a target (``Y >= 0``), for rows
    whose ``n`` real ones come first: computed on the first ``head`` rows when the ``n`` fit there,
    else on all of them. ``rows`` [R, ...], ``Y`` [R] (-1 after the first ``n``), ``n`` int scalar,
    ``head`` a static int -> the scalar loss, differentiable in ``params``.

    The value is the same either way (a row with no target adds nothing); only the work differs. One
    ``lax.cond`` picks the static size, and both the value and the gradient (``jax.value_and_grad``
    of ``rows_loss``) are computed in the forward inside it; the backward scales that gradient by
    the cotangent. (Differentiating through the ``cond`` instead carries the untaken branch's
    residuals and fills its zero gradients every step: that gave the gain back.) Under ``vmap`` the
    predicate is whether every model's rows fit (:func:`_fits`), so the ``cond`` stays a ``cond``.
    """

    def either(f, params, rows, Y, n):
        if head >= rows.shape[0]:
            return f(params, rows, Y)
        return jax.lax.cond(_fits(n, head), lambda: f(params, rows[:head], Y[:head]), lambda: f(params, rows, Y))

    @jax.custom_vjp
    def value(params, rows, Y, n):
        return either(rows_loss, params, rows, Y, n)

    def fwd(params, rows, Y, n):
        return either(jax.value_and_grad(rows_loss), params, rows, Y, n)

    def bwd(grads, d_loss):
        return jax.tree_util.tree_map(lambda g: (g * d_loss).astype(g.dtype), grads), None, None, None

    value.defvjp(fwd, bwd)
    return value(params, rows, Y, n)


def _fits(n, head: int):
    """``n <= head``; under ``vmap``, whether it holds for every model: one unbatched predicate (a
    batched one would turn the ``cond`` into a select that runs both branches)."""
    fits = jax.custom_batching.custom_vmap(lambda n: n <= head)

    @fits.def_vmap
    def every_model(axis_size, in_batched, n):
        return jnp.all(n <= head), False

    return fits(n)


def head_rows(positions: int) -> int:
    """The packed block: half the positions, rounded up to a multiple of 8 (256 of makemore's 32 x 16;
    with names.txt a batch has 227 real ones on average, standard deviation 8.5)."""
    return min(positions, -(-positions // 16) * 8)


def packed_loss(ly, head: int | None = None):
    """The loss of ``X``, ``Y`` [B, T] on the positions with a target only, over the layers ``ly``:
    their context ids ``ids[order]`` [N, T] and targets ``Y_packed`` [N] (N = B·T), real ones first,
    through :func:`packed_rows_loss` with ``head`` rows (static; default :func:`head_rows`): the
    model's training loss (``Model.train_loss``)."""

    def rows_loss(p, ids, Y):
        return ly.cross_entropy_masked(_mlp(ly, p, ids), Y)

    def loss(params, state, X, Y):
        B, T = X.shape
        N = B * T
        ids = context_ids(X, params["wte"].shape[0] - 1).reshape(N, T)
        Y = Y.reshape(N)
        real = Y >= 0
        n = real.sum()
        order = jnp.nonzero(real, size=N, fill_value=0)[0]  # the real rows, in order, then row 0 repeated
        Y_packed = jnp.where(jnp.arange(N) < n, Y[order], -1)
        return packed_rows_loss(
            rows_loss, params, ids[order], Y_packed, n, head_rows(N) if head is None else head
        ), state

    return loss


def flops(batch: int, vocab_size: int, *, n_embd: int, n_embd2: int, block_size: int) -> int:
    """One step's matmul FLOPs as computed, 3 x forward: the projections ``2·T·(V+1)·E·E2`` (not
    makemore's ``2·B·T·(T·E)·E2``), then ``2·R·E2·V`` on the R packed rows (half the B·T positions,
    the usual case; :func:`packed_loss`)."""
    T = block_size
    N = batch * T
    return 3 * (2 * T * (vocab_size + 1) * n_embd * n_embd2 + 2 * head_rows(N) * n_embd2 * vocab_size)


def makemore_keys(params) -> list:
    """makemore.py's state-dict entries (see :mod:`bpjax.models.statedict`)."""
    return [("wte.weight", "wte", ""), *linear_keys("mlp.0", "W1", "b1"), *linear_keys("mlp.2", "W2", "b2")]


MODEL = Model(
    name="bengio",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={
        "": "makemore's MLP (Bengio 2003) over the previous T characters (69,147 parameters; AdamW 5e-4)",
        "n_embd2": "second width: the hidden layer of makemore's MLP",
    },
    init=init,
    forward=forward,
    train_loss=packed_loss,
    flops=flops,
    data="sequences",
    probes=lambda name: name == "h",
    cpu_cores=1,
    state_dicts={"makemore": makemore_keys},
)
