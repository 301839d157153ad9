"""makemore's RNN: a vanilla recurrence over the word, backpropagated through time by hand.

    emb = wte[X]                                   [B, T, E]
    hs = rnn(emb, start, W, b)                     [B, T, H]   h_t = tanh([x_t, h_{t-1}] @ W + b)
    logits = hs @ W_lm + b_lm                      [B, T, V]
    loss = cross_entropy_masked(logits, Y)

``start`` is the learned h_{-1} (zeros at init, as makemore's). makemore's sizes (n_embd 64,
n_embd2 64): 11,803 parameters with names.txt. The recurrence is one ``custom_vjp``
(:func:`bpjax.layers_seq.rnn`): a ``lax.scan`` forward and a hand-derived reverse scan backward.
:mod:`bpjax.gru` is the same model with makemore's GRU cell.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import layers as L
from . import layers_seq as S
from .check import NO_TAP
from .models import MAKEMORE_TRAINING, Model, torch_linear

CELLS = {"rnn": ((S.rnn_plain, S.rnn), ("W", "b")),
         "gru": ((S.gru_plain, S.gru), ("Wr", "br", "Wz", "bz", "Wn", "bn"))}
"""cell -> ((plain, manual) recurrence, its parameter names in argument order)."""


def init(key, *, vocab_size: int, n_embd: int = 64, n_embd2: int = 64, block_size=None, dtype=jnp.float32,
         cell: str = "rnn"):
    """``(params, {})``: ``{"wte": [V, E], "start": [1, H], "cell": {W: [E+H, H], b: [H], ...},
    "W_lm": [H, V], "b_lm": [V]}``, PyTorch's default init, ``start`` zeros."""
    kE, kC, kL = jax.random.split(key, 3)
    names = CELLS[cell][1]
    cell_params = {}
    for k, (wn, bn) in zip(jax.random.split(kC, len(names) // 2), zip(names[::2], names[1::2], strict=True),
                           strict=True):
        cell_params[wn], cell_params[bn] = torch_linear(k, n_embd + n_embd2, n_embd2, dtype)
    W_lm, b_lm = torch_linear(kL, n_embd2, vocab_size, dtype)
    return {"wte": jax.random.normal(kE, (vocab_size, n_embd), dtype), "start": jnp.zeros((1, n_embd2), dtype),
            "cell": cell_params, "W_lm": W_lm, "b_lm": b_lm}, {}


def _logits(params, X, ly: L.Layers, recurrence, names, tap=NO_TAP):
    with jax.named_scope("embedding"):
        emb = tap("emb", ly.embedding(params["wte"], X))
    with jax.named_scope("recurrence"):
        hs = tap("hs", recurrence(emb, params["start"], *(params["cell"][n] for n in names)))
    with jax.named_scope("lm_head"):
        return tap("logits", ly.linear(hs, params["W_lm"], params["b_lm"]))


def make(cell: str):
    """The loss, manual loss, eval logits and check tables of the model with ``cell``."""
    (plain, manual_rec), names = CELLS[cell]

    def _loss(params, state, X, Y, ly, recurrence, tap=NO_TAP):
        return ly.cross_entropy_masked(_logits(params, X, ly, recurrence, names, tap), Y), state

    def loss(params, state, X, Y):
        """``X``, ``Y`` [B, T] int (``Y`` -1 where masked) -> ``(scalar, state)``: plain ``jnp``,
        autodiff through the scan is the oracle."""
        return _loss(params, state, X, Y, L.PLAIN, plain)

    def loss_manual(params, state, X, Y):
        """:func:`loss` from the custom_vjp layers: backpropagation through time by hand."""
        return _loss(params, state, X, Y, L.MANUAL, manual_rec)

    def loss_tapped(params, state, X, Y, tap, manual: bool):
        """:func:`loss_manual` (``manual``) or :func:`loss`, every intermediate through ``tap``."""
        return _loss(params, state, X, Y, *((L.MANUAL, manual_rec) if manual else (L.PLAIN, plain)), tap)

    def logits_eval(params, state, X):
        return _logits(params, X, L.PLAIN, plain, names)

    def check_tables(params, state, X, Y) -> list:
        from .check import model_table, tap_grads, vjp_table

        _, a, d, _ = tap_grads(lambda tap: _loss(params, state, X, Y, L.PLAIN, plain, tap)[0])
        p = params
        layers = vjp_table(f"{cell} layers: each custom_vjp against jax.grad of its plain twin", [
            (L.cross_entropy_masked, L.cross_entropy_masked_plain, (a["logits"], Y), ("logits", "Y"), None),
            (L.linear, L.linear_plain, (a["hs"], p["W_lm"], p["b_lm"]), ("hs", "W_lm", "b_lm"), d["logits"]),
            (manual_rec, plain, (a["emb"], p["start"], *(p["cell"][n] for n in names)),
             ("emb", "start", *(f"cell/{n}" for n in names)), d["hs"]),
            (L.embedding, L.embedding_plain, (p["wte"], X), ("wte", "X"), d["emb"]),
        ], dtype=str(a["logits"].dtype))
        model = model_table(lambda p: loss_manual(p, state, X, Y)[0], lambda p: loss(p, state, X, Y)[0], params,
                            title=f"whole {cell}: grad(loss_manual) vs grad(loss)")
        return [layers, model]

    return loss, loss_manual, logits_eval, check_tables, loss_tapped


def flops(batch: int, vocab_size: int, *, n_embd: int, n_embd2: int, block_size: int, gates: int = 1) -> int:
    """One step's matmul FLOPs, 3 x forward: ``gates · 2·B·T·(E+H)·H`` for the cell and ``2·B·T·H·V``."""
    T, H = block_size, n_embd2
    return 3 * (gates * 2 * batch * T * (n_embd + H) * H + 2 * batch * T * H * vocab_size)


loss, loss_manual, logits_eval, check_tables, loss_tapped = make("rnn")

MODEL = Model(
    name="rnn",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={"": "makemore's RNN: h_t = tanh([x_t, h_t-1] @ W + b), backpropagated through time by hand "
              "(11,803 parameters; AdamW 5e-4)",
          "n_embd2": "second width: the hidden layer (MLP) or hidden state (RNN, GRU) of makemore's models"},
    init=partial(init, cell="rnn"),
    loss=loss, loss_manual=loss_manual, logits_eval=logits_eval, check_tables=check_tables,
    flops=flops, data="sequences", loss_tapped=loss_tapped, probes=lambda name: name == "hs",
    cpu_cores=1,
)
