"""makemore's bigram: a table of next-character logits, one row per character.

    logits = table[X]                               [B, T, V]   (a lookup: the embedding layer)
    loss = cross_entropy_masked(logits, Y)          mean over the non -1 targets

Trains on makemore's padded sequences (``data="sequences"``). 729 parameters with names.txt; the
table starts at zero (makemore's init), so the first loss is log(27) = 3.2958.

* :func:`loss` — plain ``jnp`` (the oracle's forward); :func:`loss_manual` — the custom_vjp layers:
  the table's backward is the embedding's scatter-add ``d_table[i] += d_logits[b, t]`` for every
  position with ``X[b, t] == i``.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import layers as L
from .check import NO_TAP
from .models import MAKEMORE_TRAINING, Model


def init(key, *, vocab_size: int, block_size=None, dtype=jnp.float32):
    """``({"logits": [V, V] zeros}, {})``; ``key`` is unused (the table starts at zero)."""
    return {"logits": jnp.zeros((vocab_size, vocab_size), dtype)}, {}


def _logits(params, X, ly: L.Layers, tap=NO_TAP):
    return tap("logits", ly.embedding(params["logits"], X))


def _loss(params, state, X, Y, ly: L.Layers, tap=NO_TAP):
    return ly.cross_entropy_masked(_logits(params, X, ly, tap), Y), state


def loss(params, state, X, Y):
    """``X``, ``Y`` [B, T] int (``Y`` -1 where masked) -> ``(scalar, state)``, plain ``jnp``."""
    return _loss(params, state, X, Y, L.PLAIN)


def loss_manual(params, state, X, Y):
    """:func:`loss` from the custom_vjp layers."""
    return _loss(params, state, X, Y, L.MANUAL)


def logits_eval(params, state, X):
    """``X`` [N, T] -> logits [N, T, V] (no running statistics: eval is training mode)."""
    return _logits(params, X, L.PLAIN)


def check_tables(params, state, X, Y) -> list:
    """Each custom_vjp layer on this batch's activations against jax.grad of its plain twin, then the model."""
    from .check import model_table, tap_grads, vjp_table

    _, acts, d, _ = tap_grads(lambda tap: _loss(params, state, X, Y, L.PLAIN, tap)[0])
    layers = vjp_table("bigram layers: each custom_vjp against jax.grad of its plain twin", [
        (L.cross_entropy_masked, L.cross_entropy_masked_plain, (acts["logits"], Y), ("logits", "Y"), None),
        (L.embedding, L.embedding_plain, (params["logits"], X), ("table", "X"), d["logits"]),
    ], dtype=str(acts["logits"].dtype))
    model = model_table(lambda p: loss_manual(p, state, X, Y)[0], lambda p: loss(p, state, X, Y)[0], params,
                        title="whole bigram: grad(loss_manual) vs grad(loss)")
    return [layers, model]


MODEL = Model(
    name="bigram",
    sizes={"block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={"": "makemore's bigram: a [V, V] table of next-character logits (729 parameters; AdamW 5e-4)"},
    init=init, loss=loss, loss_manual=loss_manual, logits_eval=logits_eval, check_tables=check_tables,
    data="sequences",
    loss_tapped=lambda p, s, X, Y, tap, manual: _loss(p, s, X, Y, L.MANUAL if manual else L.PLAIN, tap),
    cpu_cores=1,
)
