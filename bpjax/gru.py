"""makemore's GRU: :mod:`bpjax.rnn` with makemore's gated cell, backpropagated through time by hand.

    r = σ([x_t, h] @ Wr + br),  z = σ([x_t, h] @ Wz + bz),  hbar = tanh([x_t, r*h] @ Wn + bn)
    h_t = (1 - z) * h + z * hbar                     (h = h_{t-1}, ``start`` at t = 0)

makemore's sizes (n_embd 64, n_embd2 64): 28,315 parameters with names.txt. The recurrence is one
``custom_vjp`` (:func:`bpjax.layers_seq.gru`).
"""

from __future__ import annotations

from functools import partial

from . import rnn
from .models import MAKEMORE_TRAINING, Model

loss, loss_manual, logits_eval, check_tables, loss_tapped = rnn.make("gru")

MODEL = Model(
    name="gru",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={"": "makemore's GRU: reset and update gates, backpropagated through time by hand "
              "(28,315 parameters; AdamW 5e-4)"},
    init=partial(rnn.init, cell="gru"),
    loss=loss, loss_manual=loss_manual, logits_eval=logits_eval, check_tables=check_tables,
    flops=partial(rnn.flops, gates=3), data="sequences", loss_tapped=loss_tapped,
    probes=lambda name: name == "hs",
    cpu_cores=1,
)
