"""Training: :func:`fit`, a short composition of the config, the data, the one training chunk, the
run directory and the reports.

The notebook's "Putting it all together", with its bug fixed (its loop reused ``bn_raw`` and
``bn_var_inv`` from an earlier cell) and the loop moved onto the device:

    run = fit(Config(steps=200_000, grad="manual"))     # or bpjax train
    run.metrics["val_loss"]                             # ≈ 2.16
    run = load_run("runs/20261126-101500")              # the same Run, back from disk
    run = fit(Config(model=my_model, steps=20_000))     # a Model of your own (see bpjax.models)

Its sections read as nanoGPT's ``train.py`` does: start (or resume) the run; the loop over chunks
(train, evaluate, checkpoint); finish (evaluate every split, write the results).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from .. import models
from ..data import split_names, training_arrays
from ..errors import ConfigError, TrainingDiverged, VerificationFailed
from ..models import n_params
from . import session
from .chunk import ChunkRunner, make_train_chunk, plan, run_chunk
from .config import Config
from .distributed import local_value, replicate, to_local
from .evaluate import split_losses
from .memory import check_compiled_fits
from .optim import make_optimizer
from .report import Progress, plot_history
from .run import Run
from .rundir import environment, run_identity, save_checkpoint
from .session import Training, banner, discard_if_untrained, is_main, mesh_of
from .signals import signals_stop
from .step import accumulated, batch_sampler, gradient_fn
from .tensorboard import open_scalars

CHECKPOINT_SECONDS = 60.0  # a long run also checkpoints this often (wall clock)


def fit(
    cfg: Config | None = None,
    *,
    data=None,
    out=None,
    stop_at: int | None = None,
    resume=None,
    devices: int = 1,
    verbose: bool = True,
    progress_bar: bool | None = None,
    save_plot: bool = True,
    model=None,
    params=None,
    steps: int | None = None,
    lr_decay_step: int | None = None,
) -> Run:
    """Train, write the run directory, return the :class:`~bpjax.training.run.Run`.

    ``cfg``: a :class:`~bpjax.training.Config` (default: the notebook's). ``data``: a names file
    (default: the usual search, see ``bpjax.data``). ``out``: the run directory (default
    ``runs/<timestamp>``; ``out=False`` keeps everything in memory). ``stop_at``: stop once that
    many steps have run, with a checkpoint. ``resume``: a run directory to continue to its
    configured steps (``cfg`` must then be ``None``), or to ``steps`` (extended; and from then on
    decaying at ``lr_decay_step``: :mod:`bpjax.training.extend`). ``devices``: data-parallel over that many
    devices of each process (see :mod:`bpjax.training.distributed`); with several processes only
    process 0 writes the checkpoint, history and plot, every process its own metrics.json.
    ``model``: with ``resume``, the :class:`~bpjax.models.Model` of a run trained with a model of your own.
    ``params``: start from these parameters instead of the model's init (a nanoGPT checkpoint through
    :func:`bpjax.nanogpt.from_state_dict`); their tree, shapes and dtypes must be the model's.
    """
    t_wall = time.perf_counter()
    if params is not None and resume is not None:
        raise ConfigError("params= starts a new run; a resumed run continues from its own checkpoint")
    if (model, steps, lr_decay_step) != (None, None, None) and resume is None:
        name = "model" if model is not None else "steps" if steps is not None else "lr_decay_step"
        raise ConfigError(f"{name}= is for resume; a new run's model and steps are fit(Config(model=..., steps=...))")
    if resume is not None and (cfg is not None or stop_at is not None or out is not None):
        raise ConfigError(
            "a resumed run keeps its own configuration, directory and steps; pass no config, stop_at or out with resume"
        )
    log = print if verbose else (lambda *a, **k: None)
    with signals_stop() as stop:  # from the first moment to the last file: a signal never loses the run
        tr = None
        try:
            mesh = mesh_of(devices)
            tr = (
                session.resume(resume, data, mesh, model, steps, lr_decay_step)
                if resume is not None
                else session.start(cfg or Config(), data, out, stop_at, mesh, devices, params)
            )
            tr.scalars = open_scalars(tr)
            if params is not None:
                checkpoint(tr)  # step 0 is the given parameters: a resume must not re-initialise
            log(banner(tr), flush=True)  # at once, through a pipe too
            runner = train(tr, stop, verbose, progress_bar)
            return finish(tr, runner, stop, t_wall, log, save_plot)
        except ConfigError:
            if tr is not None:
                discard_if_untrained(tr)
            raise
        finally:
            if tr is not None:
                tr.scalars.close()  # flushed, whatever ended the run
            if tr is not None and tr.lock is not None:
                tr.lock.release()


# --------------------------------------------------------------------------------------------
# The loop: chunks of steps, their losses, evaluation and checkpoints
# --------------------------------------------------------------------------------------------
def train(tr: Training, stop, verbose: bool = True, progress_bar=None) -> ChunkRunner:
    """Train ``tr`` from its step to its end, chunk by chunk (:func:`~bpjax.training.chunk.plan`),
    until done or a stop signal: the notebook's progress lines (``verbose``) and a bar on a
    terminal (``progress_bar``). Returns the runner (its compile time)."""
    cfg = tr.cfg
    runner = ChunkRunner(chunk_function(tr))
    Xtr, Ytr, key = data_on_devices(tr)
    chunks = plan(cfg, tr.step, tr.end)
    if chunks and not stop.received():  # the largest buffers, from XLA's memory analysis, before anything runs
        compiled = runner.compile(
            chunks[0][2], tr.params, tr.opt_state, tr.state, key, jnp.int32(chunks[0][0]), Xtr, Ytr
        )
        check_compiled_fits(compiled, "--batch-size (or --chunk)")
    progress = Progress(
        cfg.steps,
        tr.step,
        min(10_000, max(1, cfg.steps // 10)),
        out=sys.stdout if verbose else None,
        bar=progress_bar if verbose else False,
    )
    last_checkpoint = time.perf_counter()
    with contextlib.closing(progress):
        for a, b, static in chunks:
            if stop.received():  # a signal during start-up or compilation: stop before training
                break
            compiled = runner.compile(static, tr.params, tr.opt_state, tr.state, key, jnp.int32(a), Xtr, Ytr)
            losses = train_chunk(tr, compiled, key, Xtr, Ytr, a, b)
            progress.lines(a, losses)
            if cfg.eval_every and tr.step % cfg.eval_every == 0 and tr.step < cfg.steps:
                _, ev = evaluate(tr, ("val",))
                tr.history.evals.append((tr.step, ev["val_loss"]))
                progress.write(f"{tr.step:7d}/{cfg.steps:7d}: val {ev['val_loss']:.4f}")  # above the bar
            if time.perf_counter() - last_checkpoint > CHECKPOINT_SECONDS and tr.step < tr.end:
                checkpoint(tr)
                last_checkpoint = time.perf_counter()
            tr.scalars.sync(tr)  # TensorBoard's scalars: on the host, between chunks
            progress.update(tr.step)
            if stop.received():
                break
    return runner


def chunk_for(cfg: Config, mesh=None):
    """The jitted chunk of a run of ``cfg``: plain, or with the diagnostics' and the check's hooks
    (``--diagnose-every``, ``--verify-every``). What ``fit`` runs and ``bench`` times."""
    rate = cfg.spec.dropout(cfg.sizes)
    grad_fn = accumulated(gradient_fn(cfg.model, cfg.grad, rate, cfg.compute_dtype), cfg.grad_accum)
    tx = make_optimizer(cfg)
    hooks = None
    if cfg.diagnose_every or cfg.verify_every:
        from .diagnostics import make_hooks

        hooks = make_hooks(cfg.spec.computing_in(cfg.compute_dtype), cfg.grad, tx, cfg.diagnose_every, mesh, rate)
    return make_train_chunk(grad_fn, tx, cfg.batch_size, mesh, hooks=hooks, sampler=batch_sampler(cfg))


def chunk_function(tr: Training):
    """:func:`chunk_for` this run; with records or checks, their recorder is made here (continuing a
    resumed run's records)."""
    cfg = tr.cfg
    if tr.recording:
        from . import diagnostics as D

        X, Y = (jnp.asarray(a[: cfg.batch_size]) for a in tr.splits["train"])  # a text's: its first windows
        tr.recorder = D.Recorder.for_model(cfg.spec, tr.params, tr.state, X, Y, cfg.grad == "manual")
        if tr.resumed_from is not None and tr.run_dir is not None and (tr.run_dir / D.FILE).is_file():
            tr.recorder.continue_from(D.load(tr.run_dir), tr.step)
    return chunk_for(cfg, tr.mesh)


def data_on_devices(tr: Training):
    """The training rows and the key on the device (replicated over the mesh, with the state)."""
    Xtr, Ytr = (jnp.asarray(a) for a in training_arrays(tr.splits))
    if tr.mesh is None:
        return Xtr, Ytr, jnp.asarray(tr.key_data)
    tr.params, tr.opt_state, tr.state, Xtr, Ytr = replicate((tr.params, tr.opt_state, tr.state, Xtr, Ytr), tr.mesh)
    return Xtr, Ytr, replicate(tr.key_data, tr.mesh)


def train_chunk(tr: Training, compiled, key, Xtr, Ytr, a: int, b: int) -> np.ndarray:
    """Steps ``[a, b)`` in one chunk; the state advances only if every loss and parameter is finite.
    Otherwise the last good state is checkpointed and :class:`TrainingDiverged` says where."""
    out, losses, seconds = run_chunk(compiled, (tr.params, tr.opt_state, tr.state), key, a, Xtr, Ytr, local_value)
    params, opt_state, state, _, finite, extras = out
    tr.exec_seconds += seconds
    extras = to_local(extras)
    if "records" in extras:
        tr.recorder.add(extras["records"])
    bad = ~np.isfinite(losses)
    diverged = bad.any() or not bool(local_value(finite))
    first = (a + int(np.argmax(bad)) if bad.any() else b) if diverged else b
    if "verify" in extras:  # --verify-every: the checks before the divergence (after it both sides are NaN)
        verified(tr, extras["verify"], before=first)
    if diverged:
        if tr.recorder is not None:
            tr.recorder.truncate(first + 1)  # how the statistics went, up to the divergence
        checkpoint(tr)  # the chunk's start: the last good state
        what = losses[bad][0] if bad.any() else "finite but the parameters did not"
        raise TrainingDiverged(f"loss became {what} at step {first}; stopped ({_saved(tr)}); try a smaller --lr")
    tr.params, tr.opt_state, tr.state, tr.step = params, opt_state, state, b
    tr.steps_run += b - a
    tr.history.lossi.extend(np.log10(losses).tolist())
    return losses


def _saved(tr: Training, where: str = "") -> str:
    if tr.run_dir is None or tr.saved_step is None:
        return "nothing was saved (no run directory)" if tr.run_dir is None else "no checkpoint was written yet"
    return f"the last good checkpoint (step {tr.saved_step:,}{where}) is in {tr.run_dir}"


def verified(tr: Training, checks: dict, before: int) -> None:
    """``--verify-every``: keep a chunk's checks of steps before ``before`` (each on the parameters
    and minibatch of the step about to be taken). At a failing row the records stop at its step,
    the chunk is dropped, the state it started from is checkpointed, and
    :class:`VerificationFailed` names the step, every failing parameter (maxdiff, bound, multiple), the
    worst, and the rule they broke."""
    for j, step in enumerate(checks["step"].tolist()):
        if step >= before:
            break
        failed = tr.recorder.add_verification(step, {"maxdiff": checks["maxdiff"][j], "scale": checks["scale"][j]})
        if failed is None:
            continue
        from .diagnostics.recorder import failures

        rules = sorted({f"{rel:g} x max|oracle| + {absolute:g}" for *_, (rel, absolute) in failed})
        tr.recorder.truncate(step + 1)
        checkpoint(tr)  # the chunk's start: the last state before the failing check
        hint = (
            f"see bpjax check --model {tr.cfg.model_name}"
            if tr.cfg.model in models.names()
            else "check its layers with bpjax.check_layer"
        )
        which = (
            f"of {failed[0][0]}"
            if len(failed) == 1
            else f"of {len(failed)} of {len(tr.recorder.param_names)} parameters"
        )
        raise VerificationFailed(
            f"at step {step:,} the hand-written gradient {which} disagrees with jax.grad: "
            f"{failures(failed)} (maxdiff > bound; the pass rule: {' or '.join(rules)}); stopped "
            f"({_saved(tr, ', where this chunk began')}); {hint}"
        )


def evaluate(tr: Training, names):
    """Eval statistics (the model's: calibration or running ones) and eval-mode split losses, on
    this host's copy of the (replicated) state. A loss that is not finite (parameters grown so large
    that eval mode's statistics overflow, while every training loss stayed finite) stops the run:
    :class:`TrainingDiverged`, no new checkpoint."""
    p, st = to_local(tr.params), to_local(tr.state)
    bn = tr.cfg.spec.eval_stats(p, st, tr.splits["train"][0])
    losses = split_losses(tr.cfg.spec, p, bn, tr.splits, names)
    bad = {k: v for k, v in losses.items() if not np.isfinite(v)}
    if bad:
        largest = max(float(np.abs(np.asarray(a)).max()) for a in jax.tree_util.tree_leaves(p))
        k, v = next(iter(bad.items()))
        raise TrainingDiverged(
            f"the eval-mode {k.removesuffix('_loss')} loss became {v} at step {tr.step:,} (the "
            f"parameters reached {largest:.3g}); stopped ({_saved(tr)}); try a smaller --lr"
        )
    return bn, losses


def checkpoint(tr: Training, bn=None) -> None:
    """Checkpoint (with the history up to ``tr.step``) and history.npz; process 0 only."""
    if tr.run_dir is None or not is_main():
        return
    p, st = to_local(tr.params), to_local(tr.state)
    bn = tr.cfg.spec.eval_stats(p, st, tr.splits["train"][0]) if bn is None else bn
    tr.scalars.sync(tr)  # on disk before the checkpoint: a resume writes only the steps after it
    tr.scalars.flush()
    if tr.recorder is not None:  # first: a kill between the two leaves records ahead, never behind
        from . import diagnostics

        diagnostics.save(tr.run_dir, tr.recorder)
    save_checkpoint(
        tr.run_dir,
        p,
        to_local(tr.opt_state),
        st,
        tr.key_data,
        tr.step,
        bn,
        tr.history,
        identity=run_identity(tr.cfg, tr.vocab, tr.data_info["sha256"]),
    )
    tr.saved_step = tr.step


# --------------------------------------------------------------------------------------------
# The end: every split evaluated, the run's files written
# --------------------------------------------------------------------------------------------
def finish(tr: Training, runner: ChunkRunner, stop, t_wall: float, log, save_plot: bool) -> Run:
    """Evaluate every split, checkpoint, write metrics and plots; whatever signal arrives meanwhile.
    Stopped before its first step: no evaluation, no plot, the checkpoint only if there was none."""
    early = stop.received() and not tr.steps_run
    bn, ev = (evaluate(tr, ())[0], session.recorded_losses(tr)) if early else evaluate(tr, split_names(tr.splits))
    if ev and tr.step == tr.cfg.steps and (not tr.history.evals or tr.history.evals[-1][0] != tr.step):
        tr.history.evals.append((tr.step, ev["val_loss"]))
    if not early or tr.saved_step != tr.step:
        checkpoint(tr, bn)
    status = "complete" if tr.step == tr.cfg.steps else ("interrupted" if stop.received() else "stopped")
    metrics = _metrics(tr, ev, status, runner.compile_seconds, time.perf_counter() - t_wall)
    if stop.received():
        metrics["signal"] = signal.Signals(stop.signum).name
    write_results(tr, metrics, save_plot and not early)
    tr.scalars.finish(tr, metrics)
    for k in split_names(tr.splits) if ev else ():
        log(f"{k} {ev[k + '_loss']:.4f}")
    if early:
        log(f"stopped before step {tr.step:,}: nothing trained" + (f"; --resume {tr.run_dir}" if tr.run_dir else ""))
    if metrics["steps_per_second"]:
        log(
            f"{tr.steps_run:,} steps at {metrics['steps_per_second']:,.0f} steps/s "
            f"(+{runner.compile_seconds:.1f} s compiling); {status}"
        )

    def local(t):
        return jax.tree_util.tree_map(jnp.asarray, to_local(t))

    return Run(
        local(tr.params),
        bn,
        tr.vocab,
        tr.cfg,
        metrics,
        tr.history.arrays(),
        tr.run_dir,
        local(tr.opt_state),
        tr.key_data,
        tr.step,
        local(tr.state),
        tr.recorder.arrays() if tr.recorder is not None else None,
    )


def _metrics(tr: Training, ev: dict, status: str, compile_seconds: float, wall_seconds: float) -> dict:
    m = {
        **ev,
        "status": status,
        "steps": tr.step,
        "steps_run": tr.steps_run,
        "steps_per_second": tr.steps_run / tr.exec_seconds if tr.exec_seconds > 0 else None,
        "compile_seconds": compile_seconds,
        "wall_seconds": wall_seconds,
        "model": tr.cfg.model_name,
        "grad": tr.cfg.grad,
        "seed": tr.cfg.seed,
        "n_params": n_params(tr.params),
        "batch_size": tr.cfg.batch_size,
        "device": environment()["device"],
        "mesh_devices": tr.mesh.size if tr.mesh is not None else 1,
        "process_count": jax.process_count(),
    }
    if tr.history.evals:  # nanoGPT's figure, the best of its evaluations (it keeps that checkpoint; bpjax the last)
        m["best_val_step"], m["best_val_loss"] = min(tr.history.evals, key=lambda e: e[1])
    if tr.resumed_from is not None:
        m["resumed_from"] = tr.resumed_from
    if tr.extensions:
        m["extensions"] = tr.extensions
    return m


def write_results(tr: Training, metrics: dict, save_plot: bool) -> None:
    if tr.run_dir is None:
        return
    from ..io import atomic_write_json

    atomic_write_json(tr.run_dir / "metrics.json", metrics)
    if save_plot and is_main():
        title = f"{tr.cfg.model_name}, {tr.cfg.grad} gradients, seed {tr.cfg.seed}"
        plot_history(tr.history.arrays(), tr.run_dir / "loss.png", title=title)
        if tr.recorder is not None:
            from . import diagnostics

            diagnostics.save_figure(tr.recorder.arrays(), tr.run_dir / diagnostics.FIGURE, title=title)
