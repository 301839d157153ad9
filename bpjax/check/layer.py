"""Check any ``jax.custom_vjp`` on its own: its hand-written backward against two oracles, no twin.

    table = check_layer(rmsnorm, x, g, argnames=["x", "g"])
    print(table)            # one row per floating-point argument (and the forward), ok or FAIL
    assert table.ok, table

Every ``jax.custom_vjp`` carries the primal it wraps (``f.fun``): that is the first oracle, pulled back
by ``jax.vjp``. The second needs no code at all: central finite differences of ``<cotangent, f.fun(x)>``
in float64 along random directions. Each floating-point argument's row holds three checks, and is ok
only where every one is:

* ``float32``: ``f``'s ``fwd`` and ``bwd`` rules on the inputs cast to float32, against ``jax.vjp`` of
  ``f.fun``, under the float32 rule (:data:`bpjax.check.TOLERANCES`);
* ``float64``: the same with the inputs cast to float64 inside ``jax.enable_x64``, under the float64
  rule, which catches the slips float32's rounding hides (a ``r ** 1.0001`` for ``r``);
* ``finite diff``: ``<d_arg, v>`` from the float64 backward against ``(L(x + h v) - L(x - h v)) / 2h``
  for random directions ``v``, within ``1e-6 · |d_arg|`` (plus the differences' own rounding); a
  direction that fails is tried again at ``h / 10``, ``h / 100`` and ``h / 1000``, where a kink of a
  piecewise layer (ReLU, max) that happened to lie within ``h`` of an input no longer does, while a
  wrong formula fails at every step.

The ``forward`` row compares the output of the ``fwd`` rule with ``f.fun``'s (float32 and float64).
``fwd`` and ``bwd`` are called directly, so a ``bwd`` that returns the wrong number of cotangents, or
one of the wrong shape or dtype, is a failing row naming the argument and both shapes, not JAX's
traceback. Integer arguments (token ids) and ``nondiff_argnums`` are held fixed.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .core import PRECISION, TOLERANCES, Table

FINITE_DIFF_RULE = 1e-6
"""Finite differences pass within ``1e-6 · |d_arg|₂`` (``<d_arg, v>``'s typical size for ``v`` drawn
from N(0, I)), plus their own rounding, ``ROUNDING · Σ|ct · f(x)| / h``: central differences in float64
with ``h = 1e-5 · (1 + max|x|)`` are good to ~1e-9 on smooth layers, and a wrong formula is off by O(1)."""
ROUNDING = 1e-14  # ~45 float64 epsilons of the sum <ct, f(x)>
STEP = 1e-5
DIRECTIONS = 3


@dataclass(frozen=True)
class Check:
    """One comparison of one argument's cotangent: ``what`` against which oracle, in which dtype."""

    what: str
    maxdiff: float
    bound: float

    @property
    def ok(self) -> bool:
        return math.isfinite(self.maxdiff) and self.maxdiff <= self.bound

    @property
    def multiple(self) -> float:
        """``maxdiff`` as a multiple of its bound: below 1 passes."""
        return self.maxdiff / self.bound if self.bound > 0 else math.inf


@dataclass(frozen=True)
class LayerRow:
    """One argument (or the forward): its checks, or the ``problem`` that kept them from running."""

    name: str
    shape: tuple
    checks: tuple = ()
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def worst(self) -> Check | None:
        return max(self.checks, key=lambda c: c.multiple, default=None)

    @property
    def maxdiff(self) -> float:
        return math.inf if self.problem else max((c.maxdiff for c in self.checks), default=math.inf)

    def __str__(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        if self.problem:
            return f"{self.name:15s} | {shape:>10s} | FAIL: {self.problem}"
        cells = " | ".join(f"{c.what} {c.multiple:9.3g}x" for c in self.checks)
        w = self.worst
        return (
            f"{self.name:15s} | {shape:>10s} | {cells} | maxdiff {w.maxdiff:.3e} ({w.what}) "
            f"| {'ok' if self.ok else 'FAIL'}"
        )

    def to_json(self) -> dict:
        checks = [
            {"what": c.what, "maxdiff": c.maxdiff if math.isfinite(c.maxdiff) else None, "bound": c.bound, "ok": c.ok}
            for c in self.checks
        ]
        return {"name": self.name, "shape": list(self.shape), "ok": self.ok, "problem": self.problem, "checks": checks}


class LayerTable(Table):
    """:func:`check_layer`'s rows: each column a check's maxdiff as a multiple of its bound (below 1
    passes). Prints as text, renders as HTML in Jupyter."""

    def __str__(self) -> str:
        text = super().__str__()
        bad = [r for r in self.rows if not r.ok]
        if bad and not bad[0].problem:
            w = bad[0].worst
            text += f"; first failing: {bad[0].name}, {w.what}: maxdiff {w.maxdiff:.3e} = {w.multiple:.3g}x its bound"
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        whats = list(dict.fromkeys(c.what for r in self.rows for c in r.checks))
        head = "".join(f"<th>{html.escape(w)} (× bound)</th>" for w in whats)
        body = []
        for r in self.rows:
            by = {c.what: c for c in r.checks}
            cells = "".join(f"<td>{by[w].multiple:.3g}</td>" if w in by else "<td></td>" for w in whats)
            note = f"FAIL: {html.escape(r.problem)}" if r.problem else ("ok" if r.ok else "FAIL")
            colour = "#e6f4ea" if r.ok else "#fce8e6"
            body.append(
                f"<tr style='background:{colour}'><td><code>{html.escape(r.name)}</code></td>"
                f"<td>{'×'.join(map(str, r.shape))}</td>{cells}<td>{note}</td></tr>"
            )
        return (
            f"<table><caption>{html.escape(self.title)}: {sum(r.ok for r in self.rows)}/{len(self.rows)} ok"
            f"</caption><tr><th>name</th><th>shape</th>{head}<th>ok</th></tr>" + "".join(body) + "</table>"
        )

    def worst(self) -> LayerRow:
        return max(self.rows, key=lambda r: math.inf if r.problem else r.worst.multiple)


def _floating(a) -> bool:
    return isinstance(a, jax.Array | np.ndarray) and jnp.issubdtype(a.dtype, jnp.floating)


def _float_leaves(x) -> list:
    """The array leaves of a container argument (a dict, list or tuple); none for anything else."""
    if not isinstance(x, dict | list | tuple):
        return []
    return [v for v in jax.tree.leaves(x) if isinstance(v, jax.Array | np.ndarray | float)]


def _bound(key: str, oracle) -> float:
    rel, absol = TOLERANCES[key]
    o = np.abs(np.asarray(oracle, np.float64))
    o = o[np.isfinite(o)]
    return rel * (float(o.max()) if o.size else 0.0) + absol


def _maxdiff(a, b) -> float:
    """The largest difference; where both hold the same non-finite value (a masked -inf) they agree."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if not (np.isfinite(a) | same).all():
        return math.inf
    with np.errstate(invalid="ignore"):  # -inf - -inf where both agree: masked by ``same``
        d = np.where(same, 0.0, np.abs(a - b))
    return float(d.max()) if d.size else 0.0


def _parts(f):
    if not isinstance(f, jax.custom_vjp):
        raise TypeError(
            f"check_layer checks a jax.custom_vjp (f = jax.custom_vjp(g); f.defvjp(fwd, bwd)); got "
            f"{type(f).__name__}. To compare two plain functions' gradients use bpjax.check_vjp"
        )
    if getattr(f, "symbolic_zeros", False):
        raise TypeError(f"{f.__name__} uses symbolic_zeros=True, whose fwd takes CustomVJPPrimal values: not supported")
    if getattr(f, "fwd", None) is None or getattr(f, "bwd", None) is None:
        raise TypeError(f"{f.__name__} is a jax.custom_vjp without its rule: call {f.__name__}.defvjp(fwd, bwd)")
    return f.fun, f.fwd, f.bwd, tuple(f.nondiff_argnums)


def _cotangent_like(out, key):
    """A random normal cotangent for each floating leaf of ``out`` (float32 draws: the same values in
    both dtypes), float0 zeros for the others."""
    leaves, tree = jax.tree_util.tree_flatten(out)
    cts = []
    for i, leaf in enumerate(leaves):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            cts.append(np.asarray(jax.random.normal(jax.random.fold_in(key, i), leaf.shape, jnp.float32)))
        else:
            cts.append(np.zeros(leaf.shape, jax.dtypes.float0))
    return jax.tree_util.tree_unflatten(tree, cts)


def _cast_ct(ct, out):
    return jax.tree_util.tree_map(
        lambda c, o: jnp.asarray(c, o.dtype) if jnp.issubdtype(o.dtype, jnp.floating) else c, ct, out
    )


def _raised(rule: str, e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{rule} raised {type(e).__name__}: {first}"


def _describe(tree) -> str:
    leaves = [f"{x.dtype}{list(x.shape)}" for x in jax.tree.leaves(tree)]
    return leaves[0] if len(leaves) == 1 else "(" + ", ".join(leaves) + ")"


def _one_dtype(f, args, floats, names, dtype, ct32):
    """``f``'s rules and the oracle in one dtype: ``(forward check, {name: (manual, oracle)}, problems)``."""
    fun, fwd, bwd, nondiff = _parts(f)
    a = [jnp.asarray(x, dtype) if i in floats else x for i, x in enumerate(args)]

    def primal(*xs):
        full = list(a)
        for i, x in zip(floats, xs, strict=True):
            full[i] = x
        return fun(*full)

    out, pullback = jax.vjp(primal, *[a[i] for i in floats])
    ct = _cast_ct(ct32, out)
    oracle = pullback(ct)
    key = "float64" if dtype == jnp.float64 else "float32"
    try:
        out_fwd, res = fwd(*a)
    except Exception as e:  # the user's rule: what it raised is the row, not a traceback
        return _raised("fwd", e), {}, {"bwd": "not run: fwd raised"}
    got, want = jax.tree.structure(out_fwd), jax.tree.structure(out)
    shapes = [(p.shape, p.dtype) for p in jax.tree.leaves(out_fwd)], [(q.shape, q.dtype) for q in jax.tree.leaves(out)]
    if got != want or shapes[0] != shapes[1]:
        return f"fwd's output is {_describe(out_fwd)}, the primal's {_describe(out)}", {}, {"bwd": "not run"}
    leaf_checks = [  # each output leaf against its own bound: a small aux output sets no rule for the main one
        Check(key, _maxdiff(p, q), _bound(key, q))
        for p, q in zip(jax.tree.leaves(out_fwd), jax.tree.leaves(out), strict=True)
        if jnp.issubdtype(q.dtype, jnp.floating)
    ] or [Check(key, 0.0, 1.0)]
    forward = max(leaf_checks, key=lambda c: c.multiple)
    try:
        raw = bwd(*[a[i] for i in nondiff], res, ct)
    except Exception as e:
        return forward, {}, {"bwd": _raised("bwd", e)}
    diff_pos = [i for i in range(len(args)) if i not in nondiff]  # the arguments bwd answers for
    if not isinstance(raw, tuple | list) or len(raw) != len(diff_pos):
        n = len(raw) if isinstance(raw, tuple | list) else "not a tuple of"
        want = ", ".join(names[i] for i in diff_pos)
        return forward, {}, {"bwd": f"bwd returned {n} cotangents for the {len(diff_pos)} arguments ({want})"}
    manual, problems = {}, {}
    for j, i in enumerate(floats):
        m = raw[diff_pos.index(i)]
        if m is None:  # JAX reads None as a zero cotangent
            m = jnp.zeros_like(a[i])
        m = jnp.asarray(m)
        if m.shape != a[i].shape or m.dtype != a[i].dtype:
            arg = f"{a[i].dtype}{list(a[i].shape)}"
            problems[names[i]] = f"bwd's cotangent for {names[i]} is {m.dtype}{list(m.shape)}, the argument {arg}"
            continue
        manual[names[i]] = (m, oracle[j])
    return forward, manual, problems


def _finite_differences(f, args, floats, names, ct32, manual, key, directions):
    """``{name: Check}``: the float64 backward's ``<d_arg, v>`` against central differences."""
    fun = f.fun
    a = [jnp.asarray(x, jnp.float64) if i in floats else x for i, x in enumerate(args)]
    out = fun(*a)
    # no cotangent where the output is not finite (a masked -inf): <ct, f(x)> stays a number
    ct = jax.tree.map(
        lambda c, o: jnp.where(jnp.isfinite(o), c, 0.0) if jnp.issubdtype(o.dtype, jnp.floating) else c,
        _cast_ct(ct32, out),
        out,
    )

    def terms(y):
        return [
            jnp.where(c != 0, c * o, 0.0)
            for c, o in zip(jax.tree.leaves(ct), jax.tree.leaves(y), strict=True)
            if jnp.issubdtype(o.dtype, jnp.floating)
        ]

    def L(full):
        return sum(jnp.sum(t) for t in terms(fun(*full)))

    L_abs = float(sum(jnp.sum(jnp.abs(t)) for t in terms(out)))
    checks = {}
    for i in floats:
        name = names[i]
        if name not in manual:
            continue
        m, o = (np.asarray(t, np.float64) for t in manual[name])
        scale = FINITE_DIFF_RULE * max(np.linalg.norm(m), np.linalg.norm(o))
        h0 = STEP * (1.0 + float(np.abs(np.asarray(a[i])).max(initial=0.0)))
        bound = max(scale + ROUNDING * L_abs / h0, 1e-300)
        worst = None
        for d in range(directions):
            v = np.asarray(jax.random.normal(jax.random.fold_in(key, 1000 * i + d), a[i].shape, jnp.float64))
            best = None
            for h in (h0, h0 / 10, h0 / 100, h0 / 1000):  # a kink (relu, max) within h of an input: not at h / 10^k
                plus, minus = list(a), list(a)
                plus[i], minus[i] = a[i] + h * v, a[i] - h * v
                diff = abs((float(L(plus)) - float(L(minus))) / (2 * h) - float(np.sum(m * v)))
                # the first step's bound throughout: a smaller step must not buy a looser rule
                c = Check("finite diff", diff if math.isfinite(diff) else math.inf, bound)
                best = c if best is None or c.multiple < best.multiple else best
                if best.ok:
                    break
            worst = best if worst is None or best.multiple > worst.multiple else worst
        checks[name] = worst
    return checks


def check_layer(
    f, *args, argnames=None, cotangent=None, key=None, directions: int = DIRECTIONS, title: str | None = None
) -> LayerTable:
    """Check the hand-written rule of ``f``, a ``jax.custom_vjp``, on ``args``: no plain twin needed.

    One row for the forward (``fwd``'s output against ``f.fun``'s) and one per floating-point argument
    (named by ``argnames``, default ``arg0``, ``arg1``, ...): its cotangent from ``f``'s ``bwd`` against
    ``jax.vjp`` of ``f.fun`` in float32 and in float64, and against central finite differences in float64
    along ``directions`` random directions (see the module's docstring for the rules). ``cotangent``:
    the upstream gradient (default: random normal, from ``key``, default ``jax.random.key(0)``). A row
    is ok only where every check is; ``table.ok`` only where every row is.
    """
    fun, _, _, nondiff = _parts(f)
    names = list(argnames) if argnames is not None else [f"arg{i}" for i in range(len(args))]
    if len(names) != len(args):
        raise ValueError(f"{len(names)} argnames for {len(args)} arguments")
    args = [
        jnp.asarray(x) if isinstance(x, np.ndarray | np.generic) or (isinstance(x, float) and i not in nondiff) else x
        for i, x in enumerate(args)
    ]
    for i, x in enumerate(args):  # a dict or tuple of arrays would be skipped, and a wrong cotangent pass
        if i not in nondiff and not _floating(x) and any(_floating(jnp.asarray(v)) for v in _float_leaves(x)):
            raise ValueError(
                f"check_layer checks array arguments: {names[i]} is a {type(x).__name__} of arrays; pass "
                "its arrays as arguments of their own (a wrapper taking them one by one)"
            )
    floats = [i for i, x in enumerate(args) if _floating(x) and i not in nondiff]
    if not floats:
        raise ValueError("check_layer needs a floating-point array argument to differentiate")
    key = jax.random.key(0) if key is None else key
    out = jax.eval_shape(lambda *xs: fun(*xs), *args) if not nondiff else fun(*args)
    ct32 = _cotangent_like(out, key) if cotangent is None else jax.tree.map(np.asarray, cotangent)
    results = {}
    with jax.default_matmul_precision(PRECISION):
        results["float32"] = _one_dtype(f, args, floats, names, jnp.float32, ct32)
        with jax.enable_x64(True):
            results["float64"] = _one_dtype(f, args, floats, names, jnp.float64, ct32)
            fd = _finite_differences(
                f, args, floats, names, ct32, results["float64"][1], jax.random.fold_in(key, 1), directions
            )
    fwd_shape = tuple(jax.tree.leaves(out)[0].shape)
    fwd_problem = next((r[0] for r in results.values() if isinstance(r[0], str)), "")
    fwd_checks = () if fwd_problem else tuple(r[0] for r in results.values())
    rows = [LayerRow("forward", fwd_shape, fwd_checks, fwd_problem)]
    problems = {**results["float64"][2], **results["float32"][2]}  # float32's words where both fail
    if "bwd" in problems:
        rows.append(LayerRow("bwd", (), (), problems["bwd"]))
    for i in floats:
        n = names[i]
        if n in problems:
            rows.append(LayerRow(n, tuple(args[i].shape), (), problems[n]))
            continue
        if "bwd" in problems:
            continue
        checks = []
        for k, (_, manual, _) in results.items():
            m, o = manual[n]
            checks.append(Check(k, _maxdiff(m, o), _bound(k, o)))
        checks.append(fd[n])
        rows.append(LayerRow(n, tuple(args[i].shape), tuple(checks)))
    return LayerTable(title or f"check_layer: {getattr(f, '__name__', 'f').removesuffix('_plain')}", rows)
