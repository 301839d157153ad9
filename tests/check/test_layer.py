"""check_layer: every bpjax layer passes with no twin given; each planted bug fails, named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import check_layer
from bpjax import layers as L
from bpjax.check import LayerTable


def normal(i, *shape):
    return jax.random.normal(jax.random.key(i), shape)


def ids(i, n, *shape):
    return jax.random.randint(jax.random.key(i), shape, 0, n)


B, T, C, V, H = 4, 5, 8, 7, 6
LAYERS = {  # a layer -> its arguments, named (random inputs; integer ids and static values held fixed)
    "cross_entropy": ((normal(0, B, V), ids(1, V, B)), ["logits", "Y"]),
    "cross_entropy_masked": ((normal(0, B, T, V), ids(1, V, B, T).at[:, -2:].set(-1)), ["logits", "Y"]),
    "linear": ((normal(0, B, C), normal(1, C, H), normal(2, H)), ["x", "W", "b"]),
    "embedding": ((normal(0, V, C), ids(1, V, B, 3)), ["C", "X"]),
    "flatten_consecutive": ((normal(0, B, 4, C), 2), ["x", "n"]),
    "context_linear": ((normal(0, V, 3), ids(1, V, B, 4), normal(2, 12, H), normal(3, H)), ["wte", "ids", "W", "b"]),
    "batchnorm": ((normal(0, 16, H), 1 + 0.1 * normal(1, 1, H), normal(2, 1, H)), ["h", "gain", "bias"]),
    "layernorm": ((normal(0, B, T, C), 1 + 0.1 * normal(1, C), normal(2, C)), ["x", "g", "b"]),
    "tanh": ((normal(0, B, C),), ["x"]),
    "gelu": ((normal(0, B, C),), ["x"]),
    "gelu_exact": ((3 * normal(0, B, C),), ["x"]),
    "dropout": ((normal(0, B, C), jax.random.key(7), 0.25), ["x", "key", "p"]),
    "add_positions": ((normal(0, B, T, C), normal(1, 9, C)), ["tok", "wpe"]),
    "tied_head": ((normal(0, B, T, C), normal(1, V, C)), ["x", "wte"]),
    "rnn": ((normal(0, B, T, C), normal(1, 1, H), 0.3 * normal(2, C + H, H), normal(3, H)), ["x", "start", "W", "b"]),
    "gru": (
        (
            normal(0, B, T, C),
            normal(1, 1, H),
            *(0.3 * normal(2 + i, C + H, H) if i % 2 == 0 else normal(2 + i, H) for i in range(6)),
        ),
        ["x", "start", "Wr", "br", "Wz", "bz", "Wn", "bn"],
    ),
    "attention": (
        (
            normal(0, 2, T, C),
            0.3 * normal(1, C, 3, 2, C // 2),
            normal(2, 3, 2, C // 2),
            0.3 * normal(3, C, C),
            normal(4, C),
            jax.random.key(5),
            0.2,
        ),
        ["x", "W_attn", "b_attn", "W_proj", "b_proj", "key", "p"],
    ),
    "causal_mean": ((normal(0, B, T, C), 1), ["x", "axis"]),
}


def test_every_hand_written_layer_has_inputs_here():
    hand_written = {n for n in L.MANUAL if L.is_hand_written(getattr(L.MANUAL, n))}
    assert hand_written == set(LAYERS)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_bpjax_layer_passes_in_float32_and_float64_against_both_oracles(name):
    args, names = LAYERS[name]
    table = check_layer(getattr(L.MANUAL, name), *args, argnames=names)
    assert isinstance(table, LayerTable) and table.ok, table
    floating = [hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating) for a in args]
    floats = [n for n, f in zip(names, floating, strict=True) if f]
    assert [r.name for r in table] == ["forward", *floats]
    for r in table.rows[1:]:
        assert [c.what for c in r.checks] == ["float32", "float64", "finite diff"]
        assert all(c.multiple < 1 for c in r.checks)


# ---- planted bugs: an RMSNorm written as a student would, each rule broken once -------------
def rms_plain(x, g):
    r = jnp.sqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-5)
    return x / r * g


def rms_fwd(x, g):
    r = jnp.sqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-5)
    return x / r * g, (x, g, r)


def rms_bwd(res, dy, *, power=1.0, factor=1.0, mean=True, stale=None, d_g_shape=True):
    x, g, r = res
    r = r**power
    xh = (x if stale is None else stale) / r
    dxh = dy * g
    inner = jnp.mean(dxh * xh, -1, keepdims=True) if mean else jnp.sum(dxh * xh, -1, keepdims=True)
    dx = (dxh - factor * xh * inner) / r
    d_g = (dy * xh).sum(0) if d_g_shape else dy * xh
    return dx, d_g


def rmsnorm(**bug):
    f = jax.custom_vjp(rms_plain)
    f.defvjp(bug.pop("fwd", rms_fwd), lambda res, dy: rms_bwd(res, dy, **bug))
    return f


X, G = normal(0, 6, 10), 1 + 0.1 * normal(1, 10)


def test_the_correct_rmsnorm_passes():
    assert check_layer(rmsnorm(), X, G, argnames=["x", "g"]).ok


@pytest.mark.parametrize(
    "bug, failing",
    [
        ({"factor": 0.0}, {"x"}),  # a dropped factor
        ({"mean": False}, {"x"}),  # a sum for a mean
        ({"stale": normal(9, 6, 10)}, {"x", "g"}),  # a stale tensor: another batch's x
    ],
)
def test_a_planted_bug_fails_its_argument_in_both_dtypes_and_against_finite_differences(bug, failing):
    table = check_layer(rmsnorm(**bug), X, G, argnames=["x", "g"])
    assert not table.ok and {r.name for r in table if not r.ok} == failing
    for name in failing:
        assert not any(c.ok for c in table[name].checks), table
    assert table["forward"].ok


def test_a_slip_float32_cannot_see_fails_in_float64():
    """``r ** 1.0001``: inside float32's rule (the issue's 406 ulps, "ok"), far outside float64's."""
    table = check_layer(rmsnorm(power=1.0001), X, G, argnames=["x", "g"])
    by = {c.what: c for c in table["x"].checks}
    assert by["float32"].ok and not by["float64"].ok and not by["finite diff"].ok
    assert not table.ok and "first failing: x, float64" in str(table)


def test_a_forward_rule_that_differs_from_the_primal_fails_the_forward_row():
    def fwd(x, g):
        out, res = rms_fwd(x, g)
        return out * 1.001, res

    table = check_layer(rmsnorm(fwd=fwd), X, G, argnames=["x", "g"])
    assert not table["forward"].ok and table["x"].ok and not table.ok


def test_a_cotangent_of_the_wrong_shape_is_a_row_naming_the_argument_and_both_shapes():
    table = check_layer(rmsnorm(d_g_shape=False), X, G, argnames=["x", "g"])
    assert not table["g"].ok and table["x"].ok
    assert table["g"].problem == "bwd's cotangent for g is float32[6, 10], the argument float32[10]"
    assert "Traceback" not in str(table)


def test_the_wrong_number_of_cotangents_is_one_failing_row():
    f = jax.custom_vjp(rms_plain)
    f.defvjp(rms_fwd, lambda res, dy: (dy,))
    table = check_layer(f, X, G, argnames=["x", "g"])
    assert not table.ok and table["bwd"].problem == "bwd returned 1 cotangents for the 2 arguments (x, g)"


def test_integer_and_static_arguments_are_held_fixed_and_a_plain_function_is_refused():
    table = check_layer(L.MANUAL.embedding, normal(0, V, C), ids(1, V, B), argnames=["C", "X"])
    assert [r.name for r in table] == ["forward", "C"]
    with pytest.raises(TypeError, match="check_vjp"):
        check_layer(jnp.tanh, X)
    with pytest.raises(ValueError, match="floating-point"):
        check_layer(L.MANUAL.embedding, np.zeros((3, 2), np.int32), ids(1, 3, 4))


def test_the_table_prints_multiples_of_the_bound_and_renders_as_html():
    table = check_layer(rmsnorm(factor=0.0), X, G, argnames=["x", "g"])
    text = str(table)
    assert "x" in text and "FAIL" in text and "its bound" in text and "2/3 ok" in text
    html = table._repr_html_()
    assert "<table>" in html and "× bound" in html and "FAIL" in html
    assert table.to_json()[1]["name"] == "x" and table.to_json()[1]["ok"] is False


def test_a_rule_that_raises_or_a_forward_of_another_shape_is_a_row_not_a_traceback():
    def fwd_wrong_shape(x, g):
        out, res = rms_fwd(x, g)
        return out[:, :3], res

    table = check_layer(rmsnorm(fwd=fwd_wrong_shape), X, G, argnames=["x", "g"])
    assert table["forward"].problem == "fwd's output is float32[6, 3], the primal's float32[6, 10]"
    assert not table.ok

    f = jax.custom_vjp(rms_plain)
    f.defvjp(rms_fwd, lambda res, dy: (dy[:, :2] @ res[0], res[1]))  # an impossible product
    table = check_layer(f, X, G, argnames=["x", "g"])
    assert table["bwd"].problem.startswith("bwd raised TypeError: ") and table["forward"].ok and not table.ok


def test_a_kink_near_an_input_does_not_fail_a_correct_relu_and_a_wrong_one_still_fails():
    def relu_bwd(slope):
        return lambda x, d: (jnp.where(x > 0, slope, 0.0) * d,)

    def relu(slope=1.0):
        f = jax.custom_vjp(lambda x: jnp.maximum(x, 0.0))
        f.defvjp(lambda x: (jnp.maximum(x, 0.0), x), relu_bwd(slope))
        return f

    x = normal(3, 8, 16).at[0, 0].set(3e-6)  # within the first step (h = 1e-5 (1 + max|x|)) of the kink
    assert check_layer(relu(), x, argnames=["x"]).ok
    assert not check_layer(relu(0.5), x, argnames=["x"])["x"].ok


def test_scalars_are_checked_containers_are_refused_and_masked_infinities_agree():
    scale = jax.custom_vjp(lambda x, a: a * x)
    scale.defvjp(lambda x, a: (a * x, (x, a)), lambda res, d: (res[1] * d, 99.0 * jnp.sum(d)))  # d_a wrong
    table = check_layer(scale, X, 2.0, argnames=["x", "a"])
    assert table["x"].ok and not table["a"].ok  # a Python float is an argument like any other
    pair = jax.custom_vjp(lambda p, x: x @ p["W"])
    pair.defvjp(lambda p, x: (x @ p["W"], (p, x)), lambda res, d: ({"W": res[1].T @ d}, d @ res[0]["W"].T))
    with pytest.raises(ValueError, match="p is a dict of arrays"):
        check_layer(pair, {"W": normal(1, 10, 3)}, X, argnames=["p", "x"])
    masked = jax.custom_vjp(lambda x: jnp.where(x > 0, x, -jnp.inf))  # a masked score: -inf on both sides
    masked.defvjp(lambda x: (jnp.where(x > 0, x, -jnp.inf), x), lambda x, d: (jnp.where(x > 0, d, 0.0),))
    assert check_layer(masked, X, argnames=["x"]).ok


def test_a_small_second_output_sets_no_rule_for_the_first():
    two = jax.custom_vjp(lambda x: (1e4 * jnp.sin(x), 1e-4 * jnp.cos(x)))
    two.defvjp(
        lambda x: ((1e4 * (2 * jnp.sin(x / 2) * jnp.cos(x / 2)), 1e-4 * jnp.cos(x)), x),  # the same, rounded otherwise
        lambda x, d: (1e4 * jnp.cos(x) * d[0] - 1e-4 * jnp.sin(x) * d[1],),
    )
    assert check_layer(two, X, argnames=["x"])["forward"].ok


def test_a_symbolic_zeros_rule_is_refused_in_one_line():
    f = jax.custom_vjp(lambda x: x * x)
    f.defvjp(lambda x: (x * x, x), lambda x, d: (2 * x * d,), symbolic_zeros=True)
    with pytest.raises(TypeError, match="symbolic_zeros=True"):
        check_layer(f, X)
