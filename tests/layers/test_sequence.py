"""BoW's causal average, batch-first and time-major, against jax.grad and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from conftest import assert_layer_checks, check_grads_on_floats, seq_layer_inputs

NAMES = ["causal_mean", "causal_mean_time_major"]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("name", NAMES)
def test_causal_mean_matches_jax_grad(name, T, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f_man, f_ref, args, names = seq_layer_inputs(name, 3, T, dtype, seed=T)
        assert_layer_checks(f_man, f_ref, args, names, key=jax.random.key(T), f64_bound=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_causal_mean_finite_differences(name):
    with jax.enable_x64(True):
        f_man, _, args, _ = seq_layer_inputs(name, 2, 3, jnp.float64, seed=7)
        check_grads_on_floats(f_man, args)


def test_future_positions_get_exactly_zero_gradient():
    x = seq_layer_inputs("causal_mean", 2, 6, jnp.float32, seed=3)[2][0]
    for t in range(6):
        g = jax.grad(lambda x, t=t: L.causal_mean(x)[:, t].sum())(x)
        assert (g[:, t + 1 :] == 0).all() and (g[:, t] != 0).any(), t


def test_time_major_causal_mean_is_the_batch_first_one_transposed():
    """The same averages and gradients along axis 0 of x.T as along axis 1 of x (float64: the two
    layouts are different GEMMs); the future of a time-major position gets exactly zero gradient."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(5), (3, 6, 4), jnp.float64)
        xt = jnp.swapaxes(x, 0, 1)
        np.testing.assert_allclose(jnp.swapaxes(L.causal_mean(xt, 0), 0, 1), L.causal_mean(x), rtol=0, atol=1e-14)
        w = jax.random.normal(jax.random.key(6), x.shape, jnp.float64)
        g1 = jax.grad(lambda x: (L.causal_mean(x) * w).sum())(x)
        g0 = jax.grad(lambda xt: (L.causal_mean(xt, 0) * jnp.swapaxes(w, 0, 1)).sum())(xt)
        np.testing.assert_allclose(jnp.swapaxes(g0, 0, 1), g1, rtol=0, atol=1e-14)
    x = jax.random.normal(jax.random.key(5), (3, 6, 4))
    xt = jnp.swapaxes(x, 0, 1)
    for t in range(6):
        g = jax.grad(lambda xt, t=t: L.causal_mean(xt, 0)[t].sum())(xt)
        assert (g[t + 1 :] == 0).all() and (g[t] != 0).all()
