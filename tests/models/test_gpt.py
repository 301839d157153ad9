"""nanoGPT's GPT: its shapes and initialisation, its loss and float64 gradients against a numpy forward
written from nanoGPT's formulas on its state dict, every hand-written layer, dropout, the tied head."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import models
from bpjax.errors import ConfigError
from bpjax.models.gpt import Heads
from bpjax.nanogpt import to_state_dict

GPT = models.get("gpt")
SMALL = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0}
V = 11


def small(bias: bool, dtype=jnp.float64, seed=0, **kw):
    sizes = {**SMALL, "bias": bias, **kw}
    params, state = GPT.init(jax.random.key(seed), vocab_size=V, dtype=dtype, **sizes)
    if bias:  # GPT-2's biases start at 0: give them values, so the test sees them

        def perturbed(path, leaf):
            name = str(getattr(path[-1], "key", ""))
            is_bias = name.startswith("b_") or name.endswith("_b")
            key = jax.random.fold_in(jax.random.key(seed + 1), hash(jax.tree_util.keystr(path)) % 2**31)
            return leaf + 0.1 * jax.random.normal(key, leaf.shape, leaf.dtype) if is_bias else leaf

        params = jax.tree_util.tree_map_with_path(perturbed, params)
    return params, state


def batch(B=3, T=8, seed=2):
    kx, ky = jax.random.split(jax.random.key(seed))
    return jax.random.randint(kx, (B, T), 0, V), jax.random.randint(ky, (B, T), 0, V)


# --- nanoGPT's forward, in numpy, on its state dict ---------------------------------------------
def np_layernorm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + 1e-5) * w
    return y if b is None else y + b


def np_linear(sd, name, x):
    y = x @ sd[f"{name}.weight"].T
    return y + sd[f"{name}.bias"] if f"{name}.bias" in sd else y


def np_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def np_gpt_loss(sd, X, Y, n_head):
    """nanoGPT's ``GPT.forward(idx, targets)`` (eval: no dropout), term by term, float64."""
    B, T = X.shape
    wte = sd["transformer.wte.weight"]
    x = wte[X] + sd["transformer.wpe.weight"][:T]
    C = x.shape[-1]
    hs = C // n_head
    for i in range(len({k.split(".")[2] for k in sd if k.startswith("transformer.h.")})):
        h = f"transformer.h.{i}"
        a = np_layernorm(x, sd[f"{h}.ln_1.weight"], sd.get(f"{h}.ln_1.bias"))
        q, k, v = np.split(np_linear(sd, f"{h}.attn.c_attn", a), 3, axis=-1)
        q, k, v = (t.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3) for t in (q, k, v))
        att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hs)
        att = np.where(np.tril(np.ones((T, T), bool)), att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att = att / att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + np_linear(sd, f"{h}.attn.c_proj", y)
        m = np_layernorm(x, sd[f"{h}.ln_2.weight"], sd.get(f"{h}.ln_2.bias"))
        x = x + np_linear(sd, f"{h}.mlp.c_proj", np_gelu(np_linear(sd, f"{h}.mlp.c_fc", m)))
    x = np_layernorm(x, sd["transformer.ln_f.weight"], sd.get("transformer.ln_f.bias"))
    logits = x @ sd["lm_head.weight"].T
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, Y[..., None], -1).mean()


@pytest.mark.parametrize("bias", [False, True])
def test_loss_and_float64_gradients_are_nanogpts_formulas(bias):
    """The loss equals the numpy forward's on the same state dict; each parameter's hand-written
    gradient, along a random direction, equals the numpy loss's central difference along it."""
    with jax.enable_x64(True):
        params, state = small(bias)
        X, Y = batch()
        sd = to_state_dict(params)
        Xn, Yn = np.asarray(X), np.asarray(Y)
        ref = np_gpt_loss(sd, Xn, Yn, SMALL["n_head"])
        assert abs(float(GPT.loss_manual(params, state, X, Y)[0]) - ref) < 1e-12
        assert abs(float(GPT.loss(params, state, X, Y)[0]) - ref) < 1e-12
        grads = to_state_dict(jax.grad(lambda p: GPT.loss_manual(p, state, X, Y)[0])(params))
        rng = np.random.default_rng(0)
        h = 1e-5
        for key in sd:
            if key == "lm_head.weight":
                continue  # tied: moving it is moving transformer.wte.weight (its gradient holds both)
            d = rng.standard_normal(sd[key].shape)
            d /= np.linalg.norm(d)  # a unit direction: the difference's error is h**2 times its third derivative
            moved = lambda s, key=key, d=d: {
                **sd,
                key: sd[key] + s * d,
                **({"lm_head.weight": sd[key] + s * d} if key == "transformer.wte.weight" else {}),
            }
            fd = (np_gpt_loss(moved(h), Xn, Yn, 2) - np_gpt_loss(moved(-h), Xn, Yn, 2)) / (2 * h)
            analytic = float((grads[key] * d).sum())
            assert abs(analytic - fd) <= 1e-8 * max(1.0, abs(fd)), (key, analytic, fd)


@pytest.mark.parametrize("sizes", [{"bias": False}, {"bias": True}, {"bias": True, "dropout": 0.2}])
def test_every_layer_and_the_whole_model_in_float64(sizes):
    with jax.enable_x64(True):
        params, state = small(sizes["bias"], dropout=sizes.get("dropout", 0.0))
        X, Y = batch()
        kw = {"key": jax.random.key(7), "rate": sizes["dropout"]} if "dropout" in sizes else {}
        layers, whole = GPT.tables(params, state, X, Y, **kw)
        if kw:  # one more row per dropout: the embeddings' and each block's two residual branches'
            assert len(layers) == len(GPT.tables(params, state, X, Y)[0]) + 1 + 2 * SMALL["n_layer"]
        for t in (layers, whole):
            assert t.ok and max(r.maxdiff for r in t) <= 1e-12, t
        assert len(whole) == len(jax.tree_util.tree_leaves(params))


def test_the_cpu_recipe_sizes_and_gpt2_initialisation():
    params, state = GPT.init(jax.random.key(0), vocab_size=65, **GPT.sizes)
    assert models.n_params(params) == 804_096 and state == {"heads": Heads(4)}
    assert jax.tree_util.tree_leaves(state) == []  # the head count is static: no leaf to trace
    b = params["blocks"][0]
    assert b["W_attn"].shape == (128, 384) and b["W_mp"].shape == (512, 128) and "b_attn" not in b
    assert abs(float(params["wte"].std()) - 0.02) < 1e-3 and abs(float(b["W_fc"].std()) - 0.02) < 1e-3
    residual = 0.02 / math.sqrt(8)
    assert abs(float(b["W_proj"].std()) - residual) < 5e-4 and abs(float(b["W_mp"].std()) - residual) < 5e-4
    assert (b["ln1_g"] == 1).all() and (params["lnf_g"] == 1).all()
    biased, _ = GPT.init(jax.random.key(0), vocab_size=65, **{**GPT.sizes, "bias": True})
    assert (biased["blocks"][1]["b_fc"] == 0).all() and (biased["lnf_b"] == 0).all()


def test_the_head_is_the_embedding_and_its_gradient_holds_both_uses():
    params, state = small(False, jnp.float32)
    X, Y = batch()
    g = jax.grad(lambda p: GPT.loss_manual(p, state, X, Y)[0])(params)

    def untied(p, head):  # the same forward with the head's matrix a separate argument
        ly = GPT.layers.plain.replace(tied_head=lambda x, _w: x @ head.T)
        logits, _ = GPT.forward(ly, p, state, X)
        return ly.cross_entropy(logits, Y)

    g_emb, g_head = jax.grad(untied, argnums=(0, 1))(params, params["wte"])
    np.testing.assert_allclose(g["wte"], g_emb["wte"] + g_head, rtol=1e-4, atol=1e-7)
    assert float(jnp.abs(g_head).max()) > 0 and float(jnp.abs(g_emb["wte"]).max()) > 0


def test_dropout_draws_its_masks_from_the_key_and_eval_has_none():
    params, state = small(False, jnp.float32, dropout=0.3)
    X, Y = batch()
    plain = float(GPT.loss(params, state, X, Y)[0])
    k1, k2 = jax.random.key(1), jax.random.key(2)
    a, b = (float(GPT.loss_manual(params, state, X, Y, key=k, rate=0.3)[0]) for k in (k1, k2))
    assert a != b and a != plain and float(GPT.loss(params, state, X, Y, key=k1, rate=0.3)[0]) == pytest.approx(a)
    assert float(GPT.loss(params, state, X, Y, key=k1, rate=0.0)[0]) == plain  # rate 0: nothing dropped
    logits = GPT.logits_eval(params, state, X)  # eval mode: no key, no dropout
    np.testing.assert_allclose(logits, GPT.forward(GPT.layers.plain, params, state, X)[0], rtol=1e-6)
    assert GPT.dropout({"dropout": 0.3}) == 0.3


def test_a_shorter_context_and_a_missing_head_count():
    params, state = small(False, jnp.float32)
    X, _ = batch(T=8)
    full = GPT.logits_eval(params, state, X)
    short = GPT.logits_eval(params, state, X[:, :5])  # causal: the first 5 positions see the same
    assert short.shape == (3, 5, V)
    np.testing.assert_allclose(short, full[:, :5], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="head count"):
        GPT.loss(params, {}, X, X)


def test_sizes_are_nanogpts_names_and_checked():
    from bpjax import Config

    assert list(GPT.sizes) == ["n_layer", "n_head", "n_embd", "block_size", "dropout", "bias"]
    with pytest.raises(ConfigError, match="n-embd \\(100\\) must divide by n-head \\(3\\)"):
        Config("gpt", n_embd=100, n_head=3).validate()
    with pytest.raises(ConfigError, match="dropout must be a number from 0 up to \\(not including\\) 1"):
        Config("gpt", dropout=1.0).validate()
    assert Config("gpt", dropout=0.0).validate().sizes["dropout"] == 0.0
