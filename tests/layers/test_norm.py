"""Normalisation: batch norm (exercise 3, training and eval mode, running statistics) and layer norm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.check import check_vjp
from bpjax.errors import ConfigError
from conftest import assert_layer_checks, check_grads_on_floats, layer_inputs, seq_layer_inputs

DTYPES = [jnp.float32, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [2, 3, 32, 1000])
def test_batchnorm_matches_jax_grad(n, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        for seed, hidden in enumerate([7, 129]):
            args, names = layer_inputs("batchnorm", n, dtype, jax.random.key(seed), hidden=hidden)
            assert_layer_checks(L.batchnorm, L.batchnorm_plain, args, names, key=jax.random.key(100 + seed))


def test_batchnorm_finite_differences_float64():
    with jax.enable_x64(True):
        args, _ = layer_inputs("batchnorm", 6, jnp.float64, jax.random.key(3))
        check_grads_on_floats(L.batchnorm, args)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("B, T, H", [(2, 4, 5), (3, 2, 17), (32, 4, 128)])
def test_batchnorm_over_batch_and_time(dtype, B, T, H):
    """Statistics over (batch, time), n = B·T rows, one gain per feature: the WaveNet's batch norm."""
    with jax.enable_x64(dtype == jnp.float64):
        k = jax.random.split(jax.random.key(H), 2)
        h = jax.random.normal(k[0], (B, T, H), dtype) * 3 + 1
        g, b = jnp.ones((H,), dtype) * 1.1, jnp.ones((H,), dtype) * 0.1
        t = check_vjp(L.batchnorm, L.batchnorm_plain, (h, g, b), argnames=["x", "bngain", "bnbias"], key=k[1])
        assert t.ok and t["bngain"].shape == (H,), str(t)


def test_batchnorm_of_one_row_is_an_error():
    with pytest.raises(ConfigError, match="at least 2 rows"):
        L.batchnorm(jnp.ones((1, 4)), jnp.ones((1, 4)), jnp.zeros((1, 4)))
    with pytest.raises(ConfigError, match="at least 2 rows"):
        jax.grad(lambda x: L.batchnorm(x, jnp.ones((1, 4)), jnp.zeros((1, 4))).sum())(jnp.ones((1, 4)))


def test_batchnorm_composes_with_jit_vmap_grad():
    with jax.enable_x64(True):
        (x, g, b), _ = layer_inputs("batchnorm", 8, jnp.float64, jax.random.key(5))
        xs = jnp.stack([x, 2 * x + 1, -x])

        def f(f_bn):
            return jax.jit(jax.vmap(jax.grad(lambda x: (f_bn(x, g, b) ** 3).sum())))

        np.testing.assert_allclose(f(L.batchnorm)(xs), f(L.batchnorm_plain)(xs), rtol=1e-10, atol=1e-12)


def test_eval_batchnorm_with_the_batch_statistics_is_training_batchnorm():
    x = jax.random.normal(jax.random.key(0), (64, 5)) * 2 + 1
    g, b = jnp.full((5,), 1.1), jnp.full((5,), 0.1)
    ev = L.batchnorm_eval(x, g, b, x.mean(0), x.var(0, ddof=1))
    np.testing.assert_allclose(ev, L.batchnorm_plain(x, g, b), rtol=1e-5, atol=1e-6)


def test_running_batchnorm_moves_the_running_statistics_in_training_and_uses_them_in_eval():
    x = jax.random.normal(jax.random.key(1), (16, 2, 6)) * 2 + 3
    g, b = jnp.full((6,), 1.1), jnp.full((6,), 0.1)
    running = L.running_stats(g)
    y, new = L.running_batchnorm(L.MANUAL, x, g, b, running)
    np.testing.assert_array_equal(y, L.batchnorm(x, g, b))
    np.testing.assert_allclose(new["running_mean"], 0.1 * x.mean((0, 1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new["running_var"], 0.9 + 0.1 * x.var((0, 1), ddof=1), rtol=1e-5)
    y_eval, same = L.running_batchnorm(L.EVAL, x, g, b, new)
    assert same is new
    np.testing.assert_array_equal(y_eval, L.batchnorm_eval(x, g, b, new["running_mean"], new["running_var"]))
    g_run = jax.grad(lambda x: L.running_batchnorm(L.MANUAL, x, g, b, running)[1]["running_mean"].sum())(x)
    assert not g_run.any()  # the running statistics carry no gradient


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 5])
def test_layernorm_matches_jax_grad(T, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f_man, f_ref, args, names = seq_layer_inputs("layernorm", 3, T, dtype, seed=T)
        assert_layer_checks(f_man, f_ref, args, names, key=jax.random.key(T), f64_bound=1e-12)


def test_layernorm_finite_differences_and_without_a_bias():
    with jax.enable_x64(True):
        f_man, _, (x, g, b), _ = seq_layer_inputs("layernorm", 2, 3, jnp.float64, seed=7)
        check_grads_on_floats(f_man, (x, g, b))
        t = check_vjp(
            lambda x, g: L.layernorm(x, g, None),
            lambda x, g: L.layernorm_plain(x, g, None),
            (x, g),
            argnames=["x", "g"],
        )
        assert t.ok and max(r.maxdiff for r in t) <= 1e-12
        np.testing.assert_allclose(L.layernorm(x, g, None) + b, L.layernorm(x, g, b), rtol=1e-14)
