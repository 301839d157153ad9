"""Training diagnostics recorded inside the jitted loop, and the hand-written backward checked while
the model trains.

makemore part 3 ("activations, gradients, BatchNorm") teaches what to look at while a deep network
trains; ``--diagnose-every K`` records it every K steps, on device, inside the ``lax.scan`` of the
training chunk (no host round trip per record):

* for every nonlinearity's output ``t`` (tanh; GELU or a recurrence's hidden states in the other
  models; ``Model.probes`` names them): mean, std, the saturated share ``mean(|t| > 0.97)`` and a
  histogram; and the same (without saturation) for the gradient flowing back into ``t``;
* for every 2-D weight ``W`` (the lecture's ``p.ndim == 2``; ``[1, H]`` gains are not weights):
  the gradient's mean, std and histogram, and the **grad:data** ratio ``std(dW) / std(W)``;
* for every parameter: the **update:data** ratio ``log10(std(update) / std(W))`` of the update
  the optimizer applies at that step (the lecture's ``ud``; NaN where ``std(W) == 0``, as batch
  norm's gain and bias start; about -3 is healthy).

``--verify-every K`` computes, on the current parameters and batch, the hand-written gradients
(``jax.grad`` of ``loss_manual``, the very ones the step applies under ``--grad manual``) and the
oracle (``jax.grad`` of the plain ``loss``), and records each parameter's worst difference and
``max|oracle|``. A row that breaks :mod:`bpjax.check`'s pass rule (float32: ``maxdiff <= 1e-4 ·
max|oracle| + 1e-7``) stops the run with :class:`~bpjax.errors.VerificationFailed`, naming the step
and the parameter; the last good checkpoint is kept. The notebook's last training loop reused
batch-norm tensors of an earlier step in its backward; this check stops such a run at its first step.

Histograms have :data:`BINS` bins over each record's ``[min, max]`` (kept beside the counts).
Statistics use the unbiased std, as the lecture's ``t.std()``.

The records live in ``diagnostics.npz`` in the run directory (keys in :data:`KEYS`), written with
the checkpoint; :func:`figure` draws the lecture's plots (``diagnostics.png``; ``bpjax diagnose
--run DIR`` redraws them), :func:`compare_figure` puts several runs side by side.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .check import TOLERANCES, precise, tree_names
from .errors import CheckpointError, VerificationFailed

BINS = 50
SATURATED = 0.97
FILE = "diagnostics.npz"
FIGURE = "diagnostics.png"

KEYS = {
    "probe_names": "[A] the recorded nonlinearities' names (the model's taps), in forward order",
    "weight_names": "[W] the 2-D weights' names (pytree paths, '/'-joined)",
    "param_names": "[P] every parameter's name",
    "diag_step": "[R] the step of each diagnostics record (before that step's update)",
    "act_mean": "[R, A]", "act_std": "[R, A]", "act_saturated": "[R, A] share of |t| > 0.97",
    "act_hist": "[R, A, BINS] counts", "act_range": "[R, A, 2] the histogram's (min, max)",
    "act_grad_mean": "[R, A] gradient into each nonlinearity's output", "act_grad_std": "[R, A]",
    "act_grad_hist": "[R, A, BINS]", "act_grad_range": "[R, A, 2]",
    "weight_std": "[R, W]", "grad_mean": "[R, W]", "grad_std": "[R, W]",
    "grad_data": "[R, W] std(grad) / std(weight); NaN where the weight has no spread (a bigram table of zeros)",
    "grad_hist": "[R, W, BINS]", "grad_range": "[R, W, 2]",
    "update_data": "[R, P] log10(std(update) / std(parameter)); NaN where the parameter has no spread",
    "verify_step": "[Q] the step of each verification",
    "verify_maxdiff": "[Q, P] max |hand-written - jax.grad| per parameter",
    "verify_scale": "[Q, P] max |jax.grad| per parameter",
    "verify_bound": "[Q, P] the pass rule's bound: rel * scale + abs",
    "verify_ok": "[Q, P] maxdiff <= bound (maxdiff is +inf where the hand-written gradient is not finite)",
}
"""``diagnostics.npz``'s arrays (R diagnostics records, Q verifications)."""


# --------------------------------------------------------------------------------------------
# Statistics, on device
# --------------------------------------------------------------------------------------------
def summarize(x):
    """``(mean, std, min, max, saturated share)`` of all of ``x``, float32, in one pass (one
    variadic reduce; the unbiased std). The sums are of ``d = x - x[0]``: a shift that keeps the
    variance and avoids cancellation when the mean is far from 0 (a batch-norm gain's 1)."""
    x = jnp.ravel(x).astype(jnp.float32)
    d = x - x[0]
    n = x.size
    zero = jnp.float32(0)
    s1, s2, lo, hi, sat = jax.lax.reduce(
        (d, d * d, x, x, (jnp.abs(x) > SATURATED).astype(jnp.float32)), (zero, zero, jnp.float32(jnp.inf),
                                                                          jnp.float32(-jnp.inf), zero),
        lambda a, b: (a[0] + b[0], a[1] + b[1], jnp.minimum(a[2], b[2]), jnp.maximum(a[3], b[3]), a[4] + b[4]), (0,))
    var = (s2 - s1 * s1 / n) / (n - 1) if n > 1 else jnp.float32(jnp.nan)
    return x[0] + s1 / n, jnp.sqrt(jnp.maximum(var, 0.0)), lo, hi, sat / n


def histograms(xs: list, ranges, bins: int = BINS):
    """Counts ``[len(xs), bins]``: each array of ``xs`` counted into ``bins`` equal bins over its
    ``ranges[i] = (min, max)``, the lecture's ``torch.histogram`` before its density scaling. One
    scatter-add for all of them: XLA's CPU scatter is serial with a fixed cost per call."""
    if not xs:
        return jnp.zeros((0, bins), jnp.float32)
    idx = []
    for i, x in enumerate(xs):
        lo, hi = ranges[i, 0], ranges[i, 1]
        width = jnp.where(hi > lo, (hi - lo) / bins, 1.0)
        idx.append(jnp.clip(jnp.floor((jnp.ravel(x).astype(jnp.float32) - lo) / width), 0, bins - 1)
                   .astype(jnp.int32) + i * bins)
    return jnp.zeros((len(xs) * bins,), jnp.float32).at[jnp.concatenate(idx)].add(1.0).reshape(len(xs), bins)


def histogram(x, bins: int = BINS):
    """``(counts [bins], range [2])`` of one array over ``[min(x), max(x)]``."""
    _, _, lo, hi, _ = summarize(x)
    rng = jnp.stack([lo, hi])
    return histograms([x], rng[None], bins)[0], rng


def _std(x):
    """The unbiased std of all of ``x`` alone: :func:`summarize`'s shifted sums without its min, max
    and saturation (the parameters and updates of every record need only this)."""
    x = jnp.ravel(x).astype(jnp.float32)
    d = x - x[0]
    n = x.size
    s1, s2 = jax.lax.reduce((d, d * d), (jnp.float32(0), jnp.float32(0)), lambda a, b: (a[0] + b[0], a[1] + b[1]),
                            (0,))
    return jnp.sqrt(jnp.maximum((s2 - s1 * s1 / n) / (n - 1), 0.0)) if n > 1 else jnp.float32(jnp.nan)


def probe_shapes(spec, params, state, X, Y, manual: bool) -> dict:
    """``{name: ShapeDtypeStruct}`` of the model's nonlinearity outputs (``spec.probes``) on a batch
    like ``X, Y``, in forward order, from one abstract forward; ``{}`` without ``loss_tapped``."""
    found = {}

    def tap(name, v):
        if spec.probes(name):
            found[name] = jax.ShapeDtypeStruct(v.shape, v.dtype)
        return v

    if spec.loss_tapped is not None:
        jax.eval_shape(lambda p: spec.loss_tapped(p, state, X, Y, tap, manual)[0], params)
    return found


def is_weight(leaf) -> bool:
    """A 2-D weight, as the lecture's ``p.ndim == 2`` picks them (a ``[1, H]`` gain is not one)."""
    return leaf.ndim == 2 and min(leaf.shape) > 1


def names_of(params) -> tuple[list[str], list[str]]:
    """``(weight_names, param_names)`` of a parameter pytree."""
    named = tree_names(params)
    return [k for k, v in named.items() if is_weight(v)], list(named)


def record(acts: dict, d_acts: dict, params, grads, updates) -> dict:
    """One diagnostics record (every leaf float32; keys of :data:`KEYS`): ``acts``/``d_acts`` the
    nonlinearities' outputs and the gradients into them (forward order), ``params`` before the
    update, ``grads`` the gradients the step used, ``updates`` what the optimizer adds.

    One pass over each array (:func:`summarize`) and one scatter for every histogram: in a
    ``lax.scan`` on the CPU each operation has a fixed cost, so the record is built from few."""
    p, g, u = tree_names(params), tree_names(grads), tree_names(updates)
    weights = [k for k, v in p.items() if is_weight(v)]
    groups = {"act": list(acts.values()), "act_grad": list(d_acts.values()), "grad": [g[k] for k in weights]}
    arrays = [x for xs in groups.values() for x in xs]
    stats = jnp.stack([jnp.stack(summarize(x)) for x in arrays]) if arrays else jnp.zeros((0, 5), jnp.float32)
    counts = histograms(arrays, stats[:, 2:4])  # one scatter for the record
    out, i = {}, 0
    for key, vals in groups.items():
        st = stats[i:i + len(vals)]
        out.update({key + "_hist": counts[i:i + len(vals)], key + "_range": st[:, 2:4], key + "_mean": st[:, 0],
                    key + "_std": st[:, 1]})
        i += len(vals)
    out["act_saturated"] = stats[:len(acts), 4]
    p_std = {k: _std(v) for k, v in p.items()}
    w_std = jnp.stack([p_std[k] for k in weights]) if weights else jnp.zeros((0,), jnp.float32)
    out.update(weight_std=w_std, grad_data=jnp.where(w_std > 0, out["grad_std"] / jnp.where(w_std > 0, w_std, 1.0),
                                                     jnp.nan))
    ps = jnp.stack(list(p_std.values()))
    us = jnp.stack([_std(u[k]) for k in p])
    out["update_data"] = jnp.where(ps > 0, jnp.log10(us / jnp.where(ps > 0, ps, 1.0)), jnp.nan)
    return out


def verification(manual, oracle) -> dict:
    """Per parameter: ``maxdiff`` (max |manual - oracle|; +inf where the hand-written gradient is not
    finite, so that it fails whatever the bound, as in :func:`bpjax.check.compare_arrays`) and
    ``scale`` (max |oracle|), float32."""
    m, o = tree_names(manual), tree_names(oracle)
    diff = [jnp.where(jnp.isfinite(m[k]).all(), jnp.max(jnp.abs(m[k] - o[k])), jnp.inf).astype(jnp.float32)
            for k in o]
    scale = [jnp.max(jnp.abs(o[k])).astype(jnp.float32) for k in o]
    return {"maxdiff": jnp.stack(diff), "scale": jnp.stack(scale)}


# --------------------------------------------------------------------------------------------
# The training chunk with records, and the verification between chunks
# --------------------------------------------------------------------------------------------
def head_steps(a: int, length: int, every: int) -> int:
    """Plain steps at the start of a chunk from step ``a`` before its first recorded step."""
    return min((-a) % every, length)


def recorded_chunk_fn(spec, grad: str, tx: optax.GradientTransformation, batch_size: int, diagnose_every: int,
                      unroll: int = 2, mesh=None) -> Callable:
    """The training chunk of :func:`bpjax.step.train_chunk_fn` with diagnostics and verification:
    ``chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length, head, verify)`` ->
    ``(params, opt_state, state, losses, finite, extras)``.

    With ``diagnose_every`` > 0, every step ``s`` with ``s % diagnose_every == 0`` is recorded: it
    computes its gradients through zero taps on the model's nonlinearities (the same values, bit
    for bit, where ``loss_tapped`` computes as the training loss does; bengio's taps see every
    position, its training loss the packed ones: float32 rounding apart. The taps' gradients are
    the gradients flowing into those outputs) and :func:`record`.
    The other steps are the plain step. The chunk is ``head`` plain steps (static: to the first
    multiple of ``diagnose_every``), a ``lax.scan`` over groups of one recorded step and
    ``diagnose_every - 1`` plain ones (an inner scan), then a partial group: no ``lax.cond``, and
    the plain steps are the very program of the plain chunk. ``extras["records"]`` stacks one
    record per recorded step, with its ``step``.

    With ``verify`` (static: see :func:`static_args`), ``extras["verify"]`` holds one
    :func:`verification` (and its ``step``) per check: ``jax.grad`` of the model's ``loss_manual``
    (the hand-written backward) against ``jax.grad`` of its plain ``loss`` (the oracle), on the
    parameters and minibatch of the step about to be taken. With ``verify = V`` > 0 the chunk
    (``head`` 0, a multiple of V long, from a multiple of V) is a ``lax.scan`` over cycles of V
    steps, each checked at its first step, the diagnostics groups inside (V must be a multiple of
    ``diagnose_every``); with -1, one check at the chunk's first step. No ``lax.cond`` and no call
    of its own: on the CPU either costs more than the check.
    """
    from .step import all_finite, gradient_fn, sample_batches, train_step_fn

    every = diagnose_every
    manual = grad == "manual"
    plain_step = train_step_fn(gradient_fn(spec, grad), tx, mesh)
    constrain = _row_constraint(mesh)
    # the verification's two gradients, at the checks' matrix-product precision (not TF32 on a GPU)
    oracle_grad = precise(jax.grad(lambda p, s, X, Y: spec.loss(p, s, X, Y)[0]))
    manual_grad = precise(jax.grad(lambda p, s, X, Y: spec.loss_manual(p, s, X, Y)[0]))

    def grads_with_probes(params, state, X, Y):
        zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in probe_shapes(spec, params, state, X, Y, manual).items()}
        if not zeros:
            (loss, new_state), grads = gradient_fn(spec, grad)(params, state, X, Y)
            return loss, new_state, grads, {}, {}

        def f(params, taps):
            acts = {}

            def tap(name, v):
                if name in taps:
                    acts[name] = v
                    return v + taps[name]
                return v

            loss, new_state = spec.loss_tapped(params, state, X, Y, tap, manual)
            return loss, (new_state, acts)

        (loss, (new_state, acts)), (grads, d_taps) = jax.value_and_grad(f, (0, 1), has_aux=True)(params, zeros)
        return loss, new_state, grads, acts, {k: d_taps[k] for k in acts}  # forward order

    layout = []  # (key, shape) of the record's fields in its packed vector, set when first traced

    def recorded(carry, batch, s):
        params, opt_state, state = carry
        X, Y = constrain(batch)
        loss, new_state, grads, acts, d_acts = grads_with_probes(params, state, X, Y)
        updates, opt_state = tx.update(grads, opt_state, params)
        rec = record(acts, d_acts, params, grads, updates)
        layout[:] = [(k, v.shape) for k, v in rec.items()]
        packed = jnp.concatenate([jnp.ravel(v) for v in rec.values()])  # one stacked output, not 20
        return (optax.apply_updates(params, updates), opt_state, new_state), loss, (s, packed)

    def unpack(steps, packed):
        out, i = {"step": steps}, 0
        for k, shape in layout:
            n = math.prod(shape)
            out[k] = packed[:, i:i + n].reshape(packed.shape[0], *shape)
            i += n
        return out

    def plain_scan(carry, batches):
        return jax.lax.scan(plain_step, carry, batches, unroll=unroll)

    def run(carry, batches, steps, head: int):
        """``head`` plain steps, then groups of a recorded step and ``every - 1`` plain ones, then a
        partial group: ``(carry, losses, packed records (steps [R], [R, F]) or None)``."""
        n = steps.shape[0]
        take = lambda i, j: jax.tree_util.tree_map(lambda a: a[i:j], batches)  # noqa: E731
        if not every:
            carry, ls = plain_scan(carry, batches)
            return carry, ls, None
        losses, records = [], []
        if head:
            carry, ls = plain_scan(carry, take(0, head))
            losses.append(ls)
        full, rem = divmod(n - head, every)
        if full:
            end = head + full * every
            grouped = jax.tree_util.tree_map(lambda a: a[head:end].reshape(full, every, *a.shape[1:]), batches)

            def group(carry, xs):
                b, s = xs
                carry, l0, rec = recorded(carry, jax.tree_util.tree_map(lambda a: a[0], b), s)
                if every == 1:
                    return carry, (l0[None], rec)
                carry, ls = plain_scan(carry, jax.tree_util.tree_map(lambda a: a[1:], b))
                return carry, (jnp.concatenate([l0[None], ls]), rec)

            carry, (ls, rec) = jax.lax.scan(group, carry, (grouped, steps[head:end:every]))
            losses.append(ls.reshape(-1))
            records.append(rec)
        if rem:
            i = head + full * every
            carry, l0, rec = recorded(carry, jax.tree_util.tree_map(lambda a: a[i], batches), steps[i])
            losses.append(l0[None])
            records.append(jax.tree_util.tree_map(lambda x: x[None], rec))
            if rem > 1:
                carry, ls = plain_scan(carry, take(i + 1, n))
                losses.append(ls)
        if not records:  # no recorded step here: an empty stack of the same structure
            shape = jax.eval_shape(recorded, carry, jax.tree_util.tree_map(lambda a: a[0], batches), steps[0])[2]
            records = [jax.tree_util.tree_map(lambda x: jnp.zeros((0, *x.shape), x.dtype), shape)]
        return carry, jnp.concatenate(losses), jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *records)

    def verify_at(carry, batches):
        params, _, state = carry
        X0, Y0 = constrain(jax.tree_util.tree_map(lambda a: a[0], batches))
        return verification(manual_grad(params, state, X0, Y0), oracle_grad(params, state, X0, Y0))

    def chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length, head, verify):
        steps = step0 + jnp.arange(length, dtype=jnp.int32)
        batches = sample_batches(jax.random.wrap_key_data(key_data), steps, Xtr, Ytr, batch_size)
        carry, extras = (params, opt_state, state), {}
        if verify > 0:  # cycles of `verify` steps, each checked at its first step
            cycles = length // verify
            split = lambda a: a.reshape(cycles, verify, *a.shape[1:])  # noqa: E731

            def cycle(carry, xs):
                b, s = xs
                check = verify_at(carry, b)
                carry, ls, rec = run(carry, b, s, 0)
                return carry, (ls, rec, {"step": s[0], **check})

            carry, (losses, rec, checks) = jax.lax.scan(cycle, carry, (jax.tree_util.tree_map(split, batches),
                                                                       split(steps)))
            losses = losses.reshape(-1)
            rec = None if rec is None else jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), rec)
            extras["verify"] = checks
        else:
            if verify == -1:  # one check, at the first step
                extras["verify"] = jax.tree_util.tree_map(lambda a: a[None], {"step": steps[0],
                                                                                **verify_at(carry, batches)})
            carry, losses, rec = run(carry, batches, steps, head)
        if rec is not None:
            extras["records"] = unpack(*rec)
        params, opt_state, state = carry
        return params, opt_state, state, losses, all_finite(params), extras

    return chunk


def _row_constraint(mesh):
    if mesh is None:
        return lambda batch: batch
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from .distributed import AXIS

    rows = NamedSharding(mesh, P(AXIS))
    return lambda batch: jax.lax.with_sharding_constraint(batch, rows)


def make_recorded_chunk(spec, grad, tx, batch_size: int, diagnose_every: int, mesh=None):
    """:func:`recorded_chunk_fn`, jitted with ``length``, ``head`` and ``verify`` static (replicated
    over ``mesh``)."""
    fn = recorded_chunk_fn(spec, grad, tx, batch_size, diagnose_every, mesh=mesh)
    if mesh is None:
        return jax.jit(fn, static_argnums=(7, 8, 9))
    from .distributed import replicated

    return jax.jit(fn, static_argnums=(7, 8, 9), in_shardings=replicated(mesh), out_shardings=replicated(mesh))


def static_args(a: int, b: int, diagnose_every: int, verify_every: int) -> tuple[int, int, int]:
    """The recorded chunk's static arguments for steps ``[a, b)`` (a piece of
    :func:`verified_segments`): ``(length, head, verify)``, ``verify`` 0 (no check), -1 (one check,
    at step ``a``) or ``verify_every`` (a check every ``verify_every`` steps from ``a``)."""
    head = head_steps(a, b - a, diagnose_every) if diagnose_every else 0
    verify = 0
    if verify_every and a % verify_every == 0:
        verify = verify_every if (b - a) % verify_every == 0 else -1
    return b - a, head, verify


def chunk_segments(cfg, start: int, end: int) -> list[tuple[int, int]]:
    """Training's chunks from ``start`` to ``end`` with diagnostics or checks: ``cfg.chunk`` steps
    rounded down to a multiple of ``verify_every`` (else ``diagnose_every``), so that every chunk
    starts on one and a run compiles one program (not one per ``head``); cut at every eval, then
    split by :func:`verified_segments`."""
    from .step import chunk_length, segments

    n = chunk_length(cfg)
    p = cfg.verify_every or cfg.diagnose_every
    if p and p <= n:
        n = n // p * p
    return verified_segments(segments(start, end, [n, cfg.eval_every]), cfg.verify_every)


def verified_segments(segments: list[tuple[int, int]], verify_every: int) -> list[tuple[int, int]]:
    """Training's chunks ``[a, b)`` split so that each holds its checks where the chunk can make
    them: up to the first multiple of ``verify_every`` (no check inside), then whole cycles of
    ``verify_every`` steps (a check at each start), then the rest (a check at its start)."""
    if not verify_every:
        return list(segments)
    out = []
    for a, b in segments:
        first = min(-(-a // verify_every) * verify_every, b)
        last = max(b // verify_every * verify_every, first)
        out += [(x, y) for x, y in ((a, first), (first, last), (last, b)) if y > x]
    return out


# --------------------------------------------------------------------------------------------
# The records on the host
# --------------------------------------------------------------------------------------------
class Recorder:
    """The records of a run, gathered chunk by chunk on the host; ``arrays()`` is ``diagnostics.npz``.

    ``add(records)`` keeps a chunk's diagnostics records; ``add_verification(step, result)`` keeps a
    verification and returns its first failing row as ``(parameter, maxdiff, bound, (rel, abs))``
    (None when every row passes the rule of its parameter's dtype, ``(rel, abs)``).
    """

    def __init__(self, probe_names, weight_names, param_names, dtypes: list[str]):
        self.probe_names, self.weight_names, self.param_names = list(probe_names), list(weight_names), list(param_names)
        rules = [TOLERANCES["float64" if d == "float64" else "float32"] for d in dtypes]
        self.rel = np.array([r for r, _ in rules], np.float64)
        self.abs = np.array([a for _, a in rules], np.float64)
        self.diag: list[dict] = []
        self.verify: list[dict] = []

    @classmethod
    def for_model(cls, spec, params, state, X, Y, manual: bool = True) -> Recorder:
        """The names a run of ``spec`` records, read off one abstract forward on a batch like ``X, Y``."""
        probes = list(probe_shapes(spec, params, state, X, Y, manual))
        weights, names = names_of(params)
        dtypes = [str(np.dtype(v.dtype)) for v in tree_names(params).values()]
        return cls(probes, weights, names, dtypes)

    def add(self, records: dict) -> None:
        self.diag.append({k: np.asarray(v) for k, v in records.items()})

    def add_verification(self, step: int, result: dict):
        maxdiff = np.asarray(result["maxdiff"], np.float64)
        scale = np.asarray(result["scale"], np.float64)
        bound = self.rel * scale + self.abs
        ok = maxdiff <= bound  # NaN or inf (a non-finite hand-written gradient, see verification) fails
        self.verify.append({"verify_step": np.array([step]), "verify_maxdiff": maxdiff[None],
                            "verify_scale": scale[None], "verify_bound": bound[None], "verify_ok": ok[None]})
        if ok.all():
            return None
        p = int(np.argmin(ok))
        return self.param_names[p], float(maxdiff[p]), float(bound[p]), (float(self.rel[p]), float(self.abs[p]))

    def truncate(self, step: int) -> None:
        """Drop records of steps ``>= step`` (a resumed run recomputes them)."""
        a = self.arrays()
        d_keep, v_keep = a["diag_step"] < step, a["verify_step"] < step
        self.diag = [{("step" if k == "diag_step" else k): a[k][d_keep] for k in _DIAG_KEYS}]
        self.verify = [{k: a[k][v_keep] for k in _VERIFY_KEYS}]

    def arrays(self) -> dict:
        """Every key of :data:`KEYS`, stacked over the records so far."""
        sizes = {"A": len(self.probe_names), "W": len(self.weight_names), "P": len(self.param_names), "R": 0, "Q": 0}
        out = {k: np.array(getattr(self, k), dtype=str) for k in ("probe_names", "weight_names", "param_names")}
        for k, dims in {"diag_step": ("R",), "verify_step": ("Q",), **_SHAPES}.items():
            shape = tuple(sizes.get(d, d) for d in dims)
            src = self.verify if k.startswith("verify_") else self.diag
            key = "step" if k == "diag_step" else k
            parts = [d[key] for d in src if key in d]
            dtype = np.int64 if k.endswith("step") else bool if k == "verify_ok" else np.float64 if \
                k.startswith("verify_") else np.float32
            out[k] = np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)
        return out

    def continue_from(self, a: dict, step: int) -> None:
        """Take the records of an earlier part of this run (``diagnostics.npz``'s arrays) before ``step``."""
        for k, mine in (("probe_names", self.probe_names), ("weight_names", self.weight_names),
                        ("param_names", self.param_names)):
            if a[k].tolist() != mine:
                raise CheckpointError(f"{FILE} records other {k.replace('_', ' ')} than this run's model; "
                                      "it belongs to another run (move it away to start the records afresh)")
        self.diag = [{("step" if k == "diag_step" else k): a[k] for k in _DIAG_KEYS}]
        self.verify = [{k: a[k] for k in _VERIFY_KEYS}]
        self.truncate(step)


_DIAG_KEYS = [k for k in KEYS if not k.startswith("verify_") and not k.endswith("_names")]
_SHAPES = {"act_mean": ("R", "A"), "act_std": ("R", "A"), "act_saturated": ("R", "A"), "act_hist": ("R", "A", BINS),
           "act_range": ("R", "A", 2), "act_grad_mean": ("R", "A"), "act_grad_std": ("R", "A"),
           "act_grad_hist": ("R", "A", BINS), "act_grad_range": ("R", "A", 2), "weight_std": ("R", "W"),
           "grad_mean": ("R", "W"), "grad_std": ("R", "W"), "grad_data": ("R", "W"), "grad_hist": ("R", "W", BINS),
           "grad_range": ("R", "W", 2), "update_data": ("R", "P"), "verify_maxdiff": ("Q", "P"),
           "verify_scale": ("Q", "P"), "verify_bound": ("Q", "P"), "verify_ok": ("Q", "P")}
"""Every array's dimensions: R records, Q checks, A nonlinearities, W weights, P parameters."""
_VERIFY_KEYS = [k for k in KEYS if k.startswith("verify_")]


def save(run_dir: Path, recorder: Recorder) -> None:
    """``diagnostics.npz``, written atomically."""
    from .io import atomic_savez

    atomic_savez(Path(run_dir) / FILE, **recorder.arrays())


def load(path) -> dict:
    """``diagnostics.npz``'s arrays (a run directory or the file): every key of :data:`KEYS`, shapes
    checked; :class:`~bpjax.errors.CheckpointError` (one line) when missing or malformed."""
    p = Path(path)
    f = p / FILE if p.is_dir() else p
    if not f.is_file():
        where = f"run directory {str(p)!r} has no {FILE}" if p.is_dir() else f"{str(f)!r} does not exist"
        raise CheckpointError(f"{where}: train with --diagnose-every K (or --verify-every K) to record one")
    try:
        with np.load(f, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            a = {k: z[k] for k in KEYS if k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        missing = None
    if missing is None or missing:
        what = "not a readable .npz archive" if missing is None else f"it lacks {', '.join(missing[:3])}"
        raise CheckpointError(f"{f} is not a bpjax diagnostics file ({what}); move it away (training records "
                              "afresh from the checkpoint's step)")
    for k in ("probe_names", "weight_names", "param_names", "diag_step", "verify_step"):
        kind = "U" if k.endswith("names") else "iu"
        if a[k].ndim != 1 or a[k].dtype.kind not in kind:
            raise CheckpointError(f"{f} is malformed: {k} is {a[k].dtype} of shape {a[k].shape}, expected a list")
    sizes = {"A": len(a["probe_names"]), "W": len(a["weight_names"]), "P": len(a["param_names"]),
             "R": len(a["diag_step"]), "Q": len(a["verify_step"])}
    for k, shape in _SHAPES.items():
        want = tuple(sizes.get(d, d) for d in shape)
        if a[k].shape != want:
            raise CheckpointError(f"{f} is malformed: {k} has shape {a[k].shape}, expected {want}")
    return a


def summary(a: dict, at: int | None = None) -> str:
    """The lecture's printed statistics at one record (default the last): per nonlinearity its mean,
    std and saturated share, and its gradient's mean and std; per weight grad:data and update:data;
    and the verifications' worst row."""
    lines = []
    if len(a["diag_step"]):
        i = _record_index(a, at)
        lines.append(f"diagnostics at step {int(a['diag_step'][i]):,} ({len(a['diag_step']):,} records)")
        for j, n in enumerate(a["probe_names"]):
            lines.append(f"  {n:>12s}: mean {a['act_mean'][i, j]:+.2f}, std {a['act_std'][i, j]:.2f}, "
                         f"saturated {100 * a['act_saturated'][i, j]:5.2f}% | grad mean "
                         f"{a['act_grad_mean'][i, j]:+.2e}, std {a['act_grad_std'][i, j]:.2e}")
        pidx = {n: k for k, n in enumerate(a["param_names"])}
        for j, n in enumerate(a["weight_names"]):
            ud = a["update_data"][i, pidx[n]]
            lines.append(f"  {n:>12s}: grad:data {a['grad_data'][i, j]:.3e} | update:data log10 {ud:+.2f}")
    if len(a["verify_step"]):
        ratio = a["verify_maxdiff"] / a["verify_bound"]
        q, p = np.unravel_index(np.nanargmax(np.where(np.isnan(ratio), np.inf, ratio)), ratio.shape)
        passed = int(a["verify_ok"].all(1).sum())
        lines.append(f"verification: {passed:,}/{len(a['verify_step']):,} checks passed (steps "
                     f"{int(a['verify_step'][0]):,}..{int(a['verify_step'][-1]):,}); worst row "
                     f"{a['param_names'][p]} at step {int(a['verify_step'][q]):,}: maxdiff "
                     f"{a['verify_maxdiff'][q, p]:.2e} = {ratio[q, p]:.2g} x the bound")
    return "\n".join(lines) or "no records"


def _record_index(a: dict, at: int | None) -> int:
    steps = a["diag_step"]
    if at is None:
        return len(steps) - 1
    i = int(np.searchsorted(steps, at, side="right")) - 1
    if i < 0:
        raise CheckpointError(f"no diagnostics record at or before step {at:,}; the first is at {int(steps[0]):,}")
    return i


# --------------------------------------------------------------------------------------------
# Figures: the lecture's plots
# --------------------------------------------------------------------------------------------
PANELS = ("act", "act_grad", "grad", "update_data", "saturated", "verify")
"""The panels of :func:`figure`: activation histograms, histograms of the gradients into them, the
weights' gradient histograms (grad:data in the legend), update:data over training against the
-3 line, the saturated share over training, and the verifications' maxdiff / bound."""

_TITLES = {"act": "activation distribution", "act_grad": "gradient distribution (into each nonlinearity)",
           "grad": "weights gradient distribution", "update_data": "update:data ratio (log10)",
           "saturated": "saturated share (|t| > 0.97)", "verify": "hand-written vs jax.grad: maxdiff / bound"}


def _density(counts, rng):
    edges = np.linspace(rng[0], rng[1], len(counts) + 1)
    width = (rng[1] - rng[0]) / len(counts) if rng[1] > rng[0] else 1.0
    total = counts.sum()
    return (edges[:-1] + edges[1:]) / 2, counts / (total * width) if total else counts


def draw(ax, a: dict, panel: str, at: int | None = None, legend: bool = True) -> None:
    """Draw one panel of :data:`PANELS` for the records ``a`` on a matplotlib ``ax``."""
    ax.set_title(_TITLES[panel], fontsize=9)
    empty = (panel == "verify" and not len(a["verify_step"])) or (panel != "verify" and not len(a["diag_step"]))
    if panel in ("act", "act_grad", "saturated") and not len(a["probe_names"]):
        empty = True
    if empty:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    if panel in ("act", "act_grad"):
        i = _record_index(a, at)
        for j, n in enumerate(a["probe_names"]):
            x, y = _density(a[panel + "_hist"][i, j], a[panel + "_range"][i, j])
            label = (f"{n}: mean {a[panel + '_mean'][i, j]:+.2f}, std {a[panel + '_std'][i, j]:.2g}"
                     + (f", sat {100 * a['act_saturated'][i, j]:.1f}%" if panel == "act" else ""))
            ax.plot(x, y, label=label)
        ax.set_xlabel(f"value at step {int(a['diag_step'][i]):,}")
    elif panel == "grad":
        i = _record_index(a, at)
        for j, n in enumerate(a["weight_names"]):
            x, y = _density(a["grad_hist"][i, j], a["grad_range"][i, j])
            ax.plot(x, y, label=f"{n}: std {a['grad_std'][i, j]:.2e}, grad:data {a['grad_data'][i, j]:.2e}")
        ax.set_xlabel(f"gradient at step {int(a['diag_step'][i]):,}")
    elif panel == "update_data":
        pidx = {n: k for k, n in enumerate(a["param_names"])}
        for n in a["weight_names"]:
            ax.plot(a["diag_step"], a["update_data"][:, pidx[n]], label=n)
        ax.axhline(-3, color="k", ls="--", lw=1, label="1e-3")
        ax.set_xlabel("step")
    elif panel == "saturated":
        for j, n in enumerate(a["probe_names"]):
            ax.plot(a["diag_step"], 100 * a["act_saturated"][:, j], label=n)
        ax.set_ylabel("%")
        ax.set_xlabel("step")
    else:
        ratio = a["verify_maxdiff"] / a["verify_bound"]
        worst = np.nanmax(np.where(np.isnan(ratio), np.inf, ratio), axis=1)
        ax.semilogy(a["verify_step"], worst, "o-", ms=3, label="worst parameter")
        ax.axhline(1, color="r", ls="--", lw=1, label="fails above")
        ax.set_xlabel("step")
    if panel in ("act_grad", "grad"):
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    if panel in ("update_data", "saturated", "verify"):  # steps: few ticks, 200,000 is "200k"
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if abs(v) >= 10_000 else f"{v:g}"))
    if legend:
        ax.legend(fontsize=6)
    ax.grid(alpha=0.3)


def figure(a: dict, at: int | None = None, title: str = "", panels=PANELS):
    """The lecture's figures for one run's records, in one matplotlib ``Figure`` (2 x 3 panels by
    default); histograms at the record of step ``at`` (default the last). None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(5.5 * cols, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        draw(ax, a, panel, at)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_figure(runs: dict, panels=("act", "act_grad", "update_data"), at: int | None = None):
    """Several runs side by side: one row per run (``runs[label]`` its records), one column per
    panel, so that a healthy run and a broken one read across. None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(5.0 * len(panels), 3.3 * len(runs)))
    axes = np.array(fig.subplots(len(runs), len(panels), squeeze=False))
    for row, (label, a) in zip(axes, runs.items(), strict=True):
        for ax, panel in zip(row, panels, strict=True):
            draw(ax, a, panel, at)
        row[0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(a: dict, path, at: int | None = None, title: str = "") -> bool:
    """:func:`figure`, written atomically as PNG; False (nothing written) without matplotlib."""
    from .io import atomic_savefig

    fig = figure(a, at, title)
    if fig is None:
        return False
    atomic_savefig(fig, path, dpi=100)
    return True


__all__ = ["BINS", "SATURATED", "KEYS", "PANELS", "histogram", "record", "verification", "recorded_chunk_fn",
           "make_recorded_chunk", "Recorder", "save", "load", "summary", "figure", "compare_figure", "draw",
           "save_figure", "VerificationFailed"]
