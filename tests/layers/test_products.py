"""The layers' matrix products: the same values as the plain expressions in every dtype, and on a CPU
the form XLA:CPU's bfloat16 GEMM takes (both operands bfloat16, row-major, into float32)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L

BF16 = jnp.bfloat16
SHAPES = [(64, 8, 3), (5, 40, 30), (1, 128, 65), (3, 4, 1), (12, 1, 5)]  # [M, K, N], vectors included


def _pair(m, k, n, dtype, batch=()):
    a = jax.random.normal(jax.random.key(m * 100 + k), (*batch, m, k), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(n * 100 + k), (*batch, k, n), jnp.float32).astype(dtype)
    return a, b


@pytest.mark.parametrize("batch", [(), (2, 3)], ids=["2-D", "batched"])
def test_every_form_is_the_plain_product_in_float64(batch):
    with jax.enable_x64(True):
        for m, k, n in SHAPES if not batch else SHAPES[1:3]:  # batched: fewer compiles, the same forms
            a, b = _pair(m, k, n, jnp.float64, batch)
            want = a @ b
            np.testing.assert_allclose(L.matmul(a, b), want, rtol=1e-13)
            np.testing.assert_allclose(L.matmul_nt(a, jnp.swapaxes(b, -1, -2)), want, rtol=1e-13)
            np.testing.assert_allclose(L.matmul_tn(jnp.swapaxes(a, -1, -2), b), want, rtol=1e-13)
            assert (L.transposed(a) == jnp.swapaxes(a, -1, -2)).all() and (L.row_major(a) == a).all()


def test_weight_grad_is_x_transposed_times_d_y_either_way():
    """Both associations of ``x.T @ d_y`` (the smaller operand transposed) give the same product."""
    with jax.enable_x64(True):
        for n, k, m in ((64, 8, 3), (5, 40, 30)):
            x = jax.random.normal(jax.random.key(n), (n, k), jnp.float64)
            d_y = jax.random.normal(jax.random.key(k), (n, m), jnp.float64)
            np.testing.assert_allclose(L.weight_grad(x, d_y), x.T @ d_y, rtol=1e-13)


@pytest.mark.parametrize("batch", [(), (2,)], ids=["2-D", "batched"])
def test_bfloat16_products_are_the_float32_product_rounded(batch):
    """bfloat16 operands: the result is bfloat16, the float32 product rounded (accumulation order may
    move a rounding by one unit of bfloat16's last place, 2**-7 relative: nothing more)."""
    for m, k, n in SHAPES:
        a, b = _pair(m, k, n, BF16, batch)
        want = np.asarray(a.astype(jnp.float32) @ b.astype(jnp.float32))
        bt, at = jnp.swapaxes(b, -1, -2), jnp.swapaxes(a, -1, -2)
        for got in (L.matmul(a, b), jax.jit(L.matmul_nt)(a, bt), jax.jit(L.matmul_tn)(at, b)):
            assert got.dtype == BF16
            np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2**-7, atol=1e-6 * k)
    if not batch:  # a weight's gradient, both associations
        for n, k, m in ((64, 8, 3), (5, 40, 30)):
            x, d_y = _pair(n, k, 1, BF16)[0], _pair(n, m, 1, BF16)[0]
            want = np.asarray(x.astype(jnp.float32).T @ d_y.astype(jnp.float32))
            got = jax.jit(L.weight_grad)(x, d_y)
            assert got.dtype == BF16
            np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2**-7, atol=1e-6 * n)


def _dots(f, *args) -> list[tuple[set, bool]]:
    """Every dot in ``f``'s compiled HLO: its operands' element types, and whether it sits in a YNNPACK
    fusion (a dot outside one runs on XLA's fallback thunk, which cannot multiply bfloat16 into float32)."""
    hlo = jax.jit(f).lower(*args).compile().as_text()
    ynn = set(re.findall(r"calls=%(\S+?), .*__ynn_fusion", hlo))
    out = []
    for comp in re.split(r"\n\n", hlo):
        name = re.match(r"%?(\S+)", comp.strip())
        for line in comp.splitlines():
            if m := re.search(r"= \S+ dot\(%(\S+), %(\S+)\)", line):
                types = dict(re.findall(r"%(\S+) = (\w+)\[", comp))
                out.append(({types.get(m.group(1)), types.get(m.group(2))}, bool(name) and name.group(1) in ynn))
    return out


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the row-major copies are XLA:CPU's")
def test_on_a_cpu_every_bfloat16_form_reaches_the_bfloat16_gemm():
    """XLA:CPU widens a bfloat16 dot to float32 unless both operands are row-major and the result
    float32 (then YNNPACK's bfloat16 GEMM, AMX where the CPU has it, runs it): every form here must
    keep its dots bfloat16 and in YNNPACK fusions, and run."""
    x, W = _pair(768, 128, 512, BF16)
    d_y = jax.random.normal(jax.random.key(0), (768, 512)).astype(BF16)
    small = jax.random.normal(jax.random.key(1), (768, 128)).astype(BF16)
    q = jax.random.normal(jax.random.key(2), (12, 4, 64, 32)).astype(BF16)
    heads = jnp.swapaxes(q, 1, 2)  # a permutation of axes: the layout XLA would keep
    cases = {
        "a @ b": (L.matmul, x, W),
        "a @ b.T": (L.matmul_nt, d_y, W),
        "a.T @ b": (L.matmul_tn, x, small),
        "x.T @ d_y": (L.weight_grad, x, d_y),
        "(d_y.T @ x).T": (L.weight_grad, d_y, small),
        "q @ k.T, heads": (lambda a, b: L.matmul_nt(L.row_major(jnp.swapaxes(a, 1, 2)), b), heads, q),
    }
    for name, (f, *args) in cases.items():
        dots = _dots(f, *args)
        assert dots and all(t == {"bf16"} and in_ynn for t, in_ynn in dots), f"{name}: dots {dots}"
        jax.block_until_ready(jax.jit(f)(*args))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the row-major copies are XLA:CPU's")
def test_on_a_cpu_the_gpts_layers_keep_every_dot_bfloat16_forward_and_backward():
    """The layers as a model calls them (``computing_in("bfloat16")``: float32 in and out, the products
    cast), forward and hand-written backward through ``jax.vjp``: every dot bfloat16, in YNNPACK."""
    ly = L.MANUAL.computing_in("bfloat16")
    k = jax.random.split(jax.random.key(3), 4)
    x = jax.random.normal(k[0], (12, 64, 128))
    W_attn = 0.02 * jax.random.normal(k[1], (128, 3, 4, 32))
    W_proj, W = 0.02 * jax.random.normal(k[2], (128, 128)), 0.02 * jax.random.normal(k[3], (128, 512))
    wte = 0.02 * jax.random.normal(k[3], (65, 128))

    def grads(f, *args):
        y, vjp = jax.vjp(f, *args)
        return vjp(jnp.ones_like(y))

    cases = {
        "attention": (lambda x, a, p: ly.attention(x, a, None, p, None, None, 0.0), x, W_attn, W_proj),
        "linear": (lambda x, W: ly.linear(x, W, None), x, W),
        "tied head": (ly.tied_head, x, wte),
    }
    for name, (f, *args) in cases.items():
        dots = _dots(lambda *a, f=f: grads(f, *a), *args)
        assert dots and all(t == {"bf16"} and in_ynn for t, in_ynn in dots), f"{name}: dots {dots}"
        jax.block_until_ready(jax.jit(lambda *a, f=f: grads(f, *a))(*args))
