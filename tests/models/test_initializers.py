"""PyTorch's default init, as makemore's modules get it."""

import jax
import jax.numpy as jnp

from bpjax.models.initializers import torch_linear


def test_torch_linear_is_uniform_within_one_over_root_fan_in():
    W, b = torch_linear(jax.random.key(0), 400, 300)
    bound = 1 / 400**0.5
    assert W.shape == (400, 300) and b.shape == (300,) and W.dtype == jnp.float32
    assert float(jnp.abs(W).max()) <= bound and float(jnp.abs(W).max()) > 0.99 * bound
    assert abs(float(W.std()) - bound / 3**0.5) < 0.01 * bound  # U(-a, a) has std a / sqrt(3)
    with jax.enable_x64(True):
        assert torch_linear(jax.random.key(0), 4, 3, jnp.float64)[0].dtype == jnp.float64
