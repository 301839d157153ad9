"""makemore's MLP (Bengio 2003): its context ids, and the packed positions its training loss runs on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax import models
from bpjax.models import bengio


def test_bengio_context_is_the_previous_characters_with_a_blank():
    """ids[b, t, k] is X[b, t - k], the blank before the start: makemore's k rolls, by hand."""
    X = np.array([[0, 5, 1, 13], [0, 2, 2, 3]])
    ids = np.asarray(bengio.context_ids(jnp.asarray(X), blank=27))
    for b in range(2):
        for t in range(4):
            for k in range(4):
                assert ids[b, t, k] == (X[b, t - k] if t - k >= 0 else 27)


def _bengio_batch(dtype, n_words=6, T=7, seed=3):
    """Words of random lengths 1..T/2 in makemore's layout (X from 0, Y then 0, then -1): as with
    names.txt, fewer than half the positions have a target."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    lengths = jax.random.randint(k1, (n_words, 1), 1, T // 2 + 1)
    chars = jax.random.randint(k2, (n_words, T), 1, 27)
    t = jnp.arange(T)[None, :]
    Y = jnp.where(t < lengths, chars, jnp.where(t == lengths, 0, -1))
    X = jnp.concatenate([jnp.zeros((n_words, 1), Y.dtype), jnp.maximum(Y[:, :-1], 0)], 1)
    params, _ = bengio.init(jax.random.key(seed + 1), vocab_size=27, n_embd=5, n_embd2=6, block_size=T, dtype=dtype)
    return params, X, Y


@pytest.mark.parametrize("head", [None, 8], ids=["half", "overflow"])
def test_bengio_packed_rows_are_the_whole_padded_batch(head):
    """The training loss runs the MLP on the positions with a target only (the first ``head`` packed
    rows when they fit, every row otherwise): its value and gradient, from the plain layers and from
    the hand-written ones, are the whole padded batch's. (Which branch runs, and the boundary
    ``n = head``: the next test.)"""
    with jax.enable_x64(True):
        params, X, Y = _bengio_batch(jnp.float64)
        n = int((Y >= 0).sum())
        assert 8 < n <= bengio.head_rows(Y.size) == 24  # 6 words x 7 = 42 positions
        none = jnp.full_like(Y, -1)  # no target at all: loss 0, no gradient
        whole = jax.jit(jax.value_and_grad(lambda p, Y: bengio.MODEL.loss(p, {}, X, Y)[0]))  # every position
        ref, g_ref = whole(params, Y)
        for ly in (L.PLAIN, L.MANUAL):
            packed = jax.jit(jax.value_and_grad(lambda p, Y, ly=ly: bengio.packed_loss(ly, head)(p, {}, X, Y)[0]))
            got, g = packed(params, Y)
            np.testing.assert_allclose(got, ref, rtol=1e-13)
            for k in params:
                np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-12, atol=1e-14, err_msg=k)
            loss0, g0 = packed(params, none)
            assert loss0 == 0 and all(not jnp.any(v) for v in g0.values())


@pytest.mark.parametrize("n, head, rows_used", [(3, 4, 4), (4, 4, 4), (5, 4, 6), (2, 6, 6)])
def test_packed_rows_loss_takes_the_head_only_when_the_real_rows_fit(n, head, rows_used):
    """A rows loss that sees every row it is given tells which branch ran: the first ``head`` rows
    when ``n <= head``, all six otherwise; its gradient is the same branch's, scaled by the cotangent."""

    def rows_loss(w, rows, Y):  # counts the rows, padded ones too
        return w * rows.shape[0] + 0 * Y.sum()

    rows, Y = jnp.zeros((6, 1)), jnp.where(jnp.arange(6) < n, 1, -1)

    def f(w):
        return bengio.packed_rows_loss(rows_loss, w, rows, Y, jnp.int32(n), head)

    assert f(1.0) == rows_used and jax.jit(f)(1.0) == rows_used
    assert jax.grad(lambda w: 3 * f(w))(1.0) == 3 * rows_used
    under_vmap = jax.vmap(lambda w, n: bengio.packed_rows_loss(rows_loss, w, rows, Y, n, head))
    both = under_vmap(jnp.ones(2), jnp.array([min(n, head), n], jnp.int32))  # one model overflowing: all rows
    assert both.tolist() == [rows_used, rows_used]


def test_bengio_packed_rows_under_vmap():
    """Stacked models, with their own batches (a sweep) or one shared batch, keep one cond (its
    predicate: every model's rows fit) and each model's own value and gradient."""
    with jax.enable_x64(True):
        p0, X0, Y0 = _bengio_batch(jnp.float64, seed=3)
        p1, X1, Y1 = _bengio_batch(jnp.float64, seed=7)
        P = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), p0, p1)
        Xs, Ys = jnp.stack([X0, X1]), jnp.stack([Y0, Y1])
        vg = jax.value_and_grad(lambda p, X, Y: bengio.MODEL.loss_manual(p, {}, X, Y)[0])
        whole = jax.value_and_grad(lambda p, X, Y: bengio.MODEL.loss(p, {}, X, Y)[0])
        for in_axes, X, Y in (((0, 0, 0), Xs, Ys), ((0, None, None), X0, Y0)):
            f = jax.vmap(vg, in_axes=in_axes)
            jaxpr = str(jax.make_jaxpr(f)(P, X, Y))
            assert jaxpr.count("cond[") == 1 and "select_n" not in jaxpr.split("cond[")[1][:200]
            loss, g = jax.jit(f)(P, X, Y)
            for i, p in enumerate((p0, p1)):
                Xi, Yi = (X[i], Y[i]) if in_axes[1] == 0 else (X, Y)
                ref, g_ref = whole(p, Xi, Yi)
                np.testing.assert_allclose(loss[i], ref, rtol=1e-13)
                for k in p:
                    np.testing.assert_allclose(g[k][i], g_ref[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_bengio_autodiff_differentiates_the_packed_loss_and_checks_against_every_position():
    """``--grad autodiff`` gets the packing too (manual against autodiff times the backward alone);
    the oracle, ``loss``, runs every position, so the checks compare against an unpacked forward."""
    from bpjax.training.step import gradient_fn

    params, X, Y = _bengio_batch(jnp.float32)

    def conds(f):
        return str(jax.make_jaxpr(f)(params, {}, X, Y)).count("cond[")

    assert conds(gradient_fn("bengio", "autodiff")) == conds(gradient_fn("bengio", "manual")) == 1
    assert conds(jax.value_and_grad(lambda *a: models.get("bengio").loss(*a)[0])) == 0
    # and jax.grad of the oracle still composes with forward mode (a Hessian-vector product)
    with jax.enable_x64(True):
        params, X, Y = _bengio_batch(jnp.float64)
        g = lambda p: jax.grad(lambda p: bengio.MODEL.loss(p, {}, X, Y)[0])(p)
        _, hvp = jax.jvp(g, (params,), (jax.tree_util.tree_map(jnp.ones_like, params),))
        assert all(jnp.isfinite(v).all() for v in hvp.values())
