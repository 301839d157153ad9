"""makemore's bigram: a table lookup, at zero the uniform guess, its backward the embedding's scatter-add."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from bpjax import layers as L
from bpjax import models
from conftest import masked_inputs


def test_the_table_starts_at_zero_and_the_first_loss_is_the_uniform_guess():
    m = models.get("bigram")
    params, state = m.init(jax.random.key(0), vocab_size=27, block_size=7)
    X, Y = (
        jnp.maximum(masked_inputs((8, 7), 27, jnp.float32, seed=1)[1], 0),
        masked_inputs((8, 7), 27, jnp.float32, seed=2)[1],
    )
    assert not params["logits"].any()
    np.testing.assert_allclose(m.loss(params, state, X, Y)[0], math.log(27), rtol=1e-6)


def test_the_forward_is_row_x_of_the_table():
    m = models.get("bigram")
    table = jax.random.normal(jax.random.key(3), (27, 27))
    X = jax.random.randint(jax.random.key(4), (3, 5), 0, 27)
    logits, _ = m.forward(L.MANUAL, {"logits": table}, {}, X, lambda n, v: v)
    np.testing.assert_array_equal(logits, table[X])
