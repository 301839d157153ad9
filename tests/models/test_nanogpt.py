"""nanoGPT's state dict and bpjax's GPT parameters: keys, shapes, the tied head, an exact round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import models
from bpjax.errors import CheckpointError
from bpjax.models import nanogpt

GPT = models.get("gpt")
SIZES = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0}


def params_of(bias, dtype=jnp.float32):
    return GPT.init(jax.random.key(0), vocab_size=11, dtype=dtype, **SIZES, bias=bias)[0]


@pytest.mark.parametrize("bias", [False, True])
def test_keys_shapes_and_an_exact_round_trip(bias):
    p = params_of(bias)
    sd = nanogpt.to_state_dict(p)
    C = SIZES["n_embd"]
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (3 * C, C)  # PyTorch's [out, in]
    assert sd["transformer.h.1.mlp.c_fc.weight"].shape == (4 * C, C)
    assert sd["transformer.wpe.weight"].shape == (8, C) and sd["lm_head.weight"].shape == (11, C)
    np.testing.assert_array_equal(sd["lm_head.weight"], sd["transformer.wte.weight"])  # tied
    assert ("transformer.h.0.attn.c_attn.bias" in sd) == bias and ("transformer.ln_f.bias" in sd) == bias
    per_block = 12 if bias else 6
    assert len(sd) == 2 + 2 * per_block + (2 if bias else 1) + 1
    back = nanogpt.from_state_dict(sd)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(p)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(p), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, np.asarray(b))


def test_dtypes_buffers_prefixes_and_a_whole_checkpoint():
    sd = {k: v.astype(np.float16) for k, v in nanogpt.to_state_dict(params_of(False)).items()}
    sd["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8)))  # nanoGPT's causal-mask buffer
    compiled = {"_orig_mod." + k: v for k, v in sd.items()}  # torch.compile's keys
    ckpt = {"model": compiled, "model_args": {**SIZES, "bias": False, "vocab_size": 11}, "iter_num": 5}
    p = nanogpt.from_state_dict(ckpt)
    assert p["wte"].dtype == np.float16 and p["blocks"][0]["W_attn"].shape == (16, 48)
    assert nanogpt.sizes_of(ckpt["model_args"]) == {**SIZES, "bias": False}


def test_a_wrong_state_dict_is_one_clear_error():
    sd = nanogpt.to_state_dict(params_of(True))
    untied = {**sd, "lm_head.weight": sd["lm_head.weight"] + 1}
    with pytest.raises(CheckpointError, match="lm_head.weight differs from the parameter it is tied to"):
        nanogpt.from_state_dict(untied)
    partial = {k: v for k, v in sd.items() if k != "transformer.h.1.mlp.c_proj.bias"}
    with pytest.raises(CheckpointError, match="missing \\['transformer.h.1.mlp.c_proj.bias'\\]"):
        nanogpt.from_state_dict(partial)
    with pytest.raises(CheckpointError, match="dict of arrays"):
        nanogpt.from_state_dict([1, 2])
    with pytest.raises(CheckpointError, match="lacks bias"):
        nanogpt.sizes_of({k: 1 for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")})


def test_a_converted_state_dict_trains_evaluates_and_samples(shakespeare_path, tmp_path):
    """nanoGPT's parameters (here: a bpjax init through its state dict) as a run's start: the loss and
    the gradients are the model's, a step of training lowers the loss, text follows a prompt."""
    from bpjax.data import Vocab, load_text
    from bpjax.training.sample import generate_text

    text = load_text(shakespeare_path)[:20_000]
    vocab = Vocab.from_text(text)
    params, state = GPT.init(jax.random.key(3), vocab_size=vocab.size, **SIZES, bias=True)
    theirs = nanogpt.from_state_dict(nanogpt.to_state_dict(params))
    ids = jnp.asarray([vocab.stoi[c] for c in text[: 9 * 4]]).reshape(4, 9)
    X, Y = ids[:, :8], ids[:, 1:]
    loss, g = jax.value_and_grad(lambda p: GPT.loss_manual(p, state, X, Y)[0])(
        jax.tree_util.tree_map(jnp.asarray, theirs)
    )
    assert float(loss) == pytest.approx(float(GPT.loss(params, state, X, Y)[0]), rel=1e-6)
    stepped = jax.tree_util.tree_map(lambda p, d: p - 0.5 * d, jax.tree_util.tree_map(jnp.asarray, theirs), g)
    assert float(GPT.loss(stepped, state, X, Y)[0]) < float(loss)
    out = "".join(generate_text(GPT.logits_eval, stepped, state, vocab, 8, prompt="ROMEO:", chars=12))
    assert len(out) == 12 and set(out) <= set(vocab.itos)
