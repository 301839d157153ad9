"""Training statistics computed on device, inside the jitted chunk: moments, histograms, the
lecture's grad:data and update:data ratios, and the live check's per-parameter differences.

Histograms have :data:`BINS` bins over each record's ``[min, max]`` (kept beside the counts).
Statistics use the unbiased std, as the lecture's ``t.std()``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...check import tree_names

BINS = 50
SATURATED = 0.97


def summarize(x):
    """``(mean, std, min, max, saturated share)`` of all of ``x``, float32, in one pass (one
    variadic reduce; the unbiased std). The sums are of ``d = x - x[0]``: a shift that keeps the
    variance and avoids cancellation when the mean is far from 0 (a batch-norm gain's 1)."""
    x = jnp.ravel(x).astype(jnp.float32)
    d = x - x[0]
    n = x.size
    zero = jnp.float32(0)
    s1, s2, lo, hi, sat = jax.lax.reduce(
        (d, d * d, x, x, (jnp.abs(x) > SATURATED).astype(jnp.float32)),
        (zero, zero, jnp.float32(jnp.inf), jnp.float32(-jnp.inf), zero),
        lambda a, b: (a[0] + b[0], a[1] + b[1], jnp.minimum(a[2], b[2]), jnp.maximum(a[3], b[3]), a[4] + b[4]),
        (0,),
    )
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
        idx.append(
            jnp.clip(jnp.floor((jnp.ravel(x).astype(jnp.float32) - lo) / width), 0, bins - 1).astype(jnp.int32)
            + i * bins
        )
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
    s1, s2 = jax.lax.reduce((d, d * d), (jnp.float32(0), jnp.float32(0)), lambda a, b: (a[0] + b[0], a[1] + b[1]), (0,))
    return jnp.sqrt(jnp.maximum((s2 - s1 * s1 / n) / (n - 1), 0.0)) if n > 1 else jnp.float32(jnp.nan)


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
        st = stats[i : i + len(vals)]
        out.update(
            {
                key + "_hist": counts[i : i + len(vals)],
                key + "_range": st[:, 2:4],
                key + "_mean": st[:, 0],
                key + "_std": st[:, 1],
            }
        )
        i += len(vals)
    out["act_saturated"] = stats[: len(acts), 4]
    p_std = {k: _std(v) for k, v in p.items()}
    w_std = jnp.stack([p_std[k] for k in weights]) if weights else jnp.zeros((0,), jnp.float32)
    out.update(
        weight_std=w_std, grad_data=jnp.where(w_std > 0, out["grad_std"] / jnp.where(w_std > 0, w_std, 1.0), jnp.nan)
    )
    ps = jnp.stack(list(p_std.values()))
    us = jnp.stack([_std(u[k]) for k in p])
    out["update_data"] = jnp.where(ps > 0, jnp.log10(us / jnp.where(ps > 0, ps, 1.0)), jnp.nan)
    return out


def verification(manual, oracle) -> dict:
    """Per parameter: ``maxdiff`` (max |manual - oracle|; +inf where the hand-written gradient is not
    finite, so that it fails whatever the bound, as in :func:`bpjax.check.compare_arrays`) and
    ``scale`` (max |oracle|), float32."""
    m, o = tree_names(manual), tree_names(oracle)
    diff = [jnp.where(jnp.isfinite(m[k]).all(), jnp.max(jnp.abs(m[k] - o[k])), jnp.inf).astype(jnp.float32) for k in o]
    scale = [jnp.max(jnp.abs(o[k])).astype(jnp.float32) for k in o]
    return {"maxdiff": jnp.stack(diff), "scale": jnp.stack(scale)}


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


def probe_names(spec, params, state, X, Y, manual: bool) -> list[str]:
    """The names of :func:`probe_shapes`, in forward order."""
    return list(probe_shapes(spec, params, state, X, Y, manual))
