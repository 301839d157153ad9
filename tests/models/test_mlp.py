"""The notebook's MLP: its init, the two losses, exercise 1's atomic chain, eval mode, the tables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bpjax.check import compare
from bpjax.errors import ConfigError
from bpjax.models import mlp
from conftest import batch


def test_init_shapes_and_count():
    p = mlp.init_params(jax.random.key(0))
    shapes = {k: v.shape for k, v in p.items()}
    assert shapes == {
        "C": (27, 10),
        "W1": (30, 64),
        "b1": (64,),
        "W2": (64, 27),
        "b2": (27,),
        "bngain": (1, 64),
        "bnbias": (1, 64),
    }
    assert mlp.n_params(p) == 4137
    np.testing.assert_allclose(p["bngain"], 1.1, rtol=1e-7)
    np.testing.assert_allclose(p["bnbias"], 0.1, rtol=1e-7)
    assert mlp.n_params(mlp.init_params(jax.random.key(0), n_hidden=200)) == 12297


# Two rows in float32 are left to test_layers (batch norm alone, on conditioned input): in the
# whole model either h_pre_bn's true gradient is O(eps/var) (pure cancellation at the init's scale)
# or, with var ~ eps, b1's zero gradient is rounding noise of a d_h_pre_bn ~ 1/sqrt(eps), above the
# absolute 1e-7 of the rule. Float64 checks two rows here.
CASES = [
    (2, 5, 7, True),
    *[(n, h, v, x64) for n, h, v in [(3, 64, 27), (32, 64, 27), (1000, 33, 40)] for x64 in (False, True)],
]


@pytest.mark.parametrize("n, hidden, vocab, x64", CASES)
def test_loss_manual_equals_loss_and_grads_match(n, hidden, vocab, x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        p = mlp.init_params(jax.random.key(n), vocab_size=vocab, n_hidden=hidden, dtype=dtype)
        X, Y = batch(jax.random.key(1), n, vocab=vocab)
        assert mlp.loss_manual(p, X, Y) == mlp.loss(p, X, Y)  # the same forward, bit for bit
        g_man = jax.jit(jax.grad(mlp.loss_manual))(p, X, Y)
        g_ref = jax.jit(jax.grad(mlp.loss))(p, X, Y)
        t = compare(g_man, g_ref, mlp.PARAM_KEYS)
        assert t.ok, str(t)


@pytest.mark.parametrize("x64", [False, True], ids=["f32", "f64"])
@pytest.mark.parametrize("n", [3, 32, 257])
def test_atomic_chain_matches_oracle(x64, n):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        p = mlp.init_params(jax.random.key(7), n_hidden=17, dtype=dtype)
        X, Y = batch(jax.random.key(8), n)
        manual = jax.jit(mlp.atomic_grads)(p, X, Y)
        oracle = jax.jit(mlp.atomic_oracle)(p, X, Y)
        assert set(manual) == set(oracle) == set(mlp.ATOMIC_NAMES)
        v = mlp.forward_chunked(p, X, Y)
        for k in mlp.ATOMIC_NAMES:  # every gradient has its tensor's shape (keepdims kept)
            assert manual[k].shape == (p[k] if k in p else v[k]).shape, k
        t = compare(manual, oracle, mlp.ATOMIC_NAMES)
        assert t.ok, str(t)


def test_finite_differences_of_loss_manual():
    with jax.enable_x64(True):
        p = mlp.init_params(jax.random.key(2), n_hidden=9, dtype=jnp.float64)
        X, Y = batch(jax.random.key(3), 6)
        check_grads(lambda p: mlp.loss_manual(p, X, Y), (p,), order=1, modes=["rev"])


def test_vmap_over_models_and_jit():
    keys = jax.random.split(jax.random.key(0), 4)
    ps = jax.vmap(lambda k: mlp.init_params(k, n_hidden=16))(keys)
    X, Y = batch(jax.random.key(9), 32)
    g_v = jax.jit(jax.vmap(jax.grad(mlp.loss_manual), in_axes=(0, None, None)))(ps, X, Y)
    for i in range(4):
        p_i = jax.tree_util.tree_map(lambda a, i=i: a[i], ps)
        g_i = jax.grad(mlp.loss)(p_i, X, Y)
        t = compare({k: g_v[k][i] for k in g_i}, g_i)
        assert t.ok, str(t)


def test_grad_of_grad_through_manual_layers():
    """Second order: the backward rules are differentiable jnp code too."""
    with jax.enable_x64(True):
        p = mlp.init_params(jax.random.key(4), n_hidden=8, dtype=jnp.float64)
        X, Y = batch(jax.random.key(5), 10)
        v = jax.tree_util.tree_map(jnp.ones_like, p)
        hvp = lambda f: jax.jvp(lambda q: jax.grad(f)(q, X, Y), (p,), (v,))[1]
        t = compare(hvp(mlp.loss_manual), hvp(mlp.loss))
        assert t.ok, str(t)


def test_batch_of_one_is_a_clear_error():
    p = mlp.init_params(jax.random.key(0))
    X, Y = batch(jax.random.key(1), 1)
    with pytest.raises(ConfigError, match="at least 2 rows"):
        jax.grad(mlp.loss_manual)(p, X, Y)


def _atomic_check(atomic_grads_fn, p, X, Y) -> bool:
    """The check the notebook's cmp lines make: hand-written gradients against jax.grad, same batch."""
    manual = atomic_grads_fn(p, X, Y)
    return compare({k: manual[k] for k in mlp.PARAM_KEYS}, jax.grad(mlp.loss)(p, X, Y), mlp.PARAM_KEYS).ok


def test_atomic_check_passes_the_derivation_and_fails_wrong_ones():
    """A wrong atomic_grads must fail the check: zeros, another batch's gradients (the notebook's
    stale-tensor bug), or one term of a formula dropped."""
    p = mlp.init_params(jax.random.key(0))
    X1, Y1 = batch(jax.random.key(1), 32)
    X2, Y2 = batch(jax.random.key(2), 32)
    assert _atomic_check(mlp.atomic_grads, p, X2, Y2)
    zeros = lambda p, X, Y: jax.tree_util.tree_map(jnp.zeros_like, mlp.atomic_grads(p, X, Y))
    stale = lambda p, X, Y: mlp.atomic_grads(p, X1, Y1)  # gradients of an earlier batch
    oracle_of_stale = lambda p, X, Y: jax.grad(mlp.loss)(p, X1, Y1)

    def slightly_off(p, X, Y):  # d_W1 off by 1/n (3%): the size of an n vs n - 1 slip
        g = mlp.atomic_grads(p, X, Y)
        return {**g, "W1": g["W1"] * (1 + 1 / X.shape[0])}

    for wrong in (zeros, stale, oracle_of_stale, slightly_off):
        assert not _atomic_check(wrong, p, X2, Y2), wrong


def test_chunked_forward_equals_the_fused_forward_bit_for_bit():
    """forward_chunked (exercise 1's atoms) is a second copy of the forward on purpose: it must agree."""
    p = mlp.init_params(jax.random.key(3))
    X, Y = batch(jax.random.key(4), 32)
    v = mlp.forward_chunked(p, X, Y)
    assert v["loss"] == mlp.loss(p, X, Y)
    np.testing.assert_array_equal(v["h_pre_bn"], mlp.hidden_pre_bn(p, X))
    stats = {"bnmean": v["bn_mean_i"], "bnvar": v["bn_var"]}
    np.testing.assert_allclose(v["logits"], mlp.logits_eval(p, stats, X), rtol=1e-6, atol=1e-6)


def test_calibration_and_eval_mode():
    p = mlp.init_params(jax.random.key(0))
    X, Y = batch(jax.random.key(1), 500)
    stats = mlp.calibrate_bn(p, X, chunk=128)
    h = mlp.hidden_pre_bn(p, X)
    np.testing.assert_allclose(stats["bnmean"], h.mean(0, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["bnvar"], h.var(0, keepdims=True, ddof=1), rtol=1e-4)
    # eval mode with the batch's own statistics is training mode on that batch
    np.testing.assert_allclose(mlp.loss_eval(p, stats, X, Y), mlp.loss(p, X, Y), rtol=1e-5)


def test_gradient_tables_all_ok():
    p = mlp.init_params(jax.random.key(0))
    X, Y = batch(jax.random.key(1), 32)
    tables = mlp.gradient_tables(p, X, Y)
    assert [t.rows[0].table for t in tables] == ["atomic", "layers", "model"]
    assert len(tables[0]) == 26 and len(tables[1]) == 12 and len(tables[2]) == 7
    assert all(t.ok for t in tables), "\n".join(map(str, tables))


def test_the_atomic_chain_keeps_probs_log_where_the_fused_loss_is_log_softmax():
    """Exercise 1's chain takes ``probs.log()`` as the notebook writes it: at a wild init, where the
    right character's probability underflows float32, its loss is inf. The fused cross-entropy of
    ``loss`` and ``loss_manual`` is log-softmax: finite, the same value as PyTorch's F.cross_entropy
    (here, float64's), and their gradients finite."""
    p = mlp.init_params(jax.random.key(0))
    p = {**p, "W2": p["W2"] * 3000.0}  # logits spread over thousands: exp underflows
    X, Y = batch(jax.random.key(1), 32)
    v = mlp.forward_chunked(p, X, Y)
    assert jnp.isinf(v["loss"]) and (v["probs"][jnp.arange(32), Y] == 0).any()
    fused = mlp.loss(p, X, Y)
    assert jnp.isfinite(fused) and fused == mlp.loss_manual(p, X, Y)
    with jax.enable_x64(True):
        logits64 = jnp.asarray(v["logits"], jnp.float64)
        ref = -jax.nn.log_softmax(logits64)[jnp.arange(32), Y].mean()
    assert float(fused) == pytest.approx(float(ref), rel=1e-5) and float(fused) > 100
    for f in (mlp.loss, mlp.loss_manual):
        assert all(jnp.isfinite(g).all() for g in jax.grad(f)(p, X, Y).values())
