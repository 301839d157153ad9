"""bpjax.testing: assertions for a user's own test suite, raising with the table."""

import jax
import jax.numpy as jnp
import pytest

from bpjax import layers as L
from bpjax.testing import assert_chain, assert_layer


def test_assert_layer_returns_the_table_of_a_correct_layer_and_raises_with_it_on_a_wrong_one():
    x = jax.random.normal(jax.random.key(0), (4, 6))
    assert assert_layer(L.MANUAL.tanh, x, argnames=["x"]).ok
    wrong = jax.custom_vjp(jnp.tanh)
    wrong.defvjp(lambda x: (jnp.tanh(x), x), lambda x, d: ((1 - jnp.tanh(x)) * d,))  # 1 - y for 1 - y**2
    with pytest.raises(AssertionError, match=r"(?s)backward fails its checks.*x .*FAIL"):
        assert_layer(wrong, x, argnames=["x"])


def test_assert_chain_names_the_first_wrong_step():
    def forward(tap, x):
        a = tap("a", jnp.sin(x))
        return tap("loss", (a**2).sum())

    with pytest.raises(AssertionError, match="the first wrong step is a"):
        assert_chain(forward, lambda v, x: {"d_loss": 1.0, "d_a": v["a"]}, jnp.arange(3.0))  # 2a, not a
    assert assert_chain(forward, lambda v, x: {"d_loss": jnp.ones(()), "d_a": 2 * v["a"]}, jnp.arange(3.0)).ok
