"""The records on the host: :class:`Recorder` gathers each chunk's records and checks; its arrays
are ``diagnostics.npz`` (keys in :data:`KEYS`), written with every checkpoint (:func:`save`) and read
back, every array's shape checked (:func:`load`)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...check import TOLERANCES, tree_names
from ...errors import CheckpointError
from .stats import BINS, names_of, probe_names

FILE = "diagnostics.npz"

KEYS = {
    "probe_names": "[A] the recorded nonlinearities' names (the model's taps), in forward order",
    "weight_names": "[W] the 2-D weights' names (pytree paths, '/'-joined)",
    "param_names": "[P] every parameter's name",
    "diag_step": "[R] the step of each diagnostics record (before that step's update)",
    "act_mean": "[R, A]",
    "act_std": "[R, A]",
    "act_saturated": "[R, A] share of |t| > 0.97",
    "act_hist": "[R, A, BINS] counts",
    "act_range": "[R, A, 2] the histogram's (min, max)",
    "act_grad_mean": "[R, A] gradient into each nonlinearity's output",
    "act_grad_std": "[R, A]",
    "act_grad_hist": "[R, A, BINS]",
    "act_grad_range": "[R, A, 2]",
    "weight_std": "[R, W]",
    "grad_mean": "[R, W]",
    "grad_std": "[R, W]",
    "grad_data": "[R, W] std(grad) / std(weight); NaN where the weight has no spread (a bigram table of zeros)",
    "grad_hist": "[R, W, BINS]",
    "grad_range": "[R, W, 2]",
    "update_data": "[R, P] log10(std(update) / std(parameter)); NaN where the parameter has no spread",
    "verify_step": "[Q] the step of each verification",
    "verify_maxdiff": "[Q, P] max |hand-written - jax.grad| per parameter",
    "verify_scale": "[Q, P] max |jax.grad| per parameter",
    "verify_bound": "[Q, P] the pass rule's bound: rel * scale + abs",
    "verify_ok": "[Q, P] maxdiff <= bound (maxdiff is +inf where the hand-written gradient is not finite)",
}
"""``diagnostics.npz``'s arrays (R diagnostics records, Q verifications)."""


class Recorder:
    """The records of a run, gathered chunk by chunk on the host; ``arrays()`` is ``diagnostics.npz``.

    ``add(records)`` keeps a chunk's diagnostics records; ``add_verification(step, result)`` keeps a
    verification and returns its failing rows, each ``(parameter, maxdiff, bound, (rel, abs))``, in
    the parameters' order (None when every row passes the rule of its parameter's dtype, ``(rel, abs)``).
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
        probes = probe_names(spec, params, state, X, Y, manual)
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
        self.verify.append(
            {
                "verify_step": np.array([step]),
                "verify_maxdiff": maxdiff[None],
                "verify_scale": scale[None],
                "verify_bound": bound[None],
                "verify_ok": ok[None],
            }
        )
        if ok.all():
            return None
        return [
            (self.param_names[p], float(maxdiff[p]), float(bound[p]), (float(self.rel[p]), float(self.abs[p])))
            for p in np.flatnonzero(~ok)
        ]

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
            dtype = (
                np.int64
                if k.endswith("step")
                else bool
                if k == "verify_ok"
                else np.float64
                if k.startswith("verify_")
                else np.float32
            )
            out[k] = np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)
        return out

    def continue_from(self, a: dict, step: int) -> None:
        """Take the records of an earlier part of this run (``diagnostics.npz``'s arrays) before ``step``."""
        for k, mine in (
            ("probe_names", self.probe_names),
            ("weight_names", self.weight_names),
            ("param_names", self.param_names),
        ):
            if a[k].tolist() != mine:
                raise CheckpointError(
                    f"{FILE} records other {k.replace('_', ' ')} than this run's model; "
                    "it belongs to another run (move it away to start the records afresh)"
                )
        self.diag = [{("step" if k == "diag_step" else k): a[k] for k in _DIAG_KEYS}]
        self.verify = [{k: a[k] for k in _VERIFY_KEYS}]
        self.truncate(step)


_DIAG_KEYS = [k for k in KEYS if not k.startswith("verify_") and not k.endswith("_names")]
_SHAPES = {
    "act_mean": ("R", "A"),
    "act_std": ("R", "A"),
    "act_saturated": ("R", "A"),
    "act_hist": ("R", "A", BINS),
    "act_range": ("R", "A", 2),
    "act_grad_mean": ("R", "A"),
    "act_grad_std": ("R", "A"),
    "act_grad_hist": ("R", "A", BINS),
    "act_grad_range": ("R", "A", 2),
    "weight_std": ("R", "W"),
    "grad_mean": ("R", "W"),
    "grad_std": ("R", "W"),
    "grad_data": ("R", "W"),
    "grad_hist": ("R", "W", BINS),
    "grad_range": ("R", "W", 2),
    "update_data": ("R", "P"),
    "verify_maxdiff": ("Q", "P"),
    "verify_scale": ("Q", "P"),
    "verify_bound": ("Q", "P"),
    "verify_ok": ("Q", "P"),
}
"""Every array's dimensions: R records, Q checks, A nonlinearities, W weights, P parameters."""
_VERIFY_KEYS = [k for k in KEYS if k.startswith("verify_")]


def save(run_dir: Path, recorder: Recorder) -> None:
    """``diagnostics.npz``, written atomically."""
    from ...io import atomic_savez

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
        raise CheckpointError(
            f"{f} is not a bpjax diagnostics file ({what}); move it away (training records "
            "afresh from the checkpoint's step)"
        )
    for k in ("probe_names", "weight_names", "param_names", "diag_step", "verify_step"):
        kind = "U" if k.endswith("names") else "iu"
        if a[k].ndim != 1 or a[k].dtype.kind not in kind:
            raise CheckpointError(f"{f} is malformed: {k} is {a[k].dtype} of shape {a[k].shape}, expected a list")
    sizes = {
        "A": len(a["probe_names"]),
        "W": len(a["weight_names"]),
        "P": len(a["param_names"]),
        "R": len(a["diag_step"]),
        "Q": len(a["verify_step"]),
    }
    for k, shape in _SHAPES.items():
        want = tuple(sizes.get(d, d) for d in shape)
        if a[k].shape != want:
            raise CheckpointError(f"{f} is malformed: {k} has shape {a[k].shape}, expected {want}")
    return a


def failures(rows) -> str:
    """Failing verification rows ``(parameter, maxdiff, bound, ...)`` as one line: every parameter
    with its maxdiff, bound and multiple, then the worst (the layer to read is where the failing
    parameters meet the passing ones)."""

    def multiple(r):
        return r[1] / r[2] if r[2] > 0 else float("inf")

    listed = ", ".join(f"{r[0]} {r[1]:.3e} > {r[2]:.3e} ({multiple(r):.3g}x)" for r in rows)
    return f"{listed}; worst {max(rows, key=multiple)[0]}"
