"""makemore.py's state dicts: bpjax's parameters under makemore's keys and shapes, and back, exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import Config, models
from bpjax.errors import CheckpointError
from bpjax.models.makemore import from_state_dict, to_state_dict

ZOO = ("bigram", "bengio", "rnn", "gru", "bow", "transformer")
MAKEMORE_SHAPES = {  # a few of makemore.py's state_dict() entries, with names.txt (V 27, T 16)
    "bengio": {"wte.weight": (28, 64), "mlp.0.weight": (64, 1024), "mlp.2.bias": (27,)},
    "rnn": {"start": (1, 64), "cell.xh_to_h.weight": (64, 128), "lm_head.weight": (27, 64)},
    "gru": {"cell.xh_to_hbar.weight": (64, 128), "cell.xh_to_z.bias": (64,)},
    "bow": {"wpe.weight": (16, 64), "context_block.mlp.c_fc.weight": (64, 64)},
    "transformer": {
        "transformer.h.3.attn.c_attn.weight": (192, 64),
        "transformer.h.0.mlp.c_proj.weight": (64, 256),
        "lm_head.weight": (27, 64),
        "transformer.ln_f.bias": (64,),
    },
    "bigram": {"logits": (27, 27)},
}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("x64", [False, True], ids=["f32", "f64"])
def test_makemore_state_dict_round_trip_is_exact(name, x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        params, _ = models.get(name).init(
            jax.random.key(0), vocab_size=27, dtype=dtype, **Config(name).with_data({"block_size": 16}).sizes
        )
        sd = to_state_dict(name, params)
        for k, shape in MAKEMORE_SHAPES[name].items():
            assert sd[k].shape == shape, k
        assert sum(a.size for a in sd.values()) == models.n_params(params)
        back = from_state_dict(
            name, {**sd, "transformer.h.0.attn.bias": np.ones((1, 1, 16, 16))} if name == "transformer" else sd
        )  # a buffer is accepted and ignored
        assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
        for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(back), strict=True):
            assert b.dtype == a.dtype and np.array_equal(np.asarray(a), b)


def test_makemore_state_dict_errors():
    with pytest.raises(CheckpointError, match="not a makemore rnn state dict"):
        from_state_dict("rnn", {"logits": np.zeros((27, 27))})
    with pytest.raises(CheckpointError, match="makemore has no model 'mlp'; its models here: bigram, bengio"):
        from_state_dict("mlp", {})
    with pytest.raises(CheckpointError, match="makemore has no model 'gpt-7'"):
        to_state_dict("gpt-7", {})
