"""What :func:`~bpjax.training.fit` carries from step to step (:class:`Training`), and how a run
begins: a new one (:func:`start`) or a stopped one continued from its directory (:func:`resume`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from ..data import Vocab, load_dataset, training_arrays
from ..errors import CheckpointError, ConfigError
from ..models import n_params
from . import extend
from .config import Config
from .distributed import check_batch, make_mesh
from .memory import check_state_fits
from .optim import make_optimizer
from .run import History, Run
from .rundir import (
    CHECKPOINT,
    check_new_run_dir,
    data_info,
    load_run,
    make_run_dir,
    new_run_dir,
    read_json,
    read_run_start,
    write_run_start,
)
from .runlock import LOCK, RunLock
from .step import init_train_state
from .tensorboard import NoScalars


@dataclass
class Training:
    """A run in progress: its config and data, where its files go, the state it has reached."""

    cfg: Config
    vocab: Vocab
    splits: dict
    data_info: dict
    run_dir: Path | None
    params: object
    opt_state: object
    state: object
    key_data: np.ndarray
    step: int
    end: int
    history: History
    mesh: object = None
    resumed_from: int | None = None
    steps_run: int = 0
    exec_seconds: float = 0.0
    lock: RunLock | None = None
    recorder: object = None  # diagnostics.Recorder, with --diagnose-every or --verify-every
    saved_step: int | None = None  # the step of the run directory's checkpoint (None: none yet)
    scalars: object = field(default_factory=NoScalars)  # tensorboard's open_scalars: the run's (process 0)
    extensions: list = field(default_factory=list)  # config.json's record of --resume --steps (extend.py)

    @property
    def recording(self) -> bool:
        return bool(self.cfg.diagnose_every or self.cfg.verify_every)


def mesh_of(devices):
    """The data-parallel mesh of ``devices`` per process (None for one device of one process)."""
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"--devices must be a positive integer, got {devices!r}")
    return make_mesh(devices) if devices > 1 or jax.process_count() > 1 else None


def is_main() -> bool:
    """Process 0: the one that writes the checkpoint, history and plots."""
    return jax.process_index() == 0


def _load_data(cfg: Config, path, expect_sha=None, source: str = "--data"):
    return load_dataset(
        path,
        block_size=cfg.block_size,
        split_seed=cfg.split_seed,
        layout=cfg.spec.data,
        expect_sha=expect_sha,
        source=source,
    )


@contextlib.contextmanager
def released_on_error(lock: RunLock | None):
    """Hand ``lock`` on to the Training being built, or release it if building it fails."""
    try:
        yield
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _given_params(cfg: Config, vocab_size: int, params):
    """``params`` to start from (a converted nanoGPT checkpoint), checked against the model's init:
    the same tree, shapes and dtypes, else one :class:`ConfigError` line naming the first difference."""
    want = jax.eval_shape(lambda k: cfg.spec.init(k, vocab_size=vocab_size, **cfg.sizes)[0], jax.random.key(0))
    got, want_leaves = jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_flatten_with_path(want)[0]
    if [p for p, _ in got] != [p for p, _ in want_leaves]:
        raise ConfigError(f"params= has not the {cfg.model_name} parameters of these sizes (its keys differ)")
    for (path, a), (_, w) in zip(got, want_leaves, strict=True):
        if tuple(np.shape(a)) != w.shape or np.asarray(a).dtype != w.dtype:
            raise ConfigError(
                f"params={jax.tree_util.keystr(path)} is {np.asarray(a).dtype}{list(np.shape(a))}, "
                f"the model's {w.dtype}{list(w.shape)}"
            )
    return jax.tree_util.tree_map(jax.numpy.asarray, params)


def start(cfg: Config, data, out, stop_at, mesh, devices: int, params=None) -> Training:
    """A new run: validate, load the data, claim the run directory, initialise (or start from
    ``params``: its checkpoint at step 0 is written at once, so a resume never re-initialises)."""
    cfg = cfg.validate(stop_at)
    if mesh is not None:
        check_batch(mesh, cfg.batch_size)
    vocab, splits, info = _load_data(cfg, data)
    cfg = cfg.with_data(info)
    check_state_fits(cfg, vocab.size)  # before anything is allocated or written
    run_dir = None if out is False else Path(out) if out is not None else new_run_dir()
    lock = None
    if run_dir is not None:
        check_new_run_dir(run_dir)
        if is_main():
            make_run_dir(run_dir)
            lock = RunLock(run_dir)  # a second writer of this --out is refused from here on
    with released_on_error(lock):
        if lock is not None:
            check_new_run_dir(run_dir)  # again, now that nobody else can be writing it
        given = None if params is None else _given_params(cfg, vocab.size, params)
        params, opt_state, state, key_data = init_train_state(cfg, vocab.size)
        if given is not None:
            params, opt_state = given, make_optimizer(cfg).init(given)
        if run_dir is not None:
            write_run_start(
                run_dir,
                cfg,
                vocab,
                info,
                {
                    "mesh_devices": mesh.size if mesh is not None else 1,
                    "devices_per_process": devices,
                    "process_count": jax.process_count(),
                    "process_index": jax.process_index(),
                },
            )
        return Training(
            cfg,
            vocab,
            splits,
            info,
            run_dir,
            params,
            opt_state,
            state,
            key_data,
            0,
            cfg.steps if stop_at is None else stop_at,
            History(),
            mesh,
            lock=lock,
        )


def resume(run_dir, data, mesh, model=None, steps=None, lr_decay_step=None) -> Training:
    """A stopped run, from its directory, to its configured steps (or extended to ``steps``, from
    then on decaying at ``lr_decay_step``: :mod:`bpjax.training.extend`); on the data it trained on."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist")
    lock = RunLock(run_dir) if is_main() else None
    with released_on_error(lock):
        prev = (
            load_run(run_dir, model=model, diagnostics=False)
            if (run_dir / CHECKPOINT).exists()
            else run_at_step_0(run_dir, model)
        )  # stopped before its first checkpoint
        cfg = extend.extended(prev.config, prev.step, run_dir, steps, lr_decay_step)
        if prev.step == cfg.steps and prev.metrics.get("status") == "complete":
            raise ConfigError(
                f"{run_dir} is already complete ({cfg.steps:,} steps); nothing to resume "
                f"(to train it longer: --resume {run_dir} --steps N)"
            )
        if mesh is not None:
            check_batch(mesh, cfg.batch_size)
        recorded = data_info(run_dir)
        vocab, splits, info = _load_data(
            cfg, data or recorded["path"], recorded["sha256"], source="--data" if data else f"{run_dir / 'config.json'}"
        )
        meta = read_json(run_dir / "config.json")
        extensions = extend.extensions(meta)
        if cfg is not prev.config and is_main():  # after the data's check: a refused resume changes nothing
            extensions = extend.record(run_dir, meta, prev.config, cfg, prev.step)
        return Training(
            cfg,
            vocab,
            splits,
            info,
            run_dir,
            prev.params,
            prev.opt_state,
            prev.state,
            np.asarray(prev.key_data),
            prev.step,
            cfg.steps,
            History.from_arrays(prev.history),
            mesh,
            resumed_from=prev.step,
            lock=lock,
            saved_step=prev.step if (run_dir / CHECKPOINT).exists() else None,
            extensions=extensions,
        )


def run_at_step_0(run_dir: Path, model=None) -> Run:
    """A run directory whose training stopped before its first checkpoint (``kill -9``, a full disk):
    its config and vocabulary, and the parameters ``init_train_state`` gives them, step 0."""
    cfg, vocab, _ = read_run_start(run_dir, model)
    params, opt_state, state, key_data = init_train_state(cfg, vocab.size)
    return Run(params, None, vocab, cfg, {}, History().arrays(), run_dir, opt_state, key_data, 0, state)


def recorded_losses(tr: Training) -> dict:
    """The split losses a resumed run's metrics.json holds for the step it stopped at, where it has
    not moved since (a run stopped again before its first step keeps them); else none."""
    path = None if tr.run_dir is None or tr.resumed_from != tr.step else tr.run_dir / "metrics.json"
    try:
        m = read_json(path) if path is not None and path.is_file() else {}
    except CheckpointError:
        return {}
    if not isinstance(m, dict) or m.get("steps") != tr.step:
        return {}
    return {k: v for k, v in m.items() if k.endswith("_loss") and isinstance(v, float)}


def discard_if_untrained(tr: Training) -> None:
    """A new run refused before its first step (a chunk too large to fit) leaves no directory
    behind: what :func:`start` wrote is removed, so the same ``--out`` can be used again."""
    d = tr.run_dir
    if d is None or tr.resumed_from is not None or tr.step != 0 or (d / CHECKPOINT).exists() or not is_main():
        return
    for name in ("config.json", "vocab.json", LOCK):
        (d / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        d.rmdir()  # only if nothing else is in it


def banner(tr: Training) -> str:
    """The run's first line: model, parameters, vocabulary, data, steps, run directory."""
    return (
        f"bpjax train: {tr.cfg.model_name}, {n_params(tr.params):,} parameters, vocabulary {tr.vocab.size}, "
        f"{_training_size(tr)}, grad {tr.cfg.grad}, steps {tr.step:,}→{tr.end:,}"
        + (f", run directory {tr.run_dir}" if tr.run_dir is not None else "")
        + (f", {tr.mesh.size} devices" if tr.mesh is not None else "")
    )


def _training_size(tr: Training) -> str:
    X, _ = training_arrays(tr.splits)
    return f"{len(X):,} training {'characters' if X.ndim == 1 else 'rows'}"
