"""What a model's forward gives: its losses and eval logits over each kind of layer set.

    forward(ly, params, state, X, tap) -> (logits, new_state)        # a model, written once

:func:`forward_loss` is the forward over a layer set and then the loss layer of the model's data
layout; :func:`losses_from_forward` gives the functions training, checking and evaluation call:
``loss`` (the plain layers: ``jax.grad`` of it is the oracle), ``loss_manual`` (the hand-written
ones), ``loss_tapped`` (either, each intermediate through a tap) and ``logits_eval`` (the plain
layers in eval mode).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from .. import layers as L
from ..check import NO_TAP

LOSS_LAYERS = {"windows": "cross_entropy", "sequences": "cross_entropy_masked", "text": "cross_entropy"}
"""The loss layer of each data layout (a sequence's ``-1`` targets are masked out)."""


def forward_loss(forward: Callable, ly: L.Layers, data: str = "windows", time_major: bool = False) -> Callable:
    """``loss(params, state, X, Y, tap=NO_TAP, key=None, rate=0.0) -> (loss, new_state)``: ``forward``
    over the layer set ``ly`` (dropout at ``rate``, its masks drawn from ``key``:
    :meth:`~bpjax.layers.Layers.with_key`), then the loss layer of the data layout
    (:data:`LOSS_LAYERS`); ``time_major``: the forward's logits are ``[T, B, V]``, paired with ``Y.T``."""
    loss_layer = LOSS_LAYERS[data]

    def loss(params, state, X, Y, tap=NO_TAP, key=None, rate: float = 0.0):
        logits, new_state = forward(ly if key is None else ly.with_key(key, rate), params, state, X, tap)
        with jax.named_scope("loss"):
            return getattr(ly, loss_layer)(logits, Y.T if time_major else Y), new_state

    return loss


def losses_from_forward(
    forward: Callable, ly: L.Layers, data: str = "windows", time_major: bool = False, train_loss: Callable | None = None
) -> dict:
    """``loss``, ``loss_manual``, ``loss_autodiff``, ``loss_tapped`` and ``logits_eval`` of a forward.

    ``ly``: the model's layer set (bpjax's, or extended with layers of your own): ``loss`` is the
    forward over its plain layers (the oracle), ``loss_manual`` over its hand-written ones
    (:func:`forward_loss`); ``train_loss(ly) -> loss``: what training differentiates instead, when it
    computes the same value another way (bengio: the positions with a target only), from the
    hand-written layers for ``--grad manual`` and the plain ones for ``autodiff``.
    """
    oracle = forward_loss(forward, ly.plain, data, time_major)
    hand_written = forward_loss(forward, ly.hand, data, time_major)
    evaluating = ly.eval()

    def loss_tapped(params, state, X, Y, tap, manual: bool, key=None, rate: float = 0.0):
        return (hand_written if manual else oracle)(params, state, X, Y, tap, key, rate)

    def logits_eval(params, stats, X):
        logits, _ = forward(evaluating, params, stats, X, NO_TAP)
        return jax.numpy.swapaxes(logits, 0, 1) if time_major else logits

    def untapped(loss):
        return lambda params, state, X, Y, key=None, rate=0.0: loss(params, state, X, Y, key=key, rate=rate)

    return {
        "loss": untapped(oracle),
        "loss_manual": train_loss(ly.hand) if train_loss else untapped(hand_written),
        "loss_autodiff": train_loss(ly.plain) if train_loss else None,
        "loss_tapped": loss_tapped,
        "logits_eval": logits_eval,
    }
