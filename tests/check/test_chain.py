"""check_chain: a hand-derived chain of intermediates' gradients, and its first wrong step."""

import jax
import jax.numpy as jnp
import pytest

from bpjax import check_chain
from bpjax.check import ChainTable

W = jax.random.normal(jax.random.key(0), (6, 5))
x = jax.random.normal(jax.random.key(1), (8, 6))


def forward(tap, W, x):  # four steps: a linear map, tanh, a square, the mean
    h = tap("h", x @ W)
    a = tap("a", jnp.tanh(h))
    s = tap("s", a**2)
    return tap("loss", s.mean())


def backward(v, W, x, bug_in=None):
    """The gradients in backward order: step 1 is d_loss, step 2 d_s, step 3 d_a, step 4 d_h."""
    d_loss = jnp.ones(())
    d_s = d_loss * jnp.ones_like(v["s"]) / v["s"].size
    d_a = 2 * v["a"] * d_s * (3.0 if bug_in == 3 else 1.0)  # step 3
    d_h = (1 - v["a"] ** 2) * d_a
    return {"d_loss": d_loss, "d_s": d_s, "d_a": d_a, "d_h": d_h}


def test_a_correct_chain_passes_in_backward_order():
    table = check_chain(forward, backward, W, x)
    assert isinstance(table, ChainTable) and table.ok and table.first_wrong is None
    assert [r.name for r in table] == ["loss", "s", "a", "h"]


def test_a_bug_in_step_3_is_named_the_first_wrong_step():
    table = check_chain(forward, lambda v, W, x: backward(v, W, x, bug_in=3), W, x)
    assert [r.ok for r in table] == [True, True, False, False]  # step 4 inherits it
    assert table.first_wrong == "a"
    assert "first wrong step: a" in str(table)


def test_a_name_the_forward_never_tapped_is_an_error():
    with pytest.raises(KeyError, match="tapped no 'z'"):
        check_chain(forward, lambda v, W, x: {"d_z": v["a"]}, W, x)


def test_the_notebooks_exercise_1_is_a_chain_table_that_names_its_first_wrong_step(monkeypatch):
    from bpjax.models import mlp
    from conftest import batch

    params = mlp.init_params(jax.random.key(0), vocab_size=27)
    X, Y = batch(jax.random.key(1), 32)
    table = mlp.atomic_table(params, X, Y)
    assert isinstance(table, ChainTable) and table.ok and table.first_wrong is None
    right = mlp.atomic_grads

    def wrong(params, X, Y):  # a factor of 2 planted in d_bn_var
        g = right(params, X, Y)
        return {**g, "bn_var": 2 * g["bn_var"]}

    monkeypatch.setattr(mlp, "atomic_grads", wrong)
    assert mlp.atomic_table(params, X, Y).first_wrong == "bn_var"


def test_integer_arguments_are_held_fixed_a_name_tapped_twice_and_an_empty_backward_are_errors():
    ids = jnp.array([0, 2, 1])

    def lookup(tap, C, ids):  # exercise 1's pattern: token ids beside the parameters
        e = tap("e", C[ids])
        return tap("loss", (e**2).sum())

    table = check_chain(lookup, lambda v, C, ids: {"d_loss": jnp.ones(()), "d_e": 2 * v["e"]}, W, ids)
    assert table.ok and [r.name for r in table] == ["loss", "e"]

    def twice(tap, W, x):
        h = tap("h", jnp.tanh(x @ W))
        h = tap("h", jnp.tanh(h))
        return h.sum()

    with pytest.raises(ValueError, match="taps 'h' twice"):
        check_chain(twice, lambda v, W, x: {"d_h": jnp.ones_like(v["h"])}, W, x)
    with pytest.raises(ValueError, match="returns a dict"):
        check_chain(forward, lambda v, W, x: {}, W, x)
