"""Activations: tanh (the notebook's) and GPT-2's GELU, against jax.grad and finite differences."""

import jax
import jax.numpy as jnp
import pytest

from bpjax import layers as L
from bpjax.check import check_vjp
from conftest import assert_layer_checks, check_grads_on_floats, layer_inputs, seq_layer_inputs

DTYPES = [jnp.float32, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [2, 3, 32, 1000])
def test_tanh_matches_jax_grad(n, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        for seed, hidden in enumerate([7, 129]):
            args, names = layer_inputs("tanh", n, dtype, jax.random.key(seed), hidden=hidden)
            assert_layer_checks(L.tanh, L.tanh_plain, args, names, key=jax.random.key(100 + seed))


def test_tanh_finite_differences_float64_and_3d():
    with jax.enable_x64(True):
        args, _ = layer_inputs("tanh", 6, jnp.float64, jax.random.key(3))
        check_grads_on_floats(L.tanh, args)
        args, names = layer_inputs("tanh", 4, jnp.float64, jax.random.key(1), leading=(2,))
        assert check_vjp(L.tanh, L.tanh_plain, args, argnames=names).ok


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 5])
def test_gelu_matches_jax_grad(T, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f_man, f_ref, args, names = seq_layer_inputs("gelu", 3, T, dtype, seed=T)
        assert_layer_checks(f_man, f_ref, args, names, key=jax.random.key(T), f64_bound=1e-12)


def test_gelu_finite_differences():
    with jax.enable_x64(True):
        f_man, _, args, _ = seq_layer_inputs("gelu", 2, 3, jnp.float64, seed=7)
        check_grads_on_floats(f_man, args)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_exact_gelu_is_torchs_and_its_derivative_phi_plus_x_pdf(dtype):
    """``nn.GELU()`` (nanoGPT's): x Φ(x); its backward Φ(x) + x φ(x) against jax.grad and finite differences."""
    with jax.enable_x64(dtype == jnp.float64):
        x = jax.random.normal(jax.random.key(4), (6, 33), dtype) * 3
        assert jnp.allclose(L.gelu_exact(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-7)
        table = check_vjp(L.gelu_exact, L.gelu_exact_plain, (x,), argnames=["x"], key=jax.random.key(1))
        assert table.ok, table
        if dtype == jnp.float64:
            assert table["x"].maxdiff <= 1e-12
            check_grads_on_floats(L.gelu_exact, (x[:2, :5],))


@pytest.mark.parametrize("name", ["tanh", "gelu", "gelu_exact"])
def test_each_activation_passes_assert_layer_with_no_twin_given(name):
    """The user's path (``bpjax.testing.assert_layer``): float32, float64 and finite differences,
    on inputs reaching both tails."""
    from bpjax.testing import assert_layer

    x = 4 * jax.random.normal(jax.random.key(2), (5, 17))
    assert_layer(getattr(L, name), x, argnames=["x"])
