"""TensorBoard scalars of a run, written into its directory through tensorboardX, so that
``tensorboard --logdir runs`` overlays runs (``pip install 'bpjax[tensorboard]'`` for the viewer).

Every scalar's step is the number of steps trained when it holds (the x axis of ``loss.png``):

    loss/train_batch     the mean training-mode minibatch loss of the ``w`` steps before it, at every
                         multiple of ``w = ceil(steps / 1000)`` (about 1,000 points a run; the last,
                         partial, window too when the run completes); ``history.npz``'s ``10**lossi``
    lr                   the learning rate of the last of those ``w`` steps
    loss/val             the eval-mode validation loss at each evaluation (``history.npz``'s
                         ``eval_steps``, ``eval_val``)
    loss/train, loss/test    the eval-mode losses of every split at the end (``metrics.json``)
    steps_per_second     each chunk's training speed (not compiling, not evaluating)
    update_data/<param>  with ``--diagnose-every``: log10(std(update) / std(parameter)) of each record
    saturation/<nonlinearity>   with ``--diagnose-every``: the share of |t| > 0.97 of each record

(Non-finite diagnostics — a parameter with no spread — are left out.) Everything is written on the
host at chunk boundaries, by process 0 only, through tensorboardX's background writer: the jitted
loop never waits for it. A resumed run of step ``k`` writes a new event file that purges (as
TensorBoard reads it) what its earlier files hold past ``k`` (a run killed after its last
checkpoint), and writes only steps after ``k``: the curves continue, each step once. (A run with no
event file yet, from a bpjax before them, gets its history's curves up to ``k`` on resuming.)
:func:`read_scalars` reads a run's event files back, as TensorBoard does, without TensorFlow.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .optim import learning_rate

TRAIN_POINTS = 1000
"""About this many ``loss/train_batch`` points a run (TensorBoard keeps 1,000 of a tag by default)."""
FLUSH_SECONDS = 10
"""How often the background writer flushes (a live ``tensorboard`` sees a running run's progress)."""
PATTERN = "events.out.tfevents.*"


def train_window(cfg) -> int:
    """``w``: the steps one ``loss/train_batch`` point averages."""
    return max(1, math.ceil(cfg.steps / TRAIN_POINTS))


class Scalars:
    """The writer of one part of a run (a start, or a resume from ``tr.step``): :meth:`sync` writes
    what ``tr``'s history, speed and diagnostics records hold past what was written; :meth:`finish`
    the end's losses; :meth:`close` flushes and closes the event file."""

    def __init__(self, tr):
        self.run_dir, self.step0 = Path(tr.run_dir), tr.step
        # a resumed run's earlier event files hold its steps up to here (a run of a bpjax before them: none)
        self.resumed = tr.resumed_from is not None and any(self.run_dir.glob(PATTERN))
        self.floor = tr.step if self.resumed else -1  # what is written: steps after floor
        self.w = train_window(tr.cfg)
        self.next_window = ((tr.step if self.resumed else 0) // self.w + 1) * self.w
        self.evals = len(tr.history.evals) if self.resumed else 0
        self.last = (tr.step, tr.exec_seconds)
        self.diag_done = self.floor  # the step of the last diagnostics record written
        self.writer = None  # made at the first scalar: a run refused before it leaves no event file

    def open(self):
        from tensorboardX import SummaryWriter

        suffix = base = f".step{self.step0:012d}.{os.getpid()}"  # names sort in the order the parts ran
        i = 0
        while any(self.run_dir.glob(f"{PATTERN}{suffix}")):  # tensorboardX names a file by the second
            i += 1
            suffix = f"{base}.{i}"
        return SummaryWriter(
            str(self.run_dir),
            purge_step=self.step0 + 1 if self.resumed else None,
            flush_secs=FLUSH_SECONDS,
            filename_suffix=suffix,
        )

    def add(self, tag: str, value, step: int) -> None:
        value = float(value)
        if step > self.floor and math.isfinite(value):
            if self.writer is None:
                self.writer = self.open()
            self.writer.add_scalar(tag, value, int(step))

    def sync(self, tr) -> None:
        """Write the complete training windows, the evaluations, the chunk's speed and the diagnostics
        records that ``tr`` holds and this writer has not written (call at chunk boundaries)."""
        lossi, cfg = tr.history.lossi, tr.cfg
        while self.next_window <= len(lossi):
            self.window(cfg, lossi, self.next_window - self.w, self.next_window)
            self.next_window += self.w
        for s, v in tr.history.evals[self.evals :]:
            self.add("loss/val", v, s)
        self.evals = len(tr.history.evals)
        steps, seconds = tr.step - self.last[0], tr.exec_seconds - self.last[1]
        if steps > 0 and seconds > 0:
            self.add("steps_per_second", steps / seconds, tr.step)
        self.last = (tr.step, tr.exec_seconds)
        if tr.recorder is not None and tr.cfg.diagnose_every:
            self.records(tr.recorder)

    def window(self, cfg, lossi, a: int, b: int) -> None:
        self.add("loss/train_batch", np.mean(10.0 ** np.asarray(lossi[a:b], np.float64)), b)
        self.add("lr", learning_rate(cfg, b - 1), b)

    def records(self, recorder) -> None:
        """The diagnostics records of steps past what was written (``Recorder.diag``'s chunks)."""
        for rec in recorder.diag:
            for j, s in enumerate(np.asarray(rec.get("step", [])).tolist()):
                if s <= self.diag_done:
                    continue
                for p, name in enumerate(recorder.param_names):
                    self.add(f"update_data/{name}", rec["update_data"][j, p], s)
                for a, name in enumerate(recorder.probe_names):
                    self.add(f"saturation/{name}", rec["act_saturated"][j, a], s)
                self.diag_done = s

    def finish(self, tr, metrics: dict) -> None:
        """The end of this part: what :meth:`sync` has not written, a completed run's last partial
        window, and the eval-mode loss of every split; then a flush."""
        self.sync(tr)
        n = len(tr.history.lossi)
        if n == tr.cfg.steps and self.next_window - self.w < n:
            self.window(tr.cfg, tr.history.lossi, self.next_window - self.w, n)
            self.next_window = n + self.w  # written: a second finish does not repeat it
        for split in ("train", "test"):
            if f"{split}_loss" in metrics:
                self.add(f"loss/{split}", metrics[f"{split}_loss"], tr.step)
        if self.writer is not None:
            self.writer.flush()

    def flush(self) -> None:
        """What is written, on disk (before a checkpoint: a resume from it writes only the steps after)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class NoScalars:
    """Where nothing is written (no run directory, or not process 0): :class:`Scalars`' calls, doing nothing."""

    def sync(self, tr) -> None:
        pass

    def finish(self, tr, metrics: dict) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_scalars(tr) -> Scalars | NoScalars:
    """The run's :class:`Scalars`; :class:`NoScalars` without a run directory or on a process other than 0."""
    import jax

    if tr.run_dir is None or jax.process_index() != 0:
        return NoScalars()
    return Scalars(tr)


# --------------------------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------------------------
def records(path: Path):
    """The TFRecord payloads of an event file (``uint64 length, uint32 masked crc32c of it, data,
    uint32 masked crc32c of the data``). A truncated last record (a file being written, or its writer
    killed) ends the file; a checksum that does not match is a :class:`CheckpointError`."""
    from tensorboardX.record_writer import masked_crc32c

    raw = Path(path).read_bytes()
    i = 0
    while i + 12 <= len(raw):
        header = raw[i : i + 8]
        (n,) = struct.unpack("<Q", header)
        if i + 12 + n + 4 > len(raw):
            return
        (crc_h,) = struct.unpack("<I", raw[i + 8 : i + 12])
        data = raw[i + 12 : i + 12 + n]
        (crc_d,) = struct.unpack("<I", raw[i + 12 + n : i + 16 + n])
        if crc_h != masked_crc32c(header) or crc_d != masked_crc32c(data):
            raise CheckpointError(f"{path}: a record's checksum does not match at byte {i}; the event file is damaged")
        yield data
        i += 16 + n


def read_scalars(run_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tag: (steps int64 [n], values float64 [n])}`` from a run's event files, in the order
    TensorBoard reads them (by name), with their purges applied (a ``SessionLog.START`` at step ``p``
    drops the earlier files' points of steps ``>= p``). Points are in the order written."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    points: dict[str, list] = {}
    for path in sorted(Path(run_dir).glob(PATTERN)):
        for data in records(path):
            ev = Event.FromString(data)
            if ev.HasField("session_log") and ev.session_log.status == SessionLog.START:
                points = {t: [(s, v) for s, v in p if s < ev.step] for t, p in points.items()}
            for value in ev.summary.value:
                v = value.simple_value if value.HasField("simple_value") else value.tensor.float_val[0]
                points.setdefault(value.tag, []).append((ev.step, v))
    return {
        t: (np.array([s for s, _ in p], np.int64), np.array([v for _, v in p], np.float64)) for t, p in points.items()
    }
