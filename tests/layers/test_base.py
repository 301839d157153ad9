"""with_backward and the open layer set: one set holds every layer, plain and hand-written, and takes yours."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.layers import Layers, with_backward


def _square_plain(x):
    """x squared."""
    return x * x


def _square_fwd(x):
    return x * x, x


def _square_bwd(x, d_y):
    return (2 * x * d_y,)


square = with_backward(_square_plain, _square_fwd, _square_bwd)


def test_with_backward_wraps_the_plain_forward_itself():
    assert square.fun is _square_plain and square.__name__ == "_square" and square.__doc__ == "x squared."
    x = jnp.arange(3.0)
    np.testing.assert_array_equal(jax.grad(lambda x: square(x).sum())(x), 2 * x)


def test_every_shipped_layer_is_its_plain_twin_with_a_backward():
    """By construction: the plain set gives the custom_vjp's primal function itself."""
    assert len(L.MANUAL) >= 15 and list(L.MANUAL) == list(L.PLAIN)
    for name in L.MANUAL:
        manual, plain = getattr(L.MANUAL, name), getattr(L.PLAIN, name)
        if name == "batchnorm_eval":  # eval mode only: the same function in both
            assert manual is plain is L.batchnorm_eval
            continue
        assert L.is_hand_written(manual) and manual.fun is plain, name
        assert manual.__name__ == plain.__name__.removesuffix("_plain") == name and manual.__doc__


def test_a_layer_of_your_own_joins_both_sets():
    mine = L.MANUAL.extend(square=square)
    assert mine.square is square and mine.plain.square is _square_plain and mine.linear is L.linear
    assert "square" not in L.MANUAL and "square" in mine  # bpjax's set is left as it is
    assert mine.manual and not mine.plain.manual and mine.plain.hand.square is square
    with pytest.raises(TypeError, match="not a jax.custom_vjp: make it with bpjax.layers.with_backward"):
        L.MANUAL.extend(square=_square_plain)


def test_a_missing_layer_says_what_the_set_has_and_how_to_add_one():
    with pytest.raises(AttributeError, match=r"no layer 'rmsnorm' \(it has cross_entropy, .*\.extend\(rmsnorm="):
        L.MANUAL.rmsnorm  # noqa: B018
    with pytest.raises(AttributeError, match="immutable"):
        L.MANUAL.linear = None


def test_eval_mode_is_the_plain_layers_with_training_off():
    assert L.PLAIN.training and L.MANUAL.training and not L.EVAL.training and not L.EVAL.manual
    assert L.EVAL.tanh is L.tanh_plain and L.MANUAL.eval().linear is L.linear_plain


def test_replace_stores_anything_a_test_plants():
    planted = L.MANUAL.replace(tanh=jnp.sin)
    assert planted.tanh is jnp.sin and planted.plain.tanh is jnp.sin and planted.linear is L.linear


def test_a_recording_set_sees_every_call_and_returns_its_value():
    seen = []

    def call(name, f, layer, args):
        seen.append((name, layer))
        return f(*args)

    ly = L.PLAIN.recording(call)
    x = jnp.ones((2, 3))
    np.testing.assert_array_equal(ly.tanh(ly.linear(x, jnp.eye(3))), jnp.tanh(x))
    assert seen == [("linear", L.linear), ("tanh", L.tanh)] and isinstance(ly, Layers)


def test_a_key_stream_per_forward_and_none_in_eval_mode():
    key = jax.random.key(4)
    ly = L.MANUAL.with_key(key, 0.1)
    assert ly.rate == 0.1 and L.MANUAL.rate == 0.0
    got = [jax.random.key_data(ly.key()) for _ in range(3)]
    want = [jax.random.key_data(jax.random.fold_in(key, i)) for i in range(3)]
    assert all((a == b).all() for a, b in zip(got, want, strict=True))
    assert ly.eval().key() is None and L.MANUAL.key() is None and L.MANUAL.with_key(None, 0.5).rate == 0.0
    fresh = L.MANUAL.with_key(key, 0.1)  # each forward's set starts its stream again
    assert (jax.random.key_data(fresh.key()) == want[0]).all()


def test_a_compute_dtype_applies_to_the_matrix_products_only():
    bf = L.MANUAL.computing_in("bfloat16")
    assert bf.plain.dtype == jnp.bfloat16 and bf.eval().dtype == jnp.bfloat16 and L.MANUAL.dtype is None
    x, W = jnp.ones((4, 3)), jnp.ones((3, 2))
    assert "bf16[4,2]" in str(jax.make_jaxpr(bf.linear)(x, W)) and bf.linear(x, W).dtype == jnp.float32
    assert bf.tanh is L.MANUAL.tanh and bf.layernorm is L.MANUAL.layernorm  # norms and activations as given
    assert L.MATMUL_LAYERS == {"linear", "attention", "tied_head", "context_linear"}
