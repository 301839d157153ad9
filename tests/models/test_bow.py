"""makemore's bag of words: time-major inside, makemore.py's forward outside (numpy, on the state dict)."""

import jax
import jax.numpy as jnp
import numpy as np

from bpjax import Config, models
from bpjax import layers as L
from conftest import assert_runs_makemores_forward, np_linear


def np_bow_logits(sd, X):
    """makemore.py's BoW.forward, in numpy, on its own state-dict keys."""
    T = X.shape[1]
    x = sd["wte.weight"][X] + sd["wpe.weight"][:T]
    A = np.tril(np.ones((T, T)))
    x = x + (A / A.sum(1, keepdims=True)) @ x
    x = x + np_linear(sd, np.tanh(np_linear(sd, x, "context_block.mlp.c_fc")), "context_block.mlp.c_proj")
    return np_linear(sd, x, "lm_head")


def test_the_forward_is_makemores():
    assert_runs_makemores_forward("bow", np_bow_logits)


def test_the_forward_is_time_major_and_eval_is_batch_first():
    m = models.get("bow")
    params, state = m.init(jax.random.key(0), vocab_size=27, **Config("bow").with_data({"block_size": 6}).sizes)
    X = jax.random.randint(jax.random.key(1), (4, 6), 0, 27)
    logits, _ = m.forward(L.PLAIN, params, state, X, lambda n, v: v)
    assert m.time_major and logits.shape == (6, 4, 27)
    np.testing.assert_array_equal(m.logits_eval(params, state, X), jnp.swapaxes(logits, 0, 1))
