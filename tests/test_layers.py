"""Every custom_vjp layer against jax.grad of its plain twin, and against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.check import check_vjp
from bpjax.errors import ConfigError
from conftest import check_grads_on_floats

DTYPES = [jnp.float32, jnp.float64]


def make_inputs(name, n, dtype, key, hidden=7, vocab=11, block=3, embd=5, leading=()):
    """Random inputs for a layer, with n rows (leading axes optional, for 3-D inputs)."""
    k = iter(jax.random.split(key, 6))
    normal = lambda shape, scale=1.0: jax.random.normal(next(k), shape, dtype) * scale
    rows = (n, *leading)
    if name == "cross_entropy":
        return (normal((n, vocab), 3.0), jax.random.randint(next(k), (n,), 0, vocab)), ("logits", "Y")
    if name == "batchnorm":
        # With two rows, batch norm maps every column to +-1/sqrt(2) whatever the input, up to eps:
        # its true gradient is O(eps/var), so at unit scale both backwards (hand-written and
        # jax.grad's) are float32 cancellation noise (measured: hand-written 3.6e-7, jax.grad 7.2e-7
        # from the float64 truth, on a gradient of 1.5e-3). Two rows are tested where var ~ eps and
        # the gradient is O(1); float64 covers every scale.
        scale = 3e-3 if n == 2 and dtype == jnp.float32 else 2.0
        return ((normal((*rows, hidden), scale) + 0.5, normal((1, hidden)) * 0.1 + 1.0,
                 normal((1, hidden)) * 0.1), ("h_pre_bn", "bngain", "bnbias"))
    if name == "tanh":
        return (normal((*rows, hidden), 1.5),), ("x",)
    if name == "linear":
        return (normal((*rows, embd * block)), normal((embd * block, hidden)), normal((hidden,))), ("x", "W", "b")
    if name == "embedding":
        # n rows of `block` ids over a vocabulary smaller than the ids used: repeats are certain
        return (normal((vocab, embd)), jax.random.randint(next(k), (n, block), 0, vocab)), ("C", "X")
    raise KeyError(name)


LAYERS = {
    "cross_entropy": (L.cross_entropy, L.cross_entropy_plain),
    "batchnorm": (L.batchnorm, L.batchnorm_plain),
    "tanh": (L.tanh, L.tanh_plain),
    "linear": (L.linear, L.linear_plain),
    "embedding": (L.embedding, L.embedding_plain),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [2, 3, 32, 1000])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_jax_grad(name, n, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        for seed, hidden in enumerate([7, 129]):  # odd hidden sizes (the MLP tests use 64)
            args, names = make_inputs(name, n, dtype, jax.random.key(seed), hidden=hidden)
            f_man, f_ref = LAYERS[name]
            np.testing.assert_array_equal(jax.jit(f_man)(*args), jax.jit(f_ref)(*args))  # same forward
            table = check_vjp(f_man, f_ref, args, argnames=names, key=jax.random.key(100 + seed))
            assert len(table) >= 1
            assert table.ok, str(table)
            floats = [a for a in args if jnp.issubdtype(a.dtype, jnp.floating)]
            assert all(r.shape == np.shape(a) for r, a in zip(table, floats, strict=True))


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_finite_differences_float64(name):
    with jax.enable_x64(True):
        args, _ = make_inputs(name, 6, jnp.float64, jax.random.key(3))
        check_grads_on_floats(LAYERS[name][0], args)


@pytest.mark.parametrize("name", ["batchnorm", "tanh", "linear", "embedding"])
def test_layers_on_3d_input(name):
    """Leading axes (B, T) are rows: what the WaveNet's layers need."""
    with jax.enable_x64(True):
        args, names = make_inputs(name, 4, jnp.float64, jax.random.key(1), leading=(2,) if name != "embedding" else ())
        f_man, f_ref = LAYERS[name]
        assert check_vjp(f_man, f_ref, args, argnames=names).ok


def test_batchnorm_of_one_row_is_an_error():
    with pytest.raises(ConfigError, match="at least 2 rows"):
        L.batchnorm(jnp.ones((1, 4)), jnp.ones((1, 4)), jnp.zeros((1, 4)))
    with pytest.raises(ConfigError, match="at least 2 rows"):
        jax.grad(lambda x: L.batchnorm(x, jnp.ones((1, 4)), jnp.zeros((1, 4))).sum())(jnp.ones((1, 4)))


def test_embedding_adds_repeated_rows():
    C = jnp.zeros((3, 2))
    X = jnp.array([[1, 1, 1], [2, 1, 0]])
    d_emb = jnp.ones((2, 3, 2))
    _, vjp = jax.vjp(lambda C: L.embedding(C, X), C)
    np.testing.assert_array_equal(vjp(d_emb)[0], [[1, 1], [4, 4], [1, 1]])


def test_layers_compose_with_jit_vmap_grad():
    with jax.enable_x64(True):
        (x, g, b), _ = make_inputs("batchnorm", 8, jnp.float64, jax.random.key(5))
        xs = jnp.stack([x, 2 * x + 1, -x])
        f = lambda f_bn: jax.jit(jax.vmap(jax.grad(lambda x: (f_bn(x, g, b) ** 3).sum())))
        np.testing.assert_allclose(f(L.batchnorm)(xs), f(L.batchnorm_plain)(xs), rtol=1e-10, atol=1e-12)


# --- the pass rule catches planted bugs -----------------------------------------------------
@jax.custom_vjp
def _bn_missing_bessel(x, g, b):
    return L.batchnorm_plain(x, g, b)


def _bad_fwd(x, g, b):
    return L.batchnorm.fwd(x, g, b)  # the real layer's residuals


def _bad_bwd(res, d):
    bn_raw, bn_var_inv, g, b = res
    n = bn_raw.shape[0]
    dx = g * bn_var_inv / n * (n * d - d.sum(0, keepdims=True) - bn_raw * (d * bn_raw).sum(0, keepdims=True))
    return dx, (bn_raw * d).sum(0, keepdims=True), d.sum(0, keepdims=True)


_bn_missing_bessel.defvjp(_bad_fwd, _bad_bwd)


@jax.custom_vjp
def _embedding_set_not_add(C, X):
    return C[X]


_embedding_set_not_add.defvjp(
    lambda C, X: (C[X], (C, X)),
    lambda r, d: (jnp.zeros_like(r[0]).at[r[1].reshape(-1)].set(d.reshape(-1, r[0].shape[1])), None))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pass_rule_fails_planted_bugs(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        args, names = make_inputs("batchnorm", 32, dtype, jax.random.key(0), hidden=64)
        t = check_vjp(_bn_missing_bessel, L.batchnorm_plain, args, argnames=names)
        assert not t["h_pre_bn"].ok
        args, names = make_inputs("embedding", 32, dtype, jax.random.key(0))
        t = check_vjp(_embedding_set_not_add, L.embedding_plain, args, argnames=names)
        assert not t["C"].ok


def test_each_custom_layer_is_its_plain_twin_with_a_backward():
    """By construction: the custom_vjp's primal function is the plain function itself."""
    for manual, plain in zip(L.MANUAL, L.PLAIN, strict=True):
        assert manual.fun is plain, manual
        assert manual.__name__ == plain.__name__.removesuffix("_plain") and manual.__doc__


def test_eval_batchnorm_with_the_batch_statistics_is_training_batchnorm():
    x = jax.random.normal(jax.random.key(0), (64, 5)) * 2 + 1
    g, b = jnp.full((5,), 1.1), jnp.full((5,), 0.1)
    ev = L.batchnorm_eval(x, g, b, x.mean(0), x.var(0, ddof=1))
    np.testing.assert_allclose(ev, L.batchnorm_plain(x, g, b), rtol=1e-5, atol=1e-6)
