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
