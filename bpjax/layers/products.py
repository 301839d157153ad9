"""The matrix products of the layers, in the form XLA runs fastest: ``a @ b``, ``a @ b^T``, ``a^T @ b``
and a weight's gradient ``x^T @ d_y``. Each gives the same value as the plain ``jnp`` expression; only
the layout of the operands XLA sees differs.

Shapes: ``a`` [..., M, K], ``b`` [..., K, N]; leading axes broadcast as in ``jnp.matmul`` (a linear's
``x`` [B, T, K] against its ``W`` [K, N]; attention's heads [B, nh, T, hs] on both sides).

Why the forms matter on a CPU (XLA:CPU's YNNPACK GEMMs; measured on a 2-core Xeon with AMX, see
``experiments/results/bench/PROFILE.md``):

* float32: a dot that contracts its left operand's first axis misses the fast path, so a weight's
  gradient transposes one operand first (:func:`weight_grad`); ``a @ b^T`` runs as it is.
* bfloat16: YNNPACK's bfloat16 GEMM (AMX tiles where the CPU has them: ~3x float32's rate) takes only
  ``a @ b`` with both operands row-major and a float32 result. Every other form, and a bfloat16
  result, is widened by XLA to a float32 GEMM first. So bfloat16 products are computed into float32
  and rounded back (the value of ``a @ b`` in bfloat16: autocast's result dtype), and a transposed
  operand is materialised as a row-major copy (:func:`transposed`).

Elsewhere (GPUs, TPUs) ``matmul_nt`` and ``row_major`` leave the layout to XLA, while ``matmul_tn``
and :func:`weight_grad` keep their float32 form (one operand transposed behind a barrier) on every
backend; bfloat16 products are computed into float32 and rounded on every backend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _bf16(*arrays) -> bool:
    return all(a.dtype == jnp.bfloat16 for a in arrays)


def _copies_transposes() -> bool:
    """Whether transposed operands are materialised: on XLA:CPU, where the GEMMs need them row-major."""
    return jax.default_backend() == "cpu"


def transposed(a):
    """``a`` [..., M, N] -> [..., N, M], its last two axes swapped, as a row-major copy.

    A transpose left to XLA becomes a change of layout (free, but the dot then sees a column-major
    operand) or is folded into the dot's dimensions. Flattening the transposed array behind an
    optimization barrier forces the copy in row-major order; the reshape back is free."""
    t = jnp.swapaxes(a, -1, -2)
    return jax.lax.optimization_barrier(t.reshape(-1)).reshape(t.shape)


def row_major(a):
    """``a`` as a row-major copy where the products need one (bfloat16 on XLA:CPU), else ``a`` itself:
    for an operand made by a permutation of axes (attention's heads), which XLA would otherwise keep
    as a permuted layout the bfloat16 GEMM does not take."""
    if a.dtype == jnp.bfloat16 and _copies_transposes():
        return jax.lax.optimization_barrier(a.reshape(-1)).reshape(a.shape)
    return a


def matmul(a, b, *, rounded: bool = True):
    """``a @ b`` in the operands' dtype. bfloat16 operands: computed into float32, rounded to bfloat16
    (``rounded=False``: left in float32, for a consumer that rounds it itself: XLA then fuses the
    rounding into that consumer, a copy into another layout, instead of a pass of its own)."""
    if _bf16(a, b):
        out = jnp.matmul(a, b, preferred_element_type=jnp.float32)
        return out.astype(a.dtype) if rounded else out
    return a @ b


def matmul_nt(a, b, *, rounded: bool = True):
    """``a @ b^T`` for ``a`` [..., M, K], ``b`` [..., N, K] -> [..., M, N]."""
    if _bf16(a, b) and _copies_transposes():
        return matmul(a, transposed(b), rounded=rounded)
    return matmul(a, jnp.swapaxes(b, -1, -2), rounded=rounded)


def matmul_tn(a, b):
    """``a^T @ b`` for ``a`` [..., K, M], ``b`` [..., K, N] -> [..., M, N], with ``a^T`` materialised
    (on XLA:CPU a dot contracting its left operand's rows misses the fast path in either dtype)."""
    if _bf16(a, b) and _copies_transposes():
        return matmul(transposed(a), b)
    return matmul(jax.lax.optimization_barrier(jnp.swapaxes(a, -1, -2)), b)


def weight_grad(x, d_y):
    """``x.T @ d_y`` for rows ``x`` [N, K] and ``d_y`` [N, M] -> [K, M]: a weight's gradient.

    On XLA:CPU a dot that contracts the LHS's first axis misses the fast (YNN) GEMM path, and
    its transposes are slow (~0.6 ns an element) and fuse their producers into a strided loop.
    So one operand is transposed explicitly, behind optimization barriers (XLA cannot fold it
    back into the dot): ``x.T`` (N·K elements), or, when that is more, ``d_y.T`` and the [M, K]
    product, ``(d_y.T @ x).T`` (N·M + M·K). The value is the same. Measured (steps/s, same session):
    Transformer ~103 -> 126-135 (with attention's transposed operands materialised too), BoW 1,816 ->
    2,059, Bengio's MLP 2,065 -> 2,176; the MLP and WaveNet unchanged (the first rule alone, before
    this choice: WaveNet 2,640 -> 3,080). In bfloat16 on XLA:CPU the transposed operand is a row-major
    copy (:func:`transposed`) and the [M, K] product is transposed in float32 before its rounding.
    """
    (n, k), m = x.shape, d_y.shape[1]
    if _bf16(x, d_y) and _copies_transposes():
        if n * m + m * k < n * k:
            prod = jnp.matmul(transposed(d_y), x, preferred_element_type=jnp.float32)
            return jax.lax.optimization_barrier(prod).T.astype(x.dtype)  # else XLA folds .T into the dot
        return matmul(transposed(x), d_y)
    barrier = jax.lax.optimization_barrier
    if n * m + m * k < n * k:
        return barrier(matmul(barrier(d_y.T), x)).T
    return matmul(barrier(x.T), d_y)
