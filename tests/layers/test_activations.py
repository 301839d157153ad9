"""Activations: tanh (the notebook's) and GPT-2's GELU, against jax.grad and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
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


def test_the_normal_cdf_is_accurate_in_both_tails_in_float32():
    """``normal_cdf`` (the exact GELU's Φ) in float32: erf's form above -1, a rational Mills-ratio tail
    below, held to float64's Φ on a dense grid: within 1e-5 relative wherever Φ > 1e-30, and at least
    as close as XLA's float32 erfc; float64 is ½ erfc(-x/√2) itself."""
    x = jnp.linspace(-20.0, 10.0, 600_001, dtype=jnp.float32)
    with jax.enable_x64(True):
        truth = np.asarray(jax.scipy.special.ndtr(jnp.asarray(np.asarray(x), jnp.float64)))
        x64 = jnp.linspace(-8.0, 8.0, 101, dtype=jnp.float64)
        assert (L.normal_cdf(x64) == 0.5 * jax.lax.erfc(-x64 * np.sqrt(0.5))).all()
    mask = truth > 1e-30

    def worst(p):
        return float(np.max(np.abs(np.asarray(p, np.float64) - truth)[mask] / truth[mask]))

    ours, xla = worst(jax.jit(L.normal_cdf)(x)), worst(jax.jit(lambda x: 0.5 * jax.lax.erfc(-x / np.sqrt(2.0)))(x))
    assert ours <= 1e-5 and ours <= xla, (ours, xla)
    assert np.all(np.diff(np.asarray(L.normal_cdf(x))) >= 0)  # monotone across the switch at -1
