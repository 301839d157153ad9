"""Eval-mode split losses: the mean over a split's real targets, in row chunks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax import models
from bpjax.data import Vocab, make_sequences, make_splits
from bpjax.models import mlp
from bpjax.training.evaluate import split_losses


def test_split_loss_is_the_mean_over_real_targets():
    words = ["emma", "ava", "x", "olivia", "mia", "bo", "zoe", "ann", "li", "kai"] * 3
    v = Vocab.from_words(words)
    s = make_sequences(words, v)
    params = {"logits": jax.random.normal(jax.random.key(0), (v.size, v.size))}
    X, Y = s["val"]
    logp = np.asarray(jax.nn.log_softmax(params["logits"]))
    valid = Y >= 0
    ref = -logp[X[valid], Y[valid]].mean()  # bigram: position t's logits are row X[t]
    got = split_losses("bigram", params, {}, s, ("val",), rows=2)["val_loss"]
    assert got == pytest.approx(ref, rel=1e-6)


def test_split_loss_of_windows_is_the_notebooks_over_every_row_in_any_chunking():
    words = ["emma", "ava", "x", "olivia", "mia", "bo", "zoe", "ann", "li", "kai"] * 3
    v = Vocab.from_words(words)
    s = make_splits(words, v)
    params = mlp.init_params(jax.random.key(0), vocab_size=v.size)
    stats = mlp.calibrate_bn(params, s["train"][0])
    X, Y = s["val"]
    ref = float(L.cross_entropy_plain(mlp.logits_eval(params, stats, X), Y))
    for rows in (3, 7, 10_000):
        assert split_losses(models.get("mlp"), params, stats, s, ("val",), rows=rows)["val_loss"] == pytest.approx(
            ref, rel=1e-6
        )


@pytest.mark.parametrize("name", ("bigram", "bengio", "rnn", "gru", "bow", "transformer"))
def test_training_loss_is_the_eval_logits_loss(name):
    """The training loss (BoW's time-major, the others batch-first) equals the masked cross-entropy
    of ``logits_eval``'s [N, T, V] against Y: the layouts pair every position with its own target."""
    with jax.enable_x64(True):
        spec = models.get(name)
        T, V = 5, 7
        sizes = {k: v for k, v in spec.sizes.items() if k != "block_size"}
        sizes = {k: (8 if k in ("n_embd", "n_embd2") else v) for k, v in sizes.items()}
        params, state = spec.init(jax.random.key(0), vocab_size=V, block_size=T, dtype=jnp.float64, **sizes)
        X = jax.random.randint(jax.random.key(1), (3, T), 0, V)
        Y = jnp.where(jnp.arange(T)[None, :] < jnp.array([[5], [2], [4]]), jnp.roll(X, -1, 1), -1)
        ref = L.cross_entropy_masked_plain(spec.logits_eval(params, state, X), Y)
        assert spec.logits_eval(params, state, X).shape == (3, T, V)
        for f in (spec.loss, spec.loss_manual):
            np.testing.assert_allclose(f(params, state, X, Y)[0], ref, rtol=1e-13)
