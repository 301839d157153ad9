"""Compare hand-written gradients with the oracle (``jax.grad``): the notebook's ``cmp``, as data.

    table = compare(manual_grads, oracle_grads)     # one Row per name
    print(table)                                    # the notebook's text layout
    table                                           # an HTML table in Jupyter

**The pass rule** (``ok``), per row, with ``m = max|oracle row|``:

* float64: ``maxdiff <= 1e-10 * m + 1e-12``
* float32: ``maxdiff <= 1e-4 * m + 1e-7``
* bfloat16 (``--compute-dtype bfloat16``: both sides' matrix products in bfloat16, the rest in
  float32): ``maxdiff <= 2**-5 * m + 1e-6``, four of bfloat16's epsilons (2**-7). Each side rounds
  every product to bfloat16's 8 significant bits, in its own order: measured on the GPT at its
  initialisation, the worst row is 0.0059 m (and bfloat16 against float32 itself 0.0099 m); a wrong
  formula is off by O(m).

Float32 needs the looser rule because XLA orders its reductions differently from the hand-written
ones, and some true gradients are exactly 0 (``b1``'s, under batch norm), so their rows are pure
rounding noise. A row whose shapes differ fails, even where broadcasting would hide it.
``exact`` (bit-equal) and ``approx`` (``allclose`` with torch's rtol 1e-5, atol 1e-8) are shown for
comparison with the notebook; ``ulp`` is maxdiff in units in the last place of ``m``.
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-7), "bfloat16": (2**-5, 1e-6)}
"""dtype -> (relative to max|oracle row|, absolute): the pass rule."""

PRECISION = "highest"
"""The matrix-product precision of every check (``jax.default_matmul_precision``): float32 products in
float32. At JAX's default, a GPU from Ampere on computes float32 products in TF32 (a 10-bit mantissa),
and a TPU computes them with bfloat16 passes, so a check would measure the hardware's rounding, not the
formula: on an H100, 9 of the 19 rows of ``bpjax check --model deep``'s whole-model float32 table
failed at the default and passed at ``"highest"``. On a CPU both are the same. Training keeps JAX's
default (and its speed)."""


def precise(f):
    """``f`` run with :data:`PRECISION` matrix products. Apply it to the code that traces: the
    precision is read when a product is traced (``jit`` traces again for a new precision); an
    executable compiled ahead of time (``.lower().compile()``) keeps the one it was compiled with."""

    @functools.wraps(f)
    def g(*args, **kwargs):
        with jax.default_matmul_precision(PRECISION):
            return f(*args, **kwargs)

    return g


@dataclass(frozen=True)
class Row:
    table: str
    name: str
    shape: tuple
    exact: bool
    approx: bool
    maxdiff: float
    ulp: float
    ok: bool
    oracle_shape: tuple | None = None  # set only when it differs from ``shape``

    def __str__(self) -> str:
        """The notebook's ``cmp`` line, with the ulp, shape and pass-rule columns."""
        shape = "x".join(map(str, self.shape)) or "scalar"
        extra = "" if self.oracle_shape is None else f"  SHAPE MISMATCH: oracle {self.oracle_shape}"
        return (
            f"{self.name:15s} | exact: {str(self.exact):5s} | approximate: {str(self.approx):5s} "
            f"| maxdiff: {self.maxdiff:.3e} | ulp: {self.ulp:9.3g} | {shape:>8s} "
            f"| {'ok' if self.ok else 'FAIL'}{extra}"
        )

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        if self.oracle_shape is None:
            del d["oracle_shape"]
        else:
            d["oracle_shape"] = list(self.oracle_shape)
        for k in ("maxdiff", "ulp"):
            if not math.isfinite(d[k]):
                d[k] = None
        return d


def _spacing(scale: float, key: str) -> float:
    """The unit in the last place of ``scale`` in the rule's format."""
    if key == "bfloat16":
        return 2.0 ** (math.floor(math.log2(scale)) - 7) if scale > 0 else 2.0**-133
    return float(np.spacing(np.asarray(scale, dtype=np.float64 if key == "float64" else np.float32)))


def compare_arrays(name: str, manual, oracle, table: str = "", rule: str | None = None) -> Row:
    """One row: a hand-written gradient against its oracle; ``rule``: the key of :data:`TOLERANCES`
    (default: the hand-written gradient's dtype: float64, bfloat16, else float32)."""
    m_arr, o_arr = np.asarray(manual), np.asarray(oracle)
    if m_arr.shape != o_arr.shape:
        return Row(table, name, m_arr.shape, False, False, math.inf, math.inf, False, o_arr.shape)
    # The rule follows the hand-written gradient's precision (a float32 result is held to the
    # float32 rule even against a float64 oracle); the difference is taken in the wider type.
    dtype = np.result_type(m_arr.dtype, o_arr.dtype)
    key = rule or {"float64": "float64", "bfloat16": "bfloat16"}.get(m_arr.dtype.name, "float32")
    rel, absol = TOLERANCES[key]
    diff = np.abs(m_arr.astype(dtype) - o_arr.astype(dtype))
    maxdiff = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(o_arr).max()) if o_arr.size else 0.0
    ulp_unit = _spacing(scale, key)
    ok = bool(np.isfinite(m_arr).all()) and maxdiff <= rel * scale + absol
    return Row(
        table=table,
        name=name,
        shape=tuple(m_arr.shape),
        exact=bool(np.array_equal(m_arr, o_arr)),
        approx=bool(np.allclose(m_arr, o_arr, rtol=1e-5, atol=1e-8)),
        maxdiff=maxdiff,
        ulp=maxdiff / ulp_unit,
        ok=ok,
    )


class Table:
    """Rows of a comparison; prints as the notebook's ``cmp`` lines, renders as HTML in Jupyter."""

    def __init__(self, title: str, rows: list[Row], dtype: str = ""):
        self.title, self.rows, self.dtype = title, list(rows), dtype

    @property
    def ok(self) -> bool:
        """Every row passes, and there is at least one: an empty table checks nothing."""
        return bool(self.rows) and all(r.ok for r in self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def worst(self) -> Row:
        return max(self.rows, key=lambda r: r.maxdiff)

    def __str__(self) -> str:
        head = f"== {self.title}" + (f" ({self.dtype})" if self.dtype else "") + " =="
        lines = [head, *map(str, self.rows)]
        lines.append(f"{sum(r.ok for r in self.rows)}/{len(self.rows)} ok")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = []
        for r in self.rows:
            colour = "#e6f4ea" if r.ok else "#fce8e6"
            cells.append(
                f"<tr style='background:{colour}'><td><code>{html.escape(r.name)}</code></td>"
                f"<td>{'×'.join(map(str, r.shape))}</td><td>{r.exact}</td><td>{r.approx}</td>"
                f"<td>{r.maxdiff:.3e}</td><td>{r.ulp:.1f}</td><td>{'ok' if r.ok else 'FAIL'}</td></tr>"
            )
        title = html.escape(self.title + (f" ({self.dtype})" if self.dtype else ""))
        return (
            f"<table><caption>{title}: {sum(r.ok for r in self.rows)}/{len(self.rows)} ok</caption>"
            "<tr><th>name</th><th>shape</th><th>exact</th><th>approx</th><th>maxdiff</th>"
            "<th>ulp</th><th>ok</th></tr>" + "".join(cells) + "</table>"
        )

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.rows]


def compare(
    manual: dict, oracle: dict, names=None, *, table: str = "", title: str | None = None, rule: str | None = None
) -> Table:
    """Compare two gradient dicts name by name (default: the manual dict's order); ``rule``: see
    :func:`compare_arrays`.

    A name missing from either side raises ``KeyError``: a silently skipped row would be a check
    that cannot fail.
    """
    if names is None:
        if set(manual) != set(oracle):
            missing = sorted(set(manual) ^ set(oracle))
            raise KeyError(f"names on one side only: {missing}")
        names = list(manual)
    rows = [compare_arrays(k, manual[k], oracle[k], table, rule) for k in names]
    dt = rule or (str(np.result_type(*[np.asarray(oracle[k]).dtype for k in names])) if names else "")
    return Table(title or table or "comparison", rows, dt)


@precise
def check_vjp(
    f_manual, f_ref, args, *, argnames=None, cotangent=None, key=None, table: str = "vjp", title: str | None = None
) -> Table:
    """Compare a hand-written ``custom_vjp`` function with a plain reference on given inputs.

    ``f_manual(*args)`` and ``f_ref(*args)`` must compute the same output. Both are pulled back
    (``jax.vjp``) with the same ``cotangent`` (default: ones for a scalar output, else a random
    normal array drawn from ``key``); one row per floating-point argument, named by ``argnames``
    (default ``arg0``, ``arg1``, ...). Integer arguments (token ids) are held fixed.

    Example::

        table = check_vjp(layers.tanh, jnp.tanh, (x,), argnames=["x"])
        assert table.ok, table
    """
    args = tuple(jnp.asarray(a) for a in args)
    argnames = list(argnames) if argnames is not None else [f"arg{i}" for i in range(len(args))]
    if len(argnames) != len(args):
        raise ValueError(f"{len(argnames)} argnames for {len(args)} args")
    diff_idx = [i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating)]
    if not diff_idx:
        raise ValueError(
            "check_vjp needs at least one floating-point argument to differentiate; "
            f"got dtypes {[str(a.dtype) for a in args]}"
        )

    def on_floats(f):
        def g(*floats):
            full = list(args)
            for i, x in zip(diff_idx, floats, strict=True):
                full[i] = x
            return f(*full)

        return g

    floats = [args[i] for i in diff_idx]
    out = jax.eval_shape(on_floats(f_ref), *floats)
    if cotangent is None:
        if out.ndim == 0:
            cotangent = jnp.ones(out.shape, out.dtype)
        else:
            key = jax.random.key(0) if key is None else key
            cotangent = jax.random.normal(key, out.shape, out.dtype)
    cotangent = jnp.asarray(cotangent, out.dtype)

    @jax.jit  # one compilation for both pullbacks, instead of op-by-op dispatch
    def pullbacks(floats, cotangent):
        return tuple(jax.vjp(on_floats(f), *floats)[1](cotangent) for f in (f_manual, f_ref))

    g_man, g_ref = pullbacks(floats, cotangent)
    names = [argnames[i] for i in diff_idx]
    return compare(dict(zip(names, g_man, strict=True)), dict(zip(names, g_ref, strict=True)), table=table, title=title)


# --------------------------------------------------------------------------------------------
# Building tables: named pytree leaves, zero taps, layer-by-layer and whole-model checks
# --------------------------------------------------------------------------------------------
def tree_names(tree) -> dict:
    """``{"stages/0/W": leaf, ...}``: a pytree's leaves under ``/``-joined path names, in order."""

    def name(path):
        return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)

    return {name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


class Tap:
    """Named intermediates of a forward, each with an optional "tap" added to it.

    ``x = tap("h", jnp.tanh(h_preact))`` records ``x`` under ``"h"`` and returns it plus
    ``taps["h"]`` when one is given. With zero taps the values are unchanged and ``jax.grad`` with
    respect to a tap is the gradient with respect to that intermediate: JAX's stand-in for
    PyTorch's ``retain_grad``. A forward written against ``tap`` serves training (the identity
    :data:`NO_TAP`), the exercise-1 tables and the layer tables alike.
    """

    def __init__(self, taps: dict | None = None):
        self.taps, self.values = taps or {}, {}

    def __call__(self, name: str, value):
        if name in self.taps:
            value = value + self.taps[name]
        self.values[name] = value
        return value


def NO_TAP(name: str, value):
    """The identity tap: a forward run for training records nothing."""
    return value


@precise
def tap_grads(loss_fn, *args, names=None):
    """``loss_fn(tap, *args) -> scalar``, differentiated at every tapped intermediate.

    Returns ``(loss, values, d_values, d_args)``: ``values[name]`` each intermediate,
    ``d_values[name]`` the gradient of the loss with respect to it (through zero taps; only for
    ``names`` when given), ``d_args`` the gradients with respect to ``args`` (``jax.grad``'s).
    """

    def run(taps, *args):
        t = Tap(taps)
        return loss_fn(t, *args), t.values

    shapes = jax.eval_shape(lambda *a: run({}, *a)[1], *args)
    zero = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items() if names is None or k in names}
    grad = jax.value_and_grad(run, argnums=tuple(range(len(args) + 1)), has_aux=True)
    (loss, values), (d_values, *d_args) = jax.jit(grad)(zero, *args)
    return loss, values, d_values, tuple(d_args)


def layer_rows_table(title: str, rows, *, table: str = "layers", dtype: str = "") -> Table:
    """One table from rows ``(layer, args, names, cotangent)``: each a hand-written ``custom_vjp``
    ``layer`` on the arguments it saw, pulled back with the oracle's upstream gradient ``cotangent``,
    against ``jax.grad`` of its plain twin ``layer.fun`` (:func:`check_vjp`). ``args`` may hold static
    values (``None``, an axis, a factor), which stay fixed; ``names`` name every argument."""
    out = []
    for layer, args, names, cotangent in rows:
        arrays = [i for i, a in enumerate(args) if isinstance(a, (jax.Array, np.ndarray))]

        def at(f, args=args, arrays=arrays):
            def g(*xs):
                full = list(args)
                for i, x in zip(arrays, xs, strict=True):
                    full[i] = x
                return f(*full)

            return g

        t = check_vjp(
            at(layer),
            at(layer.fun),
            [args[i] for i in arrays],
            argnames=[names[i] for i in arrays],
            cotangent=cotangent,
            table=table,
        )
        out += t.rows
    return Table(title, out, dtype)


def vjp_table(title: str, checks, *, table: str = "layers", dtype: str = "") -> Table:
    """One table from many :func:`check_vjp` calls: ``checks`` yields ``(f_manual, f_plain, args,
    argnames, cotangent)``, each one layer on the activations it saw, pulled back with the
    oracle's upstream gradient ``cotangent`` (``None``: a scalar output's 1)."""
    rows = []
    for f_man, f_ref, args, names, cot in checks:
        rows += check_vjp(f_man, f_ref, args, argnames=names, cotangent=cot, table=table).rows
    return Table(title, rows, dtype)


@precise
def model_table(
    loss_manual,
    loss,
    params,
    *args,
    names=None,
    title: str = "whole model: grad(loss_manual) vs grad(loss)",
    rule: str | None = None,
) -> Table:
    """``jax.grad(loss_manual)`` against ``jax.grad(loss)`` (the oracle) at ``params``, one row per
    parameter (``names``: their order; default every leaf, named by :func:`tree_names`).
    Both losses are ``(params, *args) -> scalar``; ``rule``: see :func:`compare_arrays`."""
    g_man = tree_names(jax.jit(jax.grad(loss_manual))(params, *args))
    g_ref = tree_names(jax.jit(jax.grad(loss))(params, *args))
    return compare(g_man, g_ref, names, table="model", title=title, rule=rule)
