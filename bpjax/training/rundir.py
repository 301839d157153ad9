"""A run directory: what a training leaves behind (:class:`~bpjax.training.run.Run` is the same in memory).

    runs/<timestamp>/
      config.json      the Config, the data file (path, SHA-256), versions and device, parallelism
      vocab.json       the vocabulary
      checkpoint.npz   params, optimizer state, model state, RNG key, step, eval statistics and the
                       loss history up to that step: one file, written atomically
      history.npz      the same history, for readers of the directory
      metrics.json     split losses, speed, status (complete | stopped | interrupted)
      loss.png         the loss curve

``load_run(DIR)`` reads any of them back, bpjax 0.1.0's included, checking every array against
the config: a damaged directory is one :class:`~bpjax.errors.CheckpointError` line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import models
from ..data import Vocab
from ..errors import CheckpointError, ConfigError
from ..io import atomic_savez, atomic_write_json
from ..models import Model
from ..models.files import load_recorded
from .config import Config
from .distributed import usable_cores
from .extend import earlier
from .optim import make_optimizer
from .run import History, Run

CHECKPOINT = "checkpoint.npz"
HISTORY = "history.npz"
CHECKPOINT_FORMAT = 1


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def environment() -> dict:
    """What the notebook's ``%watermark`` printed: versions and the device."""
    import jaxlib

    dev = jax.devices()[0]
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev.platform)}",
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "cpu_cores": usable_cores(),  # the cores XLA's CPU thread pool was sized from (--cores)
    }


def new_run_dir() -> Path:
    """``runs/<timestamp>``, with a suffix if another run started in the same second."""
    base = Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    d, i = base, 1
    while d.exists():
        d, i = base.with_name(f"{base.name}-{i}"), i + 1
    return d


def check_new_run_dir(run_dir: Path) -> None:
    """A new run may not overwrite another: :class:`ConfigError` if ``run_dir`` holds one."""
    if (run_dir / CHECKPOINT).exists() or (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} exists and is not a directory")


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the run directory {run_dir}: {e.strerror}") from None


def write_run_start(run_dir: Path, cfg: Config, vocab: Vocab, data_info: dict, parallel: dict) -> None:
    """Create ``run_dir`` with ``config.json`` and ``vocab.json``. Until the first checkpoint,
    ``--resume`` starts such a directory from step 0 (the same initialisation)."""
    make_run_dir(run_dir)
    meta = {"config": cfg.to_json(), "data": data_info, "environment": environment(), "parallel": parallel}
    if (
        record := models.model_file_record(cfg.spec)
    ) is not None:  # --model PATH.py:NAME: found again by sample, --resume
        meta["model_file"] = record
    atomic_write_json(run_dir / "config.json", meta)
    atomic_write_json(run_dir / "vocab.json", vocab.to_json())


def _flat(prefix: str, tree) -> dict:
    """``{"params/['W1']": array, ...}``: a pytree's leaves under readable path names."""
    return {
        prefix + jax.tree_util.keystr(path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


IDENTITY_OPTIONAL = {
    "diagnose_every": 0,
    "verify_every": 0,
    "schedule": "step",
    "warmup_steps": 0,
    "min_lr": None,
    "grad_clip": 0.0,
    "grad_accum": 1,
    "weight_decay_on": "all",
    "compute_dtype": "float32",
}
"""Settings added after the run identity was: left out of it at these (their default) values, so a
run written before them keeps its identity. A later setting goes here too."""


def run_identity(cfg: Config, vocab: Vocab, data_sha256: str) -> str:
    """The SHA-256 of what a checkpoint belongs to: the config, the vocabulary and the data's hash.
    A checkpoint records it; reading one beside another run's files (or edited ones) is refused."""
    config = {k: v for k, v in cfg.to_json().items() if IDENTITY_OPTIONAL.get(k, object()) != v}
    blob = json.dumps({"config": config, "vocab": vocab.to_json(), "data_sha256": data_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_checkpoint(
    run_dir: Path,
    params,
    opt_state,
    state,
    key_data,
    step: int,
    bn_stats,
    history: History,
    identity: str | None = None,
) -> None:
    """Params, optimizer state, model state, RNG key, step, eval statistics and the loss history up
    to ``step``, in one ``.npz`` written atomically (temp file + rename): they cannot disagree.
    ``identity``: :func:`run_identity` of the run. ``history.npz`` gets the same history."""
    h = history.arrays()
    arrays = {
        **_flat("params", params),
        **_flat("opt", opt_state),
        **_flat("state", state),
        **_flat("bn", bn_stats),
        **{f"history/{k}": v for k, v in h.items()},
    }
    arrays.update(key=np.asarray(key_data), step=np.asarray(step, np.int64), format=np.asarray(CHECKPOINT_FORMAT))
    if identity is not None:
        arrays["identity"] = np.asarray(identity)
    atomic_savez(run_dir / CHECKPOINT, **arrays)
    atomic_savez(run_dir / HISTORY, **h)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _unflat(z: dict, prefix: str, template, path: Path, what: str):
    """The pytree of ``template``'s structure from ``z``, every leaf's shape and dtype checked."""
    leaves = []
    for kp, t in jax.tree_util.tree_flatten_with_path(template)[0]:
        name = prefix + jax.tree_util.keystr(kp)
        a = z.get(name)
        if a is None or a.shape != t.shape or a.dtype != t.dtype:
            got = "missing" if a is None else f"{a.dtype}{list(a.shape)}"
            raise CheckpointError(
                f"{path}: {what} {jax.tree_util.keystr(kp)} is {got}, the config needs "
                f"{t.dtype}{list(t.shape)}; checkpoint and config.json do not match"
            )
        leaves.append(jnp.asarray(a))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def _load_npz(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is this a bpjax run directory?")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise CheckpointError(
            f"{path} is corrupt ({e.__class__.__name__}); train again or resume from an intact copy"
        ) from None


def _history_arrays(z: dict, path: Path, prefix: str = "") -> dict:
    """``{"lossi", "eval_steps", "eval_val"}`` of a loaded npz (``prefix``: the checkpoint's ``history/``),
    each checked: one axis, its kind, as many evaluation steps as values."""
    h = {}
    for k, kind in (("lossi", "f"), ("eval_steps", "iu"), ("eval_val", "f")):
        a = z.get(f"{prefix}{k}")
        if a is None or a.ndim != 1 or (a.size and a.dtype.kind not in kind):
            raise CheckpointError(f"{path}: the loss history ({k}) is missing or malformed")
        h[k] = a
    if len(h["eval_steps"]) != len(h["eval_val"]):
        raise CheckpointError(f"{path}: the loss history's evaluation steps and values differ in length")
    return h


def _load_history(z: dict, path: Path, step: int) -> History:
    h = _history_arrays(z, path, "history/")
    if len(h["lossi"]) != step:
        raise CheckpointError(f"{path}: the loss history does not match step {step}; the checkpoint is damaged")
    return History.from_arrays(h)


def read_history(run_dir: Path) -> dict | None:
    """``history.npz``'s arrays (``lossi`` [steps], ``eval_steps`` [k], ``eval_val`` [k]), checked as
    a checkpoint's; None where the run has none."""
    path = Path(run_dir) / HISTORY
    return _history_arrays(_load_npz(path), path) if path.is_file() else None


def load_checkpoint(run_dir: Path, cfg: Config, vocab: Vocab, data_sha256: str | None = None):
    """Read and check a checkpoint against the config (and, when it records one, against
    :func:`run_identity` of ``cfg``, ``vocab`` and ``data_sha256``: a checkpoint from another run,
    or beside an edited config.json or vocab.json, is refused).

    Returns ``(params, opt_state, state, key_data, step, bn_stats, history)``.
    """
    path = run_dir / CHECKPOINT
    z = _load_npz(path)
    fmt = z.get("format")
    if fmt is None or fmt.shape != () or fmt.dtype.kind not in "iu" or int(fmt) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has an unknown format; it was not written by this bpjax")
    spec = cfg.spec
    p_tmpl, s_tmpl = jax.eval_shape(lambda: spec.init(jax.random.key(0), vocab_size=vocab.size, **cfg.sizes))
    params = _unflat(z, "params", p_tmpl, path, "parameter")
    opt_state = _unflat(z, "opt", jax.eval_shape(make_optimizer(cfg).init, p_tmpl), path, "optimizer state")
    state = _unflat(z, "state", s_tmpl, path, "model state")
    X1 = jax.ShapeDtypeStruct((2, cfg.block_size), jnp.int32)
    bn = _unflat(z, "bn", jax.eval_shape(spec.eval_stats, p_tmpl, s_tmpl, X1), path, "eval statistic")
    key_data, step = z.get("key"), z.get("step")
    if step is None or step.shape != () or step.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: 'step' is missing or not an integer; the checkpoint is damaged")
    step = int(step)
    want_key = np.asarray(jax.random.key_data(jax.random.key(0)))
    if key_data is None or key_data.shape != want_key.shape or key_data.dtype != want_key.dtype:
        raise CheckpointError(f"{path}: the RNG key is missing or malformed; the checkpoint is damaged")
    if not 0 <= step <= cfg.steps:
        raise CheckpointError(f"{path}: step {step} is outside the run's 0..{cfg.steps}")
    history = _load_history(z, path, step)
    if not all(np.isfinite(np.asarray(v)).all() for v in jax.tree_util.tree_leaves(params)):
        raise CheckpointError(f"{path} holds non-finite parameters")
    if not all(
        np.isfinite(np.asarray(v)).all() for v in jax.tree_util.tree_leaves(bn) if np.asarray(v).dtype.kind == "f"
    ):
        raise CheckpointError(f"{path} holds non-finite eval statistics (batch norm's mean or variance)")
    for kp, v in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        if "count" in jax.tree_util.keystr(kp) and np.asarray(v).shape == () and int(np.asarray(v)) != step:
            raise CheckpointError(
                f"{path}: the optimizer has counted {int(np.asarray(v))} updates at step "
                f"{step}; the checkpoint is damaged"
            )
    ident = z.get("identity")  # last: the checks above say more precisely what is wrong, where they can
    known = ident is None or data_sha256 is None or str(ident) in _identities(run_dir, cfg, vocab, data_sha256)
    if not known:
        raise CheckpointError(
            f"{path} does not belong with this directory's config.json and vocab.json "
            "(another run's checkpoint, or files edited since it was written)"
        )
    return params, opt_state, state, key_data, step, bn, history


def _identities(run_dir: Path, cfg: Config, vocab: Vocab, data_sha256: str) -> set[str]:
    """The run's :func:`run_identity`, and its identities before its extensions (a checkpoint
    written before ``--resume --steps`` extended the run is still its own, until the next one)."""
    before = earlier(read_json(run_dir / "config.json"), cfg) if (run_dir / "config.json").is_file() else []
    return {run_identity(c, vocab, data_sha256) for c in (cfg, *before)}


MAX_JSON_BYTES = 16 * 2**20  # a run's config.json, vocab.json and metrics.json are a few kB


def read_json(path: Path) -> dict:
    """A run directory's JSON file; missing or invalid is a :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is this a bpjax run directory?")
    with open(path, "rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise CheckpointError(f"{path} is larger than {MAX_JSON_BYTES // 2**20} MiB; the run directory is damaged")
    try:
        return json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        what = "nested too deeply" if isinstance(e, RecursionError) else f"not valid JSON ({e.__class__.__name__})"
        raise CheckpointError(f"{path} is {what}; the run directory is damaged") from None


def read_json_object(path: Path, optional: bool = False) -> dict:
    """:func:`read_json` of a file that must hold a JSON object (``{}`` for a missing one where
    ``optional``); anything else is a :class:`CheckpointError`."""
    if optional and not path.is_file():
        return {}
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a JSON object; the run directory is damaged")
    return obj


def read_run_start(run_dir: Path, model: Model | None = None) -> tuple[Config, Vocab, str | None]:
    """What :func:`write_run_start` wrote: ``(config, vocabulary, the data's recorded SHA-256)``."""
    meta = read_json(run_dir / "config.json")
    if model is None and isinstance(meta, dict) and "model_file" in meta:
        model = load_recorded(meta["model_file"])  # gone or changed: one line
    cfg = Config.from_json(meta.get("config") if isinstance(meta, dict) else None, model=model)
    vocab = Vocab.from_json(read_json(run_dir / "vocab.json"))
    recorded = meta.get("data") if isinstance(meta, dict) else None
    sha = recorded.get("sha256") if isinstance(recorded, dict) and isinstance(recorded.get("sha256"), str) else None
    return cfg, vocab, sha


def load_run(run_dir, model: Model | None = None, diagnostics: bool = True) -> Run:
    """A :class:`Run` from its directory: config, vocabulary, checkpoint, metrics and history (and
    ``diagnostics.npz``'s records, unless ``diagnostics`` is False; a damaged file is a warning).

    ``model``: the :class:`~bpjax.models.Model` of a run trained with a model of your own.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise CheckpointError(f"run directory {str(d)!r} does not exist")
    cfg, vocab, sha = read_run_start(d, model)
    params, opt_state, state, key_data, step, bn, history = load_checkpoint(d, cfg, vocab, sha)
    metrics = read_json_object(d / "metrics.json", optional=True)
    from .diagnostics import recorder as D

    diag = None
    if diagnostics and (d / D.FILE).is_file():  # a damaged one does not stop sampling or evaluating the run
        try:
            diag = D.load(d)
        except CheckpointError as e:
            warnings.warn(str(e), stacklevel=2)
    return Run(params, bn, vocab, cfg, metrics, history.arrays(), d, opt_state, key_data, step, state, diag)


def data_info(run_dir: Path) -> dict:
    """The data file a run trained on, from its config.json: ``{"path", "sha256", "words"}``."""
    info = read_json(run_dir / "config.json").get("data")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("path", "sha256")):
        raise CheckpointError(f"{run_dir / 'config.json'} does not say which data file the run used; it is damaged")
    return info
