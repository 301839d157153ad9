"""makemore part 3's deeper network: the lecture's sizes and init, each experiment one setting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import Config, models
from bpjax.errors import CheckpointError, ConfigError
from conftest import batch


def test_deep_network_has_the_lecture_sizes_and_init():
    m = models.get("deep")
    params, state = m.init(jax.random.key(0), vocab_size=27, **m.sizes)
    assert models.n_params(params) == 47_024  # the lecture's count
    assert len(params["layers"]) == 6 and len(state["layers"]) == 6
    last = params["layers"][-1]
    np.testing.assert_allclose(last["bngain"], 0.1)  # the last gamma scaled by 0.1
    W1 = params["layers"][1]["W"]  # N(0, 1) / sqrt(100) x 5/3
    assert abs(float(W1.std()) - (5 / 3) / 10) < 0.01
    bare, none = m.init(jax.random.key(0), vocab_size=27, **{**m.sizes, "batchnorm": False})
    assert models.n_params(bare) == 46_497 and none == {}
    assert abs(float(bare["layers"][-1]["W"].std()) - 0.1 / 10) < 0.002  # the last weight scaled instead


def test_the_lectures_experiments_are_settings():
    cfg = Config("deep", batchnorm=False, gain=1.0).validate()
    assert Config.from_json(cfg.to_json()).sizes == cfg.sizes
    for bad, needle in (
        ({"gain": -1.0}, "gain must be a positive number"),
        ({"batchnorm": 1}, "batchnorm must be true or false"),
        ({"n_blocks": 0}, "n-blocks must be a positive integer"),
    ):
        with pytest.raises(ConfigError, match=needle):
            Config("deep", **bad).validate()
    with pytest.raises(CheckpointError, match="malformed: batchnorm"):
        Config.from_json({**cfg.to_json(), "batchnorm": 1})


@pytest.mark.parametrize("batchnorm", [True, False], ids=["bn", "no-bn"])
def test_deep_network_tables_cover_every_layer_in_float64(batchnorm):
    """``bpjax check --model deep --float64``: every layer and the whole model at the float64 rule."""
    with jax.enable_x64(True):
        m = models.get("deep")
        sizes = {**m.sizes, "n_hidden": 24, "n_blocks": 3, "batchnorm": batchnorm}
        params, state = m.init(jax.random.key(0), vocab_size=27, dtype=jnp.float64, **sizes)
        X, Y = batch(jax.random.key(1), 32)
        layers, whole = m.tables(params, state, X, Y)
        assert layers.ok and whole.ok and layers.dtype == "float64", f"{layers}\n{whole}"
        params_rows = [r for r in layers if r.name.startswith(("C", "layers/"))]
        assert len(params_rows) == 1 + 4 * (3 if batchnorm else 2)  # C, every layer's W and gain and bias, or b


PART3_MLP = {"n_blocks": 1, "n_hidden": 200, "output_batchnorm": False, "momentum": 0.001, "last_scale": 0.01}
"""The lecture's first half: its BatchNorm MLP (12,097 parameters)."""


def test_the_lectures_batchnorm_mlp_is_a_setting_of_the_deep_network():
    """Batch norm on the hidden layer only (no b1), W2·0.01 and b2 zeros, running statistics moved
    0.001 of the way to each batch's; every other setting keeps nn.BatchNorm1d's 0.1 and its state."""
    m = models.get("deep")
    sizes = {**m.sizes, **PART3_MLP}
    params, state = m.init(jax.random.key(0), vocab_size=27, **sizes)
    assert models.n_params(params) == 12_097  # the lecture's count
    first, out = params["layers"]
    assert set(first) == {"W", "bngain", "bnbias"} and set(out) == {"W", "b"}
    assert abs(float(out["W"].std()) - 0.01 / 200**0.5) < 2e-4 and not out["b"].any()
    X, _ = batch(jax.random.key(1), 64)
    _, new = m.forward(_plain(), params, state, X)
    h = models.get("deep").init(jax.random.key(0), vocab_size=27, **sizes)[0]["C"][X].reshape(64, -1) @ first["W"]
    np.testing.assert_allclose(new["layers"][0]["running_mean"], 0.001 * h.mean(0), rtol=1e-5, atol=1e-7)
    assert new["momentum"] == state["momentum"]  # the static node rides through
    assert set(m.init(jax.random.key(0), vocab_size=27, **m.sizes)[1]) == {"layers"}  # 0.1: no node
    with jax.enable_x64(True):
        p64, s64 = m.init(jax.random.key(0), vocab_size=27, dtype=jnp.float64, **{**sizes, "n_hidden": 24})
        layers, whole = m.tables(p64, s64, X, batch(jax.random.key(1), 64)[1])
        assert layers.ok and whole.ok, f"{layers}\n{whole}"


def _plain():
    from bpjax.layers import PLAIN

    return PLAIN


def test_hidden_biases_start_from_a_scale_and_nothing_else_moves():
    m = models.get("deep")
    zeros, _ = m.init(jax.random.key(0), vocab_size=27, **{**m.sizes, "batchnorm": False})
    drawn, _ = m.init(jax.random.key(0), vocab_size=27, **{**m.sizes, "batchnorm": False, "bias_scale": 0.01})
    hidden = jnp.concatenate([p["b"] for p in drawn["layers"][:-1]])
    assert abs(float(hidden.std()) - 0.01) < 1e-3 and not drawn["layers"][-1]["b"].any()  # the lecture's b2·0
    same = lambda a, b: jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    same(zeros["C"], drawn["C"])
    same([p["W"] for p in zeros["layers"]], [p["W"] for p in drawn["layers"]])
    with pytest.raises(ConfigError, match="output-batchnorm must be true or false"):
        Config("deep", output_batchnorm=1).validate()
    with pytest.raises(ConfigError, match="momentum"):
        Config("deep", momentum=1.5).validate()
