"""makemore's RNN: a vanilla recurrence over the word, backpropagated through time by hand.

    emb = wte[X]                                   [B, T, E]
    hs = rnn(emb, start, W, b)                     [B, T, H]   h_t = tanh([x_t, h_{t-1}] @ W + b)
    logits = hs @ W_lm + b_lm                      [B, T, V]
    loss = cross_entropy_masked(logits, Y)

``start`` is the learned h_{-1} (zeros at init, as makemore's). makemore's sizes (n_embd 64,
n_embd2 64): 11,803 parameters with names.txt. The recurrence is one ``custom_vjp``
(:func:`bpjax.layers.rnn`): a ``lax.scan`` forward and a hand-derived reverse scan backward.
:mod:`bpjax.models.gru` is the same model with makemore's GRU cell.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from . import MAKEMORE_TRAINING, Model
from .initializers import torch_linear
from .statedict import linear_keys

CELLS = {"rnn": ("W", "b"), "gru": ("Wr", "br", "Wz", "bz", "Wn", "bn")}
"""cell (its layer's name) -> its parameters, in the layer's argument order."""


def init(
    key, *, vocab_size: int, n_embd: int = 64, n_embd2: int = 64, block_size=None, dtype=jnp.float32, cell: str = "rnn"
):
    """``(params, {})``: ``{"wte": [V, E], "start": [1, H], "cell": {W: [E+H, H], b: [H], ...},
    "W_lm": [H, V], "b_lm": [V]}``, PyTorch's default init, ``start`` zeros."""
    kE, kC, kL = jax.random.split(key, 3)
    names = CELLS[cell]
    cell_params = {}
    for k, (wn, bn) in zip(
        jax.random.split(kC, len(names) // 2), zip(names[::2], names[1::2], strict=True), strict=True
    ):
        cell_params[wn], cell_params[bn] = torch_linear(k, n_embd + n_embd2, n_embd2, dtype)
    W_lm, b_lm = torch_linear(kL, n_embd2, vocab_size, dtype)
    return {
        "wte": jax.random.normal(kE, (vocab_size, n_embd), dtype),
        "start": jnp.zeros((1, n_embd2), dtype),
        "cell": cell_params,
        "W_lm": W_lm,
        "b_lm": b_lm,
    }, {}


def recurrent_forward(cell: str):
    """The forward of the model with recurrence ``cell`` (``"rnn"`` or ``"gru"``, the layer's name)."""
    names = CELLS[cell]

    def forward(ly, params, state, X, tap=NO_TAP):
        """``X`` [B, T] int -> ``(logits [B, T, V], state)``."""
        with jax.named_scope("embedding"):
            emb = tap("emb", ly.embedding(params["wte"], X))
        with jax.named_scope("recurrence"):
            hs = tap("hs", getattr(ly, cell)(emb, params["start"], *(params["cell"][n] for n in names)))
        with jax.named_scope("lm_head"):
            return tap("logits", ly.linear(hs, params["W_lm"], params["b_lm"])), state

    return forward


def flops(batch: int, vocab_size: int, *, n_embd: int, n_embd2: int, block_size: int, gates: int = 1) -> int:
    """One step's matmul FLOPs, 3 x forward: ``gates · 2·B·T·(E+H)·H`` for the cell and ``2·B·T·H·V``."""
    T, H = block_size, n_embd2
    return 3 * (gates * 2 * batch * T * (n_embd + H) * H + 2 * batch * T * H * vocab_size)


def makemore_keys(cell_keys):
    """makemore.py's state-dict entries of the model whose cell has ``cell_keys`` ``[(makemore name, W,
    b)]`` (see :mod:`bpjax.models.statedict`)."""

    def keys(n_layer) -> list:
        cell = [e for name, W, b in cell_keys for e in linear_keys(f"cell.{name}", f"cell/{W}", f"cell/{b}")]
        return [("start", "start", ""), ("wte.weight", "wte", ""), *cell, *linear_keys("lm_head", "W_lm", "b_lm")]

    return keys


MODEL = Model(
    name="rnn",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={
        "": "makemore's RNN: h_t = tanh([x_t, h_t-1] @ W + b), backpropagated through time by hand "
        "(11,803 parameters; AdamW 5e-4)",
        "n_embd2": "second width: the hidden layer (MLP) or hidden state (RNN, GRU) of makemore's models",
    },
    init=init,
    forward=recurrent_forward("rnn"),
    flops=flops,
    data="sequences",
    probes=lambda name: name == "hs",
    cpu_cores=1,
    state_dicts={"makemore": makemore_keys([("xh_to_h", "W", "b")])},
)
