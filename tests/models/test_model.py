"""The Model interface: the registry, every model's derived functions, a model given as its functions."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import Config, Model, models
from bpjax.errors import ConfigError
from conftest import batch


def test_registry_names_and_models():
    assert models.names() == ("mlp", "wavenet", "bigram", "bengio", "rnn", "gru", "bow", "transformer", "deep", "gpt")
    for name in models.names():
        m = models.get(name)
        assert isinstance(m, Model) and m.name == name and m.forward is not None
        assert models.get(m) is m  # a Model passes through
    with pytest.raises(ConfigError, match="model must be one of mlp, wavenet, bigram, bengio, rnn"):
        models.get("gpt2")
    from bpjax.training.config import size_kind

    for size in models.all_sizes():  # one CLI flag per size: every model that has it agrees on its type
        kinds = {
            size_kind(models.get(n).sizes[size]) for n in models.names() if models.get(n).sizes.get(size) is not None
        }
        assert len(kinds) == 1, (size, kinds)


@pytest.mark.parametrize("name", models.names())
def test_every_model_keeps_the_interface(name):
    """init -> (params, state); loss and loss_manual -> (the same loss, the same new state: bit for bit
    from loss_autodiff where a model has one, else from loss); eval logits."""
    m = models.get(name)
    small = {"block_size": 5, "n_layer": 1, "n_embd": 8, "n_head": 2} if m.data == "text" else {}
    cfg = Config(name, **small).with_data({"block_size": 5})  # a sequence model's T comes from the data
    params, state = m.init(jax.random.key(0), vocab_size=27, **cfg.sizes)
    X, Y = batch(jax.random.key(1), 16, block=cfg.block_size)
    if m.data == "sequences":
        Y = jnp.tile(Y[:, None], (1, cfg.block_size)).at[:, -1].set(-1)
    if m.data == "text":  # every position a target
        Y = jnp.roll(X, -1, axis=1)
    plain = m.training_loss("autodiff")
    (l_plain, s_plain), (l_man, s_man) = plain(params, state, X, Y), m.loss_manual(params, state, X, Y)
    assert l_plain == l_man
    np.testing.assert_allclose(m.loss(params, state, X, Y)[0], l_man, rtol=1e-6)  # the oracle, however computed
    jax.tree_util.tree_map(np.testing.assert_array_equal, s_plain, s_man)
    stats = m.eval_stats(params, state, X)
    assert m.logits_eval(params, stats, X).shape == ((16, 27) if m.data == "windows" else (16, 5, 27))
    assert m.flops is None or m.flops(32, 27, **cfg.sizes) > 0


def test_a_model_of_bpjax_0_1_given_as_its_functions_still_works():
    """No forward: its loss, loss_manual and logits_eval as given; the checks are its whole-model table."""
    mlp = models.get("mlp")
    old = Model(
        name="old",
        sizes=dict(mlp.sizes),
        init=mlp.init,
        loss=mlp.loss,
        loss_manual=mlp.loss_manual,
        logits_eval=mlp.logits_eval,
        eval_stats=mlp.eval_stats,
        min_batch=2,
    )
    params, state = old.init(jax.random.key(0), vocab_size=27, **old.sizes)
    X, Y = batch(jax.random.key(1), 32)
    (table,) = old.tables(params, state, X, Y)
    assert table.ok and table.rows[0].table == "model"
    with pytest.raises(ConfigError, match="give its forward, or loss, loss_manual"):
        Model(name="nothing", sizes={"block_size": 3}, init=mlp.init, logits_eval=mlp.logits_eval)


def test_a_model_declares_its_block_size_and_layout():
    mlp = models.get("mlp")
    with pytest.raises(ConfigError, match="need a block_size"):
        dataclasses.replace(mlp, sizes={"n_embd": 3})
    with pytest.raises(ConfigError, match="data layout must be one of"):
        dataclasses.replace(mlp, data="stream")


@pytest.mark.parametrize(
    "name, count",
    [
        ("mlp", 4_137),
        ("wavenet", 76_579),
        ("deep", 47_024),
        ("bigram", 729),
        ("bengio", 69_147),
        ("rnn", 11_803),
        ("gru", 28_315),
        ("bow", 12_827),
        ("transformer", 204_544),
    ],
)
def test_parameter_counts_are_the_lectures_and_makemores(name, count):
    m = models.get(name)
    params, _ = m.init(jax.random.key(0), vocab_size=27, **Config(name).with_data({"block_size": 16}).sizes)
    assert models.n_params(params) == count
