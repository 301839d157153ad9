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
