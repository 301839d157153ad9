"""The losses: the fused cross-entropy (exercise 2) and makemore's masked one, against jax.grad and
finite differences; log-softmax where a probability underflows float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bpjax import layers as L
from conftest import assert_layer_checks, check_grads_on_floats, layer_inputs, masked_inputs

DTYPES = [jnp.float32, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [2, 3, 32, 1000])
def test_cross_entropy_matches_jax_grad(n, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        for seed in range(2):
            args, names = layer_inputs("cross_entropy", n, dtype, jax.random.key(seed))
            assert_layer_checks(L.cross_entropy, L.cross_entropy_plain, args, names, key=jax.random.key(100 + seed))


def test_cross_entropy_finite_differences_float64():
    with jax.enable_x64(True):
        args, _ = layer_inputs("cross_entropy", 6, jnp.float64, jax.random.key(3))
        check_grads_on_floats(L.cross_entropy, args)


def test_cross_entropy_takes_rows_with_leading_axes():
    """[B, T, V] logits against [B, T] targets: the mean over every position, as [B·T, V] rows."""
    with jax.enable_x64(True):
        logits = jax.random.normal(jax.random.key(0), (3, 4, 7), jnp.float64)
        Y = jax.random.randint(jax.random.key(1), (3, 4), 0, 7)
        assert L.cross_entropy(logits, Y) == L.cross_entropy(logits.reshape(12, 7), Y.reshape(12))
        assert_layer_checks(L.cross_entropy, L.cross_entropy_plain, (logits, Y), ["logits", "Y"], f64_bound=1e-15)


def test_cross_entropy_is_log_softmax_where_a_probability_underflows():
    """A confident wrong guess: the picked probability is exp(-200), 0 in float32. ``log(probs)`` would
    make the loss inf; the fused loss is the log-softmax's, finite, and so are both gradients."""
    logits = jnp.array([[0.0, -200.0, 1.0], [2.0, 0.0, -1.0]], jnp.float32)
    Y = jnp.array([1, 0])
    assert float(jax.nn.softmax(logits)[0, 1]) == 0.0
    ref = -jax.nn.log_softmax(logits)[jnp.arange(2), Y].mean()
    loss = L.cross_entropy(logits, Y)
    assert np.isfinite(loss) and loss == pytest.approx(float(ref), rel=1e-6) and loss > 100
    for f in (L.cross_entropy, L.cross_entropy_plain):
        assert np.isfinite(jax.grad(f)(logits, Y)).all()
    assert_layer_checks(L.cross_entropy, L.cross_entropy_plain, (logits, Y), ["logits", "Y"])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(5, 1), (3, 7), (32, 16), (11,)])
def test_masked_cross_entropy_matches_jax_grad(dtype, shape):
    with jax.enable_x64(dtype == jnp.float64):
        logits, Y = masked_inputs(shape, 27, dtype, seed=sum(shape))
        assert_layer_checks(
            L.cross_entropy_masked, L.cross_entropy_masked_plain, (logits, Y), ["logits", "Y"], f64_bound=1e-12
        )
        if dtype == jnp.float64:
            check_grads(lambda lg: L.cross_entropy_masked(lg, Y), (logits,), order=1, modes=["rev"])


def test_masked_targets_get_exactly_zero_gradient_and_do_not_count():
    logits, Y = masked_inputs((6, 5), 9, jnp.float32, seed=3, all_masked_rows=(0, 4))
    g = jax.grad(L.cross_entropy_masked)(logits, Y)
    assert (g[Y < 0] == 0).all() and (g[0] == 0).all() and (g[4] == 0).all()
    valid = Y >= 0
    ref = -jax.nn.log_softmax(logits)[valid, Y[valid]].mean()  # the mean over real targets only
    np.testing.assert_allclose(L.cross_entropy_masked(logits, Y), ref, rtol=1e-6)
    none = -jnp.ones((6, 5), jnp.int32)  # no target at all: loss 0 and gradient 0, not NaN
    assert L.cross_entropy_masked(logits, none) == 0 and (jax.grad(L.cross_entropy_masked)(logits, none) == 0).all()
