"""What a forward gives: the oracle's loss, the hand-written one, the tapped one, eval logits, a training loss."""

import jax
import jax.numpy as jnp
import numpy as np

from bpjax import layers as L
from bpjax import models
from bpjax.models import forward_loss, losses_from_forward
from conftest import batch


def test_the_derived_functions_are_the_forward_over_each_layer_set():
    """loss: the forward over the plain layers and the loss layer; loss_manual: over the hand-written
    ones; loss_tapped: either, through a tap; logits_eval: the plain layers in eval mode."""
    m = models.get("mlp")
    params, state = m.init(jax.random.key(0), vocab_size=27, **m.sizes)
    X, Y = batch(jax.random.key(1), 32)
    logits, _ = m.forward(L.PLAIN, params, state, X, lambda n, v: v)
    assert m.loss(params, state, X, Y)[0] == L.cross_entropy_plain(logits, Y)
    assert forward_loss(m.forward, L.MANUAL)(params, state, X, Y)[0] == m.loss_manual(params, state, X, Y)[0]
    seen = []
    m.loss_tapped(params, state, X, Y, lambda n, v: seen.append(n) or v, True)
    assert seen == ["emb", "embcat", "h_pre_bn", "h_preact", "h", "logits"]
    stats = m.eval_stats(params, state, X)
    expect = m.forward(L.EVAL, params, stats, X, lambda n, v: v)[0]
    np.testing.assert_array_equal(m.logits_eval(params, stats, X), expect)


def test_a_time_major_forward_pairs_its_logits_with_y_transposed():
    def forward(ly, params, state, X, tap):
        return ly.embedding(params["t"], X.T), state  # [T, B, V]

    params = {"t": jax.random.normal(jax.random.key(0), (5, 5))}
    X = jax.random.randint(jax.random.key(1), (3, 4), 0, 5)
    Y = jax.random.randint(jax.random.key(2), (3, 4), -1, 5)
    f = losses_from_forward(forward, L.MANUAL, data="sequences", time_major=True)
    want = L.cross_entropy_masked_plain(params["t"][X], Y)  # batch-first, as the data is
    np.testing.assert_allclose(f["loss"](params, {}, X, Y)[0], want, rtol=1e-6)
    np.testing.assert_array_equal(f["logits_eval"](params, {}, X), params["t"][X])


def test_a_training_loss_of_its_own_is_built_from_each_layer_set():
    seen = []

    def train_loss(ly):
        seen.append(ly.manual)
        return lambda params, state, X, Y: (jnp.float32(0), state)

    f = losses_from_forward(models.get("mlp").forward, L.MANUAL, train_loss=train_loss)
    assert seen == [True, False] and f["loss_autodiff"] is not None and f["loss_manual"] is not f["loss"]
