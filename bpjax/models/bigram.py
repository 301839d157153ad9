"""makemore's bigram: a table of next-character logits, one row per character.

    logits = table[X]                               [B, T, V]   (a lookup: the embedding layer)
    loss = cross_entropy_masked(logits, Y)          mean over the non -1 targets

Trains on makemore's padded sequences (``data="sequences"``). 729 parameters with names.txt; the
table starts at zero (makemore's init), so the first loss is log(27) = 3.2958. The table's
backward is the embedding's scatter-add ``d_table[i] += d_logits[b, t]`` for every position with
``X[b, t] == i``.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..check import NO_TAP
from . import MAKEMORE_TRAINING, Model


def init(key, *, vocab_size: int, block_size=None, dtype=jnp.float32):
    """``({"logits": [V, V] zeros}, {})``; ``key`` is unused (the table starts at zero)."""
    return {"logits": jnp.zeros((vocab_size, vocab_size), dtype)}, {}


def forward(ly, params, state, X, tap=NO_TAP):
    """``X`` [B, T] int -> ``(logits [B, T, V], state)``: row ``X[b, t]`` of the table."""
    return ly.embedding(params["logits"], X), state


def makemore_keys(params) -> list:
    """makemore.py's state-dict entries (see :mod:`bpjax.models.statedict`)."""
    return [("logits", "logits", "")]


MODEL = Model(
    name="bigram",
    sizes={"block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={"": "makemore's bigram: a [V, V] table of next-character logits (729 parameters; AdamW 5e-4)"},
    init=init,
    forward=forward,
    data="sequences",
    cpu_cores=1,
    state_dicts={"makemore": makemore_keys},
)
