"""Causal self-attention as one layer, its whole backward by hand, against jax.grad and finite differences."""

import jax
import jax.numpy as jnp
import pytest

from conftest import assert_layer_checks, check_grads_on_floats, seq_layer_inputs


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 5])
def test_attention_matches_jax_grad(T, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f_man, f_ref, args, names = seq_layer_inputs("attention", 3, T, dtype, seed=T)
        assert_layer_checks(f_man, f_ref, args, names, key=jax.random.key(T), f64_bound=1e-12)


def test_attention_finite_differences():
    with jax.enable_x64(True):
        f_man, _, args, _ = seq_layer_inputs("attention", 2, 3, jnp.float64, seed=7)
        check_grads_on_floats(f_man, args)


def test_future_positions_get_exactly_zero_gradient():
    """Position t attends to 0..t only: the gradient of output t with respect to every later input is 0."""
    f_man, _, args, _ = seq_layer_inputs("attention", 2, 6, jnp.float32, seed=3)
    x, rest = args[0], args[1:]
    for t in range(6):
        g = jax.grad(lambda x, t=t: f_man(x, *rest)[:, t].sum())(x)
        assert (g[:, t + 1 :] == 0).all(), t
        assert (g[:, t] != 0).any()


def _attention_args(dtype, T=6, C=8, nh=2, flat_bias=False, seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    b_shape = (3 * C,) if flat_bias else (3, nh, C // nh)
    return (
        jax.random.normal(k[0], (2, T, C), dtype),
        0.3 * jax.random.normal(k[1], (C, 3, nh, C // nh), dtype),
        0.1 * jax.random.normal(k[2], b_shape, dtype),
        0.3 * jax.random.normal(k[3], (C, C), dtype),
        0.1 * jax.random.normal(k[4], (C,), dtype),
    )


@pytest.mark.parametrize("flat_bias", [False, True])
def test_dropout_on_the_probabilities_and_either_bias_layout_in_float64(flat_bias):
    """nanoGPT's ``attn_dropout``: the probabilities' mask drawn from the key, the same in both twins;
    ``b_attn`` as [3, nh, hs] (makemore's) or [3C] (nanoGPT's c_attn.bias), its gradient its shape."""
    from bpjax import layers as L
    from bpjax.check import check_vjp

    with jax.enable_x64(True):
        args = _attention_args(jnp.float64, flat_bias=flat_bias)
        key = jax.random.key(3)
        man = lambda *a: L.attention(*a, key, 0.5)
        ref = lambda *a: L.attention_plain(*a, key, 0.5)
        assert not jnp.allclose(man(*args), L.attention(*args))  # something was dropped
        t = check_vjp(man, ref, args, argnames=["x", "W_attn", "b_attn", "W_proj", "b_proj"], key=key)
        assert t.ok and max(r.maxdiff for r in t) <= 1e-12, t
        assert t["b_attn"].shape == args[2].shape
        check_grads_on_floats(man, args)
        nobias = (args[0], args[1], None, args[3], None)
        assert check_vjp(
            lambda x, W, P: L.attention(x, W, None, P, None),
            lambda x, W, P: L.attention_plain(x, W, None, P, None),
            (args[0], args[1], args[3]),
            argnames=["x", "W_attn", "W_proj"],
        ).ok
        assert L.attention(*nobias).shape == args[0].shape


def test_products_in_bfloat16_with_the_softmax_in_float32():
    """Through a bfloat16 layer set, attention multiplies in bfloat16 and returns float32; its
    gradients are the float32 layer's to bfloat16's precision, and both twins agree by its pass rule."""
    from bpjax import layers as L
    from bpjax.check import compare

    args = _attention_args(jnp.float32, T=16, C=32, nh=4, seed=1)
    bf = L.MANUAL.computing_in("bfloat16")
    assert bf.attention(*args).dtype == jnp.float32
    jaxpr = str(jax.make_jaxpr(bf.attention)(*args))
    assert "bf16[2,4,16,8]" in jaxpr and "f32[2,4,16,16]" in jaxpr  # bf16 heads, f32 probabilities
    g16 = jax.grad(lambda *a: (bf.attention(*a) ** 2).sum(), argnums=(0, 1, 3))(*args)  # the layer as trained
    g32 = jax.grad(lambda *a: (L.attention(*a) ** 2).sum(), argnums=(0, 1, 3))(*args)
    for a, b in zip(g16, g32, strict=True):
        assert float(jnp.abs(a - b).max()) <= 2**-5 * float(jnp.abs(b).max())
    g_man = jax.grad(lambda *a: (bf.attention(*a) ** 2).sum(), argnums=(0, 1, 3))(*args)
    g_ref = jax.grad(lambda *a: (bf.plain.attention(*a) ** 2).sum(), argnums=(0, 1, 3))(*args)
    names = ["x", "W_attn", "W_proj"]
    t = compare(dict(zip(names, g_man, strict=True)), dict(zip(names, g_ref, strict=True)), rule="bfloat16")
    assert t.ok, t
