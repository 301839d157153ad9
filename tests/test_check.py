import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.check import check_vjp, compare, compare_arrays


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


def test_missing_name_is_an_error():
    with pytest.raises(KeyError):
        compare({"a": np.ones(2)}, {"b": np.ones(2)})


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
