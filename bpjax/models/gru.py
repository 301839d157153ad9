"""makemore's GRU: :mod:`bpjax.models.rnn` with makemore's gated cell, backpropagated through time by hand.

    r = σ([x_t, h] @ Wr + br),  z = σ([x_t, h] @ Wz + bz),  hbar = tanh([x_t, r*h] @ Wn + bn)
    h_t = (1 - z) * h + z * hbar                     (h = h_{t-1}, ``start`` at t = 0)

makemore's sizes (n_embd 64, n_embd2 64): 28,315 parameters with names.txt. The recurrence is one
``custom_vjp`` (:func:`bpjax.layers.gru`).
"""

from __future__ import annotations

from functools import partial

from . import MAKEMORE_TRAINING, Model
from .rnn import flops, init, makemore_keys, recurrent_forward

MODEL = Model(
    name="gru",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={
        "": "makemore's GRU: reset and update gates, backpropagated through time by hand "
        "(28,315 parameters; AdamW 5e-4)"
    },
    init=partial(init, cell="gru"),
    forward=recurrent_forward("gru"),
    flops=partial(flops, gates=3),
    data="sequences",
    probes=lambda name: name == "hs",
    cpu_cores=1,
    state_dicts={
        "makemore": makemore_keys([("xh_to_z", "Wz", "bz"), ("xh_to_r", "Wr", "br"), ("xh_to_hbar", "Wn", "bn")])
    },
)
