"""The converter every peer's state dict goes through: a model's key map, transposes, fused heads."""

import numpy as np
import pytest

from bpjax import Model, models
from bpjax.errors import CheckpointError
from bpjax.models.statedict import from_state_dict, linear_keys, to_state_dict


def _model(keys):
    mlp = models.get("mlp")
    return Model(name="toy", init=mlp.init, forward=mlp.forward, sizes={"block_size": 1}, state_dicts={"peer": keys})


def test_a_key_map_converts_every_transform_both_ways():
    def keys(n_layer):
        out = [*linear_keys("head", "W", "b")]
        for i in range(n_layer):
            out += [
                (f"h.{i}.attn.c_attn.weight", f"blocks/{i}/W_attn", "attn"),
                (f"h.{i}.attn.c_attn.bias", f"blocks/{i}/b_attn", "attn_b"),
            ]
        return out

    rng = np.random.default_rng(0)
    params = {
        "W": rng.normal(size=(3, 5)),
        "b": rng.normal(size=5),
        "blocks": [{"W_attn": rng.normal(size=(4, 3, 2, 2)), "b_attn": rng.normal(size=(3, 2, 2))}],
    }
    sd = to_state_dict(_model(keys), params, "peer")
    assert sd["head.weight"].shape == (5, 3) and sd["h.0.attn.c_attn.weight"].shape == (12, 4)
    np.testing.assert_array_equal(sd["head.weight"], params["W"].T)
    back = from_state_dict(_model(keys), {**sd, "h.0.attn.bias": np.ones(1)}, "peer", n_head=2)
    for a, b in (
        (params["W"], back["W"]),
        (params["blocks"][0]["W_attn"], back["blocks"][0]["W_attn"]),
        (params["blocks"][0]["b_attn"], back["blocks"][0]["b_attn"]),
    ):
        np.testing.assert_array_equal(a, b)


def test_wrong_keys_and_heads_are_one_line_each():
    keys = lambda n: [("h.0.attn.c_attn.weight", "blocks/0/W_attn", "attn")]
    with pytest.raises(CheckpointError, match=r"missing \['h.0.attn.c_attn.weight'\], unexpected \['x'\]"):
        from_state_dict(_model(keys), {"x": np.ones(2)}, "peer")
    with pytest.raises(CheckpointError, match="does not divide by n_head 5"):
        from_state_dict(_model(keys), {"h.0.attn.c_attn.weight": np.ones((12, 4))}, "peer", n_head=5)
    with pytest.raises(CheckpointError, match="elsewhere has no model 'toy'"):
        to_state_dict(_model(keys), {}, "elsewhere")
