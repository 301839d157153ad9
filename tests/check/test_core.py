"""The oracle's comparisons: the pass rule, tables, check_vjp, taps, and the planted bugs they catch."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.check import Table, Tap, check_vjp, compare, compare_arrays, layer_rows_table, tap_grads, tree_names
from conftest import layer_inputs


def test_shape_mismatch_fails_even_when_broadcastable():
    r = compare_arrays("bngain", np.zeros(64, np.float32), np.zeros((1, 64), np.float32))
    assert not r.ok and r.oracle_shape == (1, 64)


def test_exact_approx_and_rule_float32():
    o = np.array([1.0, -2.0, 0.5], np.float32)
    assert compare_arrays("x", o.copy(), o).exact
    near = o + np.float32(1e-6)  # 1e-6 <= 1e-4 * 2 + 1e-7
    r = compare_arrays("x", near, o)
    assert r.ok and not r.exact and r.approx
    far = o + np.float32(1e-3)  # 1e-3 > 2.001e-4
    assert not compare_arrays("x", far, o).ok


def test_rule_float64_and_ulp():
    o = np.array([1.0, 2.0])
    r = compare_arrays("x", o + 1e-11, o)  # 1e-11 <= 1e-10 * 2 + 1e-12
    assert r.ok and r.ulp == pytest.approx(1e-11 / np.spacing(2.0), rel=1e-3)
    assert not compare_arrays("x", o + 1e-9, o).ok


def test_nan_fails():
    o = np.ones(3, np.float32)
    assert not compare_arrays("x", np.array([1, np.nan, 1], np.float32), o).ok


@pytest.mark.parametrize(
    "manual, oracle",
    [
        ({"a": np.ones(2)}, {"b": np.ones(2)}),
        ({"a": np.ones(2)}, {"a": np.ones(2), "b": np.ones(2)}),  # a name only the oracle has
        ({"a": np.ones(2), "b": np.ones(2)}, {"a": np.ones(2)}),  # a name only the manual side has
    ],
)
def test_a_name_missing_on_either_side_is_an_error(manual, oracle):
    with pytest.raises(KeyError):
        compare(manual, oracle)


def test_named_comparison_needs_every_name_on_both_sides():
    with pytest.raises(KeyError):
        compare({"a": np.ones(2)}, {"a": np.ones(2)}, names=["a", "b"])


def test_an_empty_table_is_not_ok():
    assert not Table("nothing", []).ok
    assert not compare({}, {}).ok
    assert "0/0 ok" in str(Table("nothing", []))


def test_check_vjp_without_a_float_argument_is_an_error():
    ids = jnp.arange(6).reshape(2, 3)
    with pytest.raises(ValueError, match="floating-point"):
        check_vjp(lambda X: X * 2, lambda X: X * 2, (ids,))


def test_json_rows_and_repr():
    o = {"W1": np.ones((2, 3), np.float32)}
    t = compare(o, o, table="model")
    (row,) = t.to_json()
    assert set(row) == {"table", "name", "shape", "exact", "approx", "maxdiff", "ulp", "ok"}
    assert row["name"] == "W1" and row["table"] == "model" and row["shape"] == [2, 3]
    json.dumps(t.to_json())
    assert "<table>" in t._repr_html_() and "W1" in str(t)


def test_check_vjp_user_layer():
    x = jax.random.normal(jax.random.key(0), (5, 4))
    t = check_vjp(L.tanh, jnp.tanh, (x,), argnames=["x"])
    assert t.ok and t.rows[0].name == "x"

    @jax.custom_vjp
    def wrong_tanh(x):
        return jnp.tanh(x)

    wrong_tanh.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: ((1 - x**2) * g,))  # uses x, not h
    assert not check_vjp(wrong_tanh, jnp.tanh, (x,), argnames=["x"]).ok


def test_taps_give_the_gradient_at_each_intermediate():
    """d loss / d pre through a zero tap is (1 - h^2) * d loss / d h: checked by hand, in float64
    (1 - h^2 cancels where |h| is near 1, so float32 would test the rounding, not the taps)."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
        W = jax.random.normal(jax.random.key(2), (3, 2), jnp.float64)

        def f(tap, W):
            h = tap("h", jnp.tanh(tap("pre", x @ W)))
            return (h**2).sum()

        loss, values, d, (d_W,) = tap_grads(f, W)
        h = jnp.tanh(x @ W)
        np.testing.assert_allclose(values["h"], h, rtol=1e-14)
        np.testing.assert_allclose(d["h"], 2 * h, rtol=1e-14)
        np.testing.assert_allclose(d["pre"], (1 - h**2) * 2 * h, rtol=1e-12)
        np.testing.assert_allclose(d_W, x.T @ d["pre"], rtol=1e-12)
        assert loss == (h**2).sum()
    assert Tap({"h": 1.0})("h", jnp.zeros(2)).tolist() == [1.0, 1.0]


def test_tree_names():
    tree = {"C": 1, "stages": [{"W": 2, "b": 3}], "out": (4,)}
    assert tree_names(tree) == {"C": 1, "out/0": 4, "stages/0/W": 2, "stages/0/b": 3}


def test_every_check_traces_its_matrix_products_at_highest_precision():
    """At JAX's default a GPU computes float32 products in TF32: the checks ask for float32 (on an
    H100 the deep model's float32 check failed 9 rows without it). The precision is read when a
    function is traced, so each entry point is asked what it traced its functions under."""
    import dataclasses

    from bpjax import check
    from bpjax.models import get

    seen = []

    def recording(label, f):
        def g(*a):
            seen.append((label, jax.config.jax_default_matmul_precision))
            return f(*a)

        return g

    x = jnp.ones((3, 3))
    check_vjp(recording("check_vjp", lambda x: jnp.tanh(x @ x)), lambda x: jnp.tanh(x @ x), (x,))
    tap_grads(recording("tap_grads", lambda tap, x: jnp.sum(tap("h", x @ x))), x)
    check.model_table(recording("model_table", lambda p: jnp.sum(p @ p)), lambda p: jnp.sum(p @ p), x)
    mlp = get("mlp")
    params, state = mlp.init(jax.random.key(0), vocab_size=27, **mlp.sizes)
    X, Y = jax.random.randint(jax.random.key(1), (32, 3), 0, 27), jax.random.randint(jax.random.key(2), (32,), 0, 27)
    bare = dataclasses.replace(mlp, check_tables=None, loss_manual=recording("Model.tables", mlp.loss_manual))
    assert all(t.ok for t in bare.tables(params, state, X, Y))
    # a model's own tables (mlp's jit its atomic chain outside the functions above)
    own = dataclasses.replace(mlp, check_tables=recording("check_tables", lambda *a: [jnp.ones(2) @ jnp.ones(2)]))
    assert own.tables(params, state, X, Y)
    assert {label for label, _ in seen} == {"check_vjp", "tap_grads", "model_table", "Model.tables", "check_tables"}
    assert {precision for _, precision in seen} == {check.PRECISION} == {"highest"}
    assert jax.config.jax_default_matmul_precision is None  # and nothing leaks out of a check


# --- the pass rule catches planted bugs -----------------------------------------------------
@jax.custom_vjp
def _bn_missing_bessel(x, g, b):
    return L.batchnorm_plain(x, g, b)


def _bad_bwd(res, d):
    bn_raw, bn_var_inv, g, b = res
    n = bn_raw.shape[0]
    dx = g * bn_var_inv / n * (n * d - d.sum(0, keepdims=True) - bn_raw * (d * bn_raw).sum(0, keepdims=True))
    return dx, (bn_raw * d).sum(0, keepdims=True), d.sum(0, keepdims=True)


_bn_missing_bessel.defvjp(L.batchnorm.fwd, _bad_bwd)  # the real layer's residuals, an n for n - 1


@jax.custom_vjp
def _embedding_set_not_add(C, X):
    return C[X]


_embedding_set_not_add.defvjp(
    lambda C, X: (C[X], (C, X)),
    lambda r, d: (jnp.zeros_like(r[0]).at[r[1].reshape(-1)].set(d.reshape(-1, r[0].shape[1])), None),
)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_pass_rule_fails_planted_bugs(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        args, names = layer_inputs("batchnorm", 32, dtype, jax.random.key(0), hidden=64)
        t = check_vjp(_bn_missing_bessel, L.batchnorm_plain, args, argnames=names)
        assert not t["h_pre_bn"].ok
        args, names = layer_inputs("embedding", 32, dtype, jax.random.key(0))
        t = check_vjp(_embedding_set_not_add, L.embedding_plain, args, argnames=names)
        assert not t["C"].ok


def test_layer_rows_table_holds_static_arguments_fixed_and_finds_the_plain_twin():
    """Rows of (layer, args, names, cotangent): ``None`` and a factor stay as they are; the plain twin
    is ``layer.fun``; a row per floating-point argument."""
    x = jax.random.normal(jax.random.key(0), (2, 4, 3))
    W = jax.random.normal(jax.random.key(1), (3, 5))
    rows = [
        (L.linear, [x, W, None], ["x", "W", "b"], jnp.ones((2, 4, 5))),
        (L.flatten_consecutive, [x, 2], ["x", "n"], jnp.ones((2, 2, 6))),
    ]
    t = layer_rows_table("two layers", rows)
    assert [r.name for r in t] == ["x", "W", "x"] and t.ok
    broken = _embedding_set_not_add  # a custom_vjp whose twin is C[X]: the table fails its row
    C = jax.random.normal(jax.random.key(2), (4, 2))
    X = jnp.array([[1, 1], [0, 1]])
    t = layer_rows_table("planted", [(broken, [C, X], ["C", "X"], jnp.ones((2, 2, 2)))])
    assert [r.name for r in t] == ["C"] and not t.ok


def test_the_bfloat16_rule_passes_rounding_and_fails_a_five_percent_error():
    """``--compute-dtype bfloat16``: the GPT's hand-written gradients against jax.grad of the same
    bfloat16 forward pass the bfloat16 rule (2**-5 of the row's max); a backward whose weight
    gradient is 5% off fails it; bfloat16's gradients against float32's pass it, not the float32 rule."""
    from bpjax import models

    gpt = models.get("gpt")
    sizes = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0, "bias": True}
    params, state = gpt.init(jax.random.key(0), vocab_size=13, **sizes)
    ids = jax.random.randint(jax.random.key(1), (4, 9), 0, 13)
    X, Y = ids[:, :8], ids[:, 1:]
    bf = gpt.computing_in("bfloat16")
    assert bf is gpt.computing_in("bfloat16") and gpt.computing_in("float32") is gpt
    layers, whole = bf.tables(params, state, X, Y)
    assert layers.ok and whole.ok and whole.dtype == "bfloat16", whole
    g32 = tree_names(jax.grad(lambda p: gpt.loss(p, state, X, Y)[0])(params))
    g16 = tree_names(jax.grad(lambda p: bf.loss(p, state, X, Y)[0])(params))
    assert compare(g16, g32, rule="bfloat16").ok and not compare(g16, g32).ok  # bfloat16 is not float32

    def off_bwd(res, d):  # the weight's gradient 5% too large
        d_x, d_W, d_b = L.linear.bwd(res, d)
        return d_x, 1.05 * d_W, d_b

    import dataclasses

    derived = dict.fromkeys(("loss", "loss_manual", "logits_eval", "loss_autodiff", "loss_tapped"))
    off = L.with_backward(L.linear_plain, L.linear.fwd, off_bwd)
    planted = dataclasses.replace(gpt, name="gpt_off", layers=gpt.layers.extend(linear=off), **derived)
    bad = planted.computing_in("bfloat16").tables(params, state, X, Y)[1]
    assert not bad.ok and {r.name for r in bad if not r.ok} >= {"blocks/0/W_fc", "blocks/0/W_mp"}
