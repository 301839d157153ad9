"""Eval-mode split losses: the notebook's ``split_loss``, in row chunks, for any model."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..data import split_names
from ..layers import PLAIN

_LOSS_SUMS: dict = {}


def _loss_sum(model):
    """Jitted ``(sum of eval-mode cross-entropy, number of targets)`` over a chunk of rows, one per
    model (compiled once per shape). Windows: one target a row; sequences and a text's windows: the
    non -1 targets."""
    if model not in _LOSS_SUMS:
        if model.data in ("sequences", "text"):

            def loss_sum(p, st, X, Y):
                n = (Y >= 0).sum()
                return PLAIN.cross_entropy_masked(model.logits_eval(p, st, X), Y) * n, n
        else:

            def loss_sum(p, st, X, Y):
                return PLAIN.cross_entropy(model.logits_eval(p, st, X), Y) * X.shape[0], X.shape[0]

        _LOSS_SUMS[model] = jax.jit(loss_sum)
    return _LOSS_SUMS[model]


def split_losses(model, params, stats, splits: dict, names=None, rows: int = 32768) -> dict:
    """Eval-mode mean cross-entropy per split (the notebook's ``split_loss``), in row chunks: the sum
    over the split's targets divided by their count (a sequence's -1 targets are not targets).
    ``names``: the splits (default every one of ``splits``: train, val and test; a text's train and val).
    ``model``: a :class:`~bpjax.models.Model` or a registered name; ``stats`` its eval statistics."""
    from .. import models

    spec = models.get(model)
    names = split_names(splits) if names is None else tuple(names)
    loss_sum = _loss_sum(spec)
    if spec.data in ("sequences", "text"):  # a row holds T targets: keep a chunk's activations as small as windows'
        rows = max(1, rows // splits[names[0]][0].shape[1]) if names else rows
    out = {}
    for k in names:
        X, Y = splits[k]
        total, count = 0.0, 0
        for i in range(0, len(X), rows):
            s, n = loss_sum(params, stats, jnp.asarray(X[i : i + rows]), jnp.asarray(Y[i : i + rows]))
            total, count = total + float(s), count + int(n)
        out[f"{k}_loss"] = total / count
    return out
