"""Training: :func:`fit`, a short composition of the config, the data, the chunk runner, the run
directory and the reports.

The notebook's "Putting it all together", with its bug fixed (its loop reused ``bn_raw`` and
``bn_var_inv`` from an earlier cell) and the loop moved onto the device:

    run = fit(Config(steps=200_000, grad="manual"))     # or bpjax train
    run.metrics["val_loss"]                             # ≈ 2.16
    run = load_run("runs/20261126-101500")              # the same Run, back from disk
    run = fit(Config(model=my_model, steps=20_000))     # a Model of your own (see bpjax.models)

The step itself (minibatches from ``fold_in(key, step)``, ``--grad manual|autodiff`` as the one
swap, ``lax.scan`` chunks) is :mod:`bpjax.step`; the files are :mod:`bpjax.rundir`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import models
from .config import GRADS, OPTIMIZERS, Config
from .data import Vocab, load_dataset
from .distributed import check_batch, local_value, make_mesh, replicate, to_local
from .errors import CheckpointError, ConfigError, TrainingDiverged, VerificationFailed
from .models import n_params
from .optim import StepDecayState, make_optimizer, sgd_step_decay
from .report import Progress, loss_figure, plot_history, window_mean
from .rundir import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    HISTORY,
    History,
    Run,
    RunLock,
    check_new_run_dir,
    data_info,
    environment,
    load_checkpoint,
    load_run,
    make_run_dir,
    new_run_dir,
    read_run_start,
    run_identity,
    save_checkpoint,
    write_run_start,
)
from .step import (
    ChunkRunner,
    check_compiled_fits,
    check_state_fits,
    chunk_length,
    gradient_fn,
    init_train_state,
    make_train_chunk,
    sample_batches,
    segments,
    split_losses,
    train_chunk_fn,
)

__all__ = [  # fit, and the names bpjax 0.1.0 had here (each now lives in the module named beside it)
    "fit", "Training",
    "Config", "GRADS", "OPTIMIZERS",  # bpjax.config
    "make_optimizer", "sgd_step_decay", "StepDecayState",  # bpjax.optim
    "gradient_fn", "make_train_chunk", "train_chunk_fn", "sample_batches", "split_losses",  # bpjax.step
    "Run", "load_run", "load_checkpoint", "save_checkpoint", "environment",  # bpjax.rundir
    "CHECKPOINT", "CHECKPOINT_FORMAT", "HISTORY",
    "Progress", "loss_figure", "plot_history", "window_mean",  # bpjax.report
    "TrainingDiverged",  # bpjax.errors
]

CHECKPOINT_SECONDS = 60.0  # a long run also checkpoints this often (wall clock)


@dataclass
class Training:
    """What :func:`fit` carries from step to step: explicit, in one place."""

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
    recorder: object = None  # bpjax.diagnostics.Recorder, with --diagnose-every or --verify-every

    def static(self, a: int, b: int):
        """The compiled chunk's static arguments for steps [a, b): its length (and, with diagnostics or
        verification, the plain steps before the first record and whether it starts with a check)."""
        if self.recorder is None:
            return b - a
        from .diagnostics import static_args

        return static_args(a, b, self.cfg.diagnose_every, self.cfg.verify_every)

    def segments(self) -> list[tuple[int, int]]:
        """The chunks from ``step`` to ``end``: cut every ``chunk`` steps and at every eval; with
        diagnostics or checks, see :func:`bpjax.diagnostics.chunk_segments`."""
        if self.recorder is None:
            return segments(self.step, self.end, [chunk_length(self.cfg), self.cfg.eval_every])
        from .diagnostics import chunk_segments

        return chunk_segments(self.cfg, self.step, self.end)


def fit(cfg: Config | None = None, *, data=None, out=None, stop_at: int | None = None, resume=None,
        devices: int = 1, verbose: bool = True, progress_bar: bool | None = None, save_plot: bool = True,
        model=None) -> Run:
    """Train, write the run directory, return the :class:`~bpjax.rundir.Run`.

    ``cfg``: a :class:`~bpjax.config.Config` (default: the notebook's). ``data``: a names file
    (default: the usual search, see ``bpjax.data``). ``out``: the run directory (default
    ``runs/<timestamp>``; ``out=False`` keeps everything in memory). ``stop_at``: stop once that
    many steps have run, with a checkpoint. ``resume``: a run directory to continue to its
    configured steps (``cfg`` must then be ``None``). ``devices``: data-parallel over that many
    devices of each process (see ``bpjax.distributed``); with several processes only process 0
    writes the checkpoint, history and plot, every process its own metrics.json. ``model``: with
    ``resume``, the :class:`~bpjax.models.Model` of a run trained with a model of your own.
    """
    t_wall = time.perf_counter()
    if model is not None and resume is None:
        raise ConfigError("model= is for resume; a new run of your own model is fit(Config(model=...))")
    with _signals_stop() as stop:  # from the first moment to the last file: a signal never loses the run
        tr = None
        try:
            mesh = _mesh(devices)
            tr = (_resume(resume, cfg, out, stop_at, data, mesh, model) if resume is not None
                  else _start(cfg or Config(), data, out, stop_at, mesh, devices))
            return _fit(tr, stop, t_wall, verbose, progress_bar, save_plot)
        except ConfigError:
            if tr is not None:
                _discard_if_untrained(tr)
            raise
        finally:
            if tr is not None and tr.lock is not None:
                tr.lock.release()


def _discard_if_untrained(tr: Training) -> None:
    """A new run refused before its first step (a chunk too large to fit) leaves no directory
    behind: what :func:`_start` wrote is removed, so the same ``--out`` can be used again."""
    d = tr.run_dir
    if d is None or tr.resumed_from is not None or tr.step != 0 or (d / CHECKPOINT).exists() or not _is_main():
        return
    for name in ("config.json", "vocab.json", ".lock"):
        (d / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        d.rmdir()  # only if nothing else is in it


def _fit(tr: Training, stop, t_wall: float, verbose: bool, progress_bar, save_plot: bool) -> Run:
    """fit's training and its final phase, under :func:`_signals_stop`: a signal ends the chunk in
    flight; evaluation, checkpoint and results are written whatever arrives meanwhile."""
    log = print if verbose else (lambda *a, **k: None)
    log(_banner(tr))
    runner = ChunkRunner(_chunk_fn(tr))
    Xtr, Ytr, key = _data_on_devices(tr)
    progress = Progress(tr.cfg.steps, tr.step, min(10_000, max(1, tr.cfg.steps // 10)),
                        out=sys.stdout if verbose else None, bar=progress_bar if verbose else False)
    first = next(iter(tr.segments()), None)
    if first is not None:  # the largest buffers, from XLA's memory analysis, before anything runs
        compiled = runner.compile(tr.static(*first), tr.params, tr.opt_state, tr.state, key, jnp.int32(first[0]),
                                  Xtr, Ytr)
        check_compiled_fits(compiled, "--batch-size (or --chunk)")
    last_checkpoint = time.perf_counter()
    interrupted = stop.received
    with contextlib.closing(progress):
        for a, b in tr.segments():
            if interrupted():  # a signal during start-up or compilation: stop before training
                break
            losses = _train_segment(tr, runner, key, Xtr, Ytr, a, b)
            progress.lines(a, losses)
            if tr.cfg.eval_every and tr.step % tr.cfg.eval_every == 0 and tr.step < tr.cfg.steps:
                _, ev = _evaluate(tr, ("val",))
                tr.history.evals.append((tr.step, ev["val_loss"]))
                log(f"{tr.step:7d}/{tr.cfg.steps:7d}: val {ev['val_loss']:.4f}")
            if time.perf_counter() - last_checkpoint > CHECKPOINT_SECONDS and tr.step < tr.end:
                _checkpoint(tr)
                last_checkpoint = time.perf_counter()
            progress.update(tr.step, tr.exec_seconds)
            if interrupted():
                break
    bn, ev = _evaluate(tr, ("train", "val", "test"))
    if tr.step == tr.cfg.steps and (not tr.history.evals or tr.history.evals[-1][0] != tr.step):
        tr.history.evals.append((tr.step, ev["val_loss"]))
    _checkpoint(tr, bn)
    status = "complete" if tr.step == tr.cfg.steps else ("interrupted" if interrupted() else "stopped")
    metrics = _metrics(tr, ev, status, runner.compile_seconds, time.perf_counter() - t_wall)
    if interrupted():
        metrics["signal"] = signal.Signals(stop.signum).name
    _write_results(tr, metrics, save_plot)
    for k in ("train", "val", "test"):
        log(f"{k} {ev[k + '_loss']:.4f}")
    if metrics["steps_per_second"]:
        log(f"{tr.steps_run:,} steps at {metrics['steps_per_second']:,.0f} steps/s "
            f"(+{runner.compile_seconds:.1f} s compiling); {status}")
    local = lambda t: jax.tree_util.tree_map(jnp.asarray, to_local(t))  # noqa: E731
    return Run(local(tr.params), bn, tr.vocab, tr.cfg, metrics, tr.history.arrays(), tr.run_dir,
               local(tr.opt_state), tr.key_data, tr.step, local(tr.state),
               tr.recorder.arrays() if tr.recorder is not None else None)


# --------------------------------------------------------------------------------------------
# The steps of fit
# --------------------------------------------------------------------------------------------
def _mesh(devices):
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"--devices must be a positive integer, got {devices!r}")
    return make_mesh(devices) if devices > 1 or jax.process_count() > 1 else None


def _is_main() -> bool:
    return jax.process_index() == 0


def _load_data(cfg: Config, path, expect_sha=None, source: str = "--data"):
    return load_dataset(path, block_size=cfg.block_size, split_seed=cfg.split_seed, layout=cfg.spec.data,
                        expect_sha=expect_sha, source=source)


def _start(cfg: Config, data, out, stop_at, mesh, devices: int) -> Training:
    """A new run: validate, load the data, claim the run directory, initialise."""
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
        if _is_main():
            make_run_dir(run_dir)
            lock = RunLock(run_dir)  # a second writer of this --out is refused from here on
    with _released_on_error(lock):
        if lock is not None:
            check_new_run_dir(run_dir)  # again, now that nobody else can be writing it
        params, opt_state, state, key_data = init_train_state(cfg, vocab.size)
        if run_dir is not None:
            write_run_start(run_dir, cfg, vocab, info, {
                "mesh_devices": mesh.size if mesh is not None else 1, "devices_per_process": devices,
                "process_count": jax.process_count(), "process_index": jax.process_index()})
        return Training(cfg, vocab, splits, info, run_dir, params, opt_state, state, key_data, 0,
                        cfg.steps if stop_at is None else stop_at, History(), mesh, lock=lock)


@contextlib.contextmanager
def _released_on_error(lock: RunLock | None):
    """Hand ``lock`` on to the Training being built, or release it if building it fails."""
    try:
        yield
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _resume(resume, cfg, out, stop_at, data, mesh, model=None) -> Training:
    """A stopped run, from its directory, to its configured steps; on the data it trained on."""
    if cfg is not None or stop_at is not None or out is not None:
        raise ConfigError("a resumed run keeps its own configuration, directory and steps; "
                          "pass no config, stop_at or out with resume")
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist")
    lock = RunLock(run_dir) if _is_main() else None
    with _released_on_error(lock):
        prev = (load_run(run_dir, model=model, diagnostics=False) if (run_dir / CHECKPOINT).exists()
                else _run_at_step_0(run_dir, model))  # stopped before its first checkpoint
        cfg = prev.config
        if prev.step == cfg.steps and prev.metrics.get("status") == "complete":
            raise ConfigError(f"{run_dir} is already complete ({cfg.steps:,} steps); nothing to resume")
        if mesh is not None:
            check_batch(mesh, cfg.batch_size)
        recorded = data_info(run_dir)
        vocab, splits, info = _load_data(cfg, data or recorded["path"], recorded["sha256"],
                                         source="--data" if data else f"{run_dir / 'config.json'}")
        return Training(cfg, vocab, splits, info, run_dir, prev.params, prev.opt_state, prev.state,
                        np.asarray(prev.key_data), prev.step, cfg.steps, History.from_arrays(prev.history), mesh,
                        resumed_from=prev.step, lock=lock)


def _run_at_step_0(run_dir: Path, model=None) -> Run:
    """A run directory whose training stopped before its first checkpoint (``kill -9``, a full disk):
    its config and vocabulary, and the parameters ``init_train_state`` gives them, step 0."""
    cfg, vocab, _ = read_run_start(run_dir, model)
    params, opt_state, state, key_data = init_train_state(cfg, vocab.size)
    return Run(params, None, vocab, cfg, {}, History().arrays(), run_dir, opt_state, key_data, 0, state)


def _chunk_fn(tr: Training):
    """The jitted chunk: the plain one, or with records (``--diagnose-every``, ``--verify-every``),
    whose :class:`~bpjax.diagnostics.Recorder` is made here (continuing a resumed run's records)."""
    cfg = tr.cfg
    if not (cfg.diagnose_every or cfg.verify_every):
        return make_train_chunk(gradient_fn(cfg.model, cfg.grad), make_optimizer(cfg), cfg.batch_size, tr.mesh)
    from . import diagnostics as D

    X, Y = (jnp.asarray(a[:cfg.batch_size]) for a in tr.splits["train"])
    tr.recorder = D.Recorder.for_model(cfg.spec, tr.params, tr.state, X, Y, cfg.grad == "manual")
    if tr.resumed_from is not None and tr.run_dir is not None and (tr.run_dir / D.FILE).is_file():
        tr.recorder.continue_from(D.load(tr.run_dir), tr.step)
    return D.make_recorded_chunk(cfg.spec, cfg.grad, make_optimizer(cfg), cfg.batch_size, cfg.diagnose_every,
                                 tr.mesh)


def _banner(tr: Training) -> str:
    return (f"bpjax train: {tr.cfg.model_name}, {n_params(tr.params):,} parameters, vocabulary {tr.vocab.size}, "
            f"{len(tr.splits['train'][0]):,} training rows, grad {tr.cfg.grad}, steps {tr.step:,}→{tr.end:,}"
            + (f", run directory {tr.run_dir}" if tr.run_dir is not None else "")
            + (f", {tr.mesh.size} devices" if tr.mesh is not None else ""))


def _data_on_devices(tr: Training):
    """The training rows and the key on the device (replicated over the mesh, with the state)."""
    Xtr, Ytr = (jnp.asarray(a) for a in tr.splits["train"])
    if tr.mesh is None:
        return Xtr, Ytr, jnp.asarray(tr.key_data)
    tr.params, tr.opt_state, tr.state, Xtr, Ytr = replicate((tr.params, tr.opt_state, tr.state, Xtr, Ytr), tr.mesh)
    return Xtr, Ytr, replicate(tr.key_data, tr.mesh)


def _train_segment(tr: Training, runner: ChunkRunner, key, Xtr, Ytr, a: int, b: int) -> np.ndarray:
    """Steps ``[a, b)`` in one chunk; the state advances only if every loss and parameter is finite.
    Otherwise the last good state is checkpointed and :class:`TrainingDiverged` says where."""
    args = (tr.params, tr.opt_state, tr.state, key, jnp.int32(a), Xtr, Ytr)
    run_chunk = runner.compile(tr.static(a, b), *args)  # compiled once per length, outside the timing
    t = time.perf_counter()
    params, opt_state, state, losses, finite, *extras = run_chunk(*args)
    losses = local_value(losses)  # the one host round trip per chunk
    tr.exec_seconds += time.perf_counter() - t
    extras = to_local(extras[0]) if extras else {}
    if "records" in extras:
        tr.recorder.add(extras["records"])
    bad = ~np.isfinite(losses)
    diverged = bad.any() or not bool(local_value(finite))
    first = (a + int(np.argmax(bad)) if bad.any() else b) if diverged else b
    if "verify" in extras:  # --verify-every: the checks before the divergence (after it both sides are NaN)
        _verified(tr, extras["verify"], before=first)
    if diverged:
        if tr.recorder is not None:
            tr.recorder.truncate(first + 1)  # how the statistics went, up to the divergence
        _checkpoint(tr)  # the chunk's start: the last good state
        what = losses[bad][0] if bad.any() else "finite but the parameters did not"
        where = (f"the last good checkpoint (step {tr.step}) is in {tr.run_dir}" if tr.run_dir is not None
                 else "nothing was saved (no run directory)")
        raise TrainingDiverged(f"loss became {what} at step {first}; stopped ({where}); try a smaller --lr")
    tr.params, tr.opt_state, tr.state, tr.step = params, opt_state, state, b
    tr.steps_run += b - a
    tr.history.lossi.extend(np.log10(losses).tolist())
    return losses


def _verified(tr: Training, checks: dict, before: int) -> None:
    """``--verify-every``: keep a chunk's checks of steps before ``before`` (each on the parameters
    and minibatch of the step about to be taken). At a failing row the records stop at its step,
    the chunk is dropped, the state it started from is checkpointed, and
    :class:`VerificationFailed` names the step, the parameter and the rule it broke."""
    for j, step in enumerate(checks["step"].tolist()):
        if step >= before:
            break
        failed = tr.recorder.add_verification(step, {"maxdiff": checks["maxdiff"][j], "scale": checks["scale"][j]})
        if failed is None:
            continue
        name, maxdiff, bound, (rel, absolute) = failed
        tr.recorder.truncate(step + 1)
        _checkpoint(tr)  # the chunk's start: the last state before the failing check
        where = (f"the last good checkpoint (step {tr.step:,}, where this chunk began) is in {tr.run_dir}"
                 if tr.run_dir is not None else "nothing was saved (no run directory)")
        raise VerificationFailed(
            f"at step {step:,} the hand-written gradient of {name} disagrees with jax.grad: maxdiff {maxdiff:.3e} > "
            f"{bound:.3e} (the pass rule: {rel:g} x max|oracle| + {absolute:g}); stopped ({where}); "
            + (f"see bpjax check --model {tr.cfg.model_name}" if tr.cfg.model in models.names() else
               "compare its layers with bpjax.check_vjp"))


def _evaluate(tr: Training, names):
    """Eval statistics (the model's: calibration or running ones) and eval-mode split losses, on
    this host's copy of the (replicated) state."""
    p, st = to_local(tr.params), to_local(tr.state)
    bn = tr.cfg.spec.eval_stats(p, st, tr.splits["train"][0])
    return bn, split_losses(tr.cfg.spec, p, bn, tr.splits, names)


def _checkpoint(tr: Training, bn=None) -> None:
    """Checkpoint (with the history up to ``tr.step``) and history.npz; process 0 only."""
    if tr.run_dir is None or not _is_main():
        return
    p, st = to_local(tr.params), to_local(tr.state)
    bn = tr.cfg.spec.eval_stats(p, st, tr.splits["train"][0]) if bn is None else bn
    if tr.recorder is not None:  # first: a kill between the two leaves records ahead, never behind
        from . import diagnostics

        diagnostics.save(tr.run_dir, tr.recorder)
    save_checkpoint(tr.run_dir, p, to_local(tr.opt_state), st, tr.key_data, tr.step, bn, tr.history,
                    identity=run_identity(tr.cfg, tr.vocab, tr.data_info["sha256"]))


def _metrics(tr: Training, ev: dict, status: str, compile_seconds: float, wall_seconds: float) -> dict:
    m = {**ev, "status": status, "steps": tr.step, "steps_run": tr.steps_run,
         "steps_per_second": tr.steps_run / tr.exec_seconds if tr.exec_seconds > 0 else None,
         "compile_seconds": compile_seconds, "wall_seconds": wall_seconds,
         "model": tr.cfg.model_name, "grad": tr.cfg.grad, "seed": tr.cfg.seed, "n_params": n_params(tr.params),
         "batch_size": tr.cfg.batch_size, "device": environment()["device"],
         "mesh_devices": tr.mesh.size if tr.mesh is not None else 1, "process_count": jax.process_count()}
    if tr.resumed_from is not None:
        m["resumed_from"] = tr.resumed_from
    return m


def _write_results(tr: Training, metrics: dict, save_plot: bool) -> None:
    if tr.run_dir is None:
        return
    from .io import atomic_write_json

    atomic_write_json(tr.run_dir / "metrics.json", metrics)
    if save_plot and _is_main():
        title = f"{tr.cfg.model_name}, {tr.cfg.grad} gradients, seed {tr.cfg.seed}"
        plot_history(tr.history.arrays(), tr.run_dir / "loss.png", title=title)
        if tr.recorder is not None:
            from . import diagnostics

            diagnostics.save_figure(tr.recorder.arrays(), tr.run_dir / diagnostics.FIGURE, title=title)


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def _signals_stop():
    """Ctrl-C (SIGINT), SIGTERM (``timeout``, SLURM, docker stop) and SIGHUP (a closed terminal)
    finish the chunk in flight and stop; the caller checkpoints and writes its results, and the
    CLI exits 128 + the signal's number (130, 143, 129). A later signal does not cut that short: it
    says so on stderr (``kill -9`` or Ctrl-\\ end the process at once). The handler only sets a
    flag, so no exception is ever raised inside JAX or a half-written file.

    Yields an object with ``received() -> bool`` and ``signum`` (the first signal's number)."""

    class Stop:
        signum = None

        def received(self) -> bool:
            return self.signum is not None

    stop = Stop()

    def on_signal(signum, frame):
        if stop.signum is None:
            stop.signum = signum
        else:
            os.write(2, b"bpjax: already stopping: finishing the chunk in flight and saving the run\n")

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
