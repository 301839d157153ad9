"""Dense layers (linear, embedding, FlattenConsecutive, makemore's context linear) against jax.grad
and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bpjax import layers as L
from bpjax.check import check_vjp
from bpjax.errors import ConfigError
from conftest import assert_layer_checks, check_grads_on_floats, layer_inputs, seq_layer_inputs

DTYPES = [jnp.float32, jnp.float64]
LAYERS = {"linear": (L.linear, L.linear_plain), "embedding": (L.embedding, L.embedding_plain)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [2, 3, 32, 1000])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_jax_grad(name, n, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        for seed, hidden in enumerate([7, 129]):  # odd hidden sizes (the MLP tests use 64)
            args, names = layer_inputs(name, n, dtype, jax.random.key(seed), hidden=hidden)
            assert_layer_checks(*LAYERS[name], args, names, key=jax.random.key(100 + seed))


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_finite_differences_float64(name):
    with jax.enable_x64(True):
        args, _ = layer_inputs(name, 6, jnp.float64, jax.random.key(3))
        check_grads_on_floats(LAYERS[name][0], args)


def test_linear_on_3d_input_and_without_a_bias():
    """Leading axes (B, T) are rows for the weight's gradient: what the WaveNet's layers need."""
    with jax.enable_x64(True):
        args, names = layer_inputs("linear", 4, jnp.float64, jax.random.key(1), leading=(2,))
        assert check_vjp(L.linear, L.linear_plain, args, argnames=names).ok
        x, W, _ = args
        t = check_vjp(
            lambda x, W: L.linear(x, W, None), lambda x, W: L.linear_plain(x, W, None), (x, W), argnames=["x", "W"]
        )
        assert t.ok and len(t) == 2
        check_grads(lambda x, W: L.linear(x, W, None), (x, W), order=1, modes=["rev"])


def test_embedding_adds_repeated_rows():
    C = jnp.zeros((3, 2))
    X = jnp.array([[1, 1, 1], [2, 1, 0]])
    d_emb = jnp.ones((2, 3, 2))
    _, vjp = jax.vjp(lambda C: L.embedding(C, X), C)
    np.testing.assert_array_equal(vjp(d_emb)[0], [[1, 1], [4, 4], [1, 1]])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("B, T, C, n", [(2, 4, 3, 2), (5, 8, 7, 2), (3, 6, 5, 3), (4, 2, 9, 2)])
def test_flatten_consecutive(dtype, B, T, C, n):
    with jax.enable_x64(dtype == jnp.float64):
        x = jax.random.normal(jax.random.key(B * T), (B, T, C), dtype)
        y = L.flatten_consecutive(x, n)
        assert y.shape == ((B, n * C) if T == n else (B, T // n, n * C))
        np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))
        t = check_vjp(
            lambda x: L.flatten_consecutive(x, n), lambda x: L.flatten_consecutive_plain(x, n), (x,), argnames=["x"]
        )
        assert t.ok and t["x"].exact


def test_flatten_consecutive_refuses_indivisible_time():
    with pytest.raises(ConfigError, match="divisible by 2"):
        L.flatten_consecutive(jnp.ones((2, 3, 4)), 2)
    with jax.enable_x64(True):
        check_grads(lambda x: L.flatten_consecutive(x, 2), (jnp.ones((3, 4, 5), jnp.float64),), order=1, modes=["rev"])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 5])
def test_context_linear_matches_jax_grad(T, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f_man, f_ref, args, names = seq_layer_inputs("context_linear", 3, T, dtype, seed=T)
        assert_layer_checks(f_man, f_ref, args, names, key=jax.random.key(T), f64_bound=1e-12)


def test_context_linear_finite_differences():
    with jax.enable_x64(True):
        f_man, _, args, _ = seq_layer_inputs("context_linear", 2, 3, jnp.float64, seed=7)
        check_grads_on_floats(f_man, args)  # the integer ids stay fixed


def test_context_linear_is_embedding_concatenation_then_linear():
    """bengio's per-token projections compute makemore's embcat @ W1 + b1."""
    with jax.enable_x64(True):
        wte, ids, W, b = seq_layer_inputs("context_linear", 4, 6, jnp.float64, seed=2)[2]
        direct = L.linear_plain(L.embedding_plain(wte, ids).reshape(4, 6, -1), W, b)
        np.testing.assert_allclose(L.context_linear(wte, ids, W, b), direct, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_position_embedding_fills_the_first_T_rows_and_the_tied_head(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        k = jax.random.split(jax.random.key(0), 4)
        tok, wpe = jax.random.normal(k[0], (3, 5, 4), dtype), jax.random.normal(k[1], (8, 4), dtype)
        np.testing.assert_array_equal(L.add_positions(tok, wpe), tok + wpe[:5])
        t = check_vjp(L.add_positions, L.add_positions_plain, (tok, wpe), argnames=["tok", "wpe"], key=k[2])
        assert t.ok, t
        d_wpe = jax.grad(lambda w: L.add_positions(tok, w).sum())(wpe)
        assert (d_wpe[:5] == 3).all() and (d_wpe[5:] == 0).all()  # the batch's sum; no gradient past T
        x, wte = jax.random.normal(k[3], (15, 4), dtype), wpe[:7]
        np.testing.assert_allclose(L.tied_head(x, wte), x @ wte.T)
        t = check_vjp(L.tied_head, L.tied_head_plain, (x, wte), argnames=["x", "wte"], key=k[2])
        assert t.ok, t
        if dtype == jnp.float64:
            check_grads_on_floats(L.tied_head, (x, wte))
            check_grads_on_floats(L.add_positions, (tok, wpe))


def test_products_in_bfloat16_meet_float32_sums():
    """``wide``: bfloat16 up to float32, float32 and float64 unchanged; a linear on bfloat16 inputs
    multiplies in bfloat16 and adds its bias, and sums its bias gradient, in float32."""
    x16, W16 = jnp.ones((300, 4), jnp.bfloat16), jnp.ones((4, 3), jnp.bfloat16)
    b16 = jnp.full((3,), 1 / 3, jnp.bfloat16)
    assert L.wide(x16).dtype == jnp.float32 and L.wide(jnp.ones(2)).dtype == jnp.float32
    y = L.linear(x16, W16, b16)
    assert y.dtype == jnp.float32 and float(y[0, 0]) == 4 + float(b16[0])
    d_b = jax.grad(lambda b: L.linear(x16, W16, b).sum())(b16)
    assert d_b.dtype == jnp.bfloat16 and float(d_b[0]) == 300.0  # in bfloat16 a running sum stalls at 256
