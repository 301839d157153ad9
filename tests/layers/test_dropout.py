"""Dropout: the mask drawn from the key, kept as the residual; the backward through the same entries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.check import check_vjp
from conftest import check_grads_on_floats


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_dropout_keeps_1_minus_p_scaled_and_its_backward_uses_the_same_mask(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        x = jax.random.normal(jax.random.key(0), (64, 48), dtype) + 3.0  # no entry is 0
        key, p = jax.random.key(5), 0.25
        y = L.dropout(x, key, p)
        kept = np.asarray(y != 0)
        np.testing.assert_allclose(np.asarray(y)[kept], np.asarray(x)[kept] / (1 - p), rtol=1e-6)
        assert abs(kept.mean() - (1 - p)) < 0.02 and y.dtype == x.dtype
        np.testing.assert_array_equal(y, L.dropout_plain(x, key, p))  # one mask for both twins
        table = check_vjp(lambda x: L.dropout(x, key, p), lambda x: L.dropout_plain(x, key, p), (x,), argnames=["x"])
        assert table.ok and table["x"].maxdiff == 0.0
        g = jax.grad(lambda x: (L.dropout(x, key, p) * x).sum())(x)
        np.testing.assert_allclose(np.asarray(g)[~kept], 0.0)


def test_no_key_or_no_rate_is_the_identity_and_keys_differ():
    x = jax.random.normal(jax.random.key(1), (8, 8))
    assert L.dropout(x, None, 0.5) is x and L.dropout(x, jax.random.key(0), 0.0) is x
    a, b = (L.dropout(x, jax.random.key(k), 0.5) for k in (1, 2))
    assert not np.array_equal(a, b)


def test_dropout_finite_differences_with_the_mask_fixed():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(2), (5, 7), jnp.float64)
        key = jax.random.key(9)
        check_grads_on_floats(lambda x: L.dropout(x, key, 0.4), (x,))
