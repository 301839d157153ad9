"""Stopping a run on a signal without losing it: the handler only sets a flag."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Stop:
    """The first stop signal received (``signum``, None while none has come)."""

    signum = None

    def received(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def signals_stop():
    """Ctrl-C (SIGINT), SIGTERM (``timeout``, SLURM, docker stop) and SIGHUP (a closed terminal)
    finish the chunk in flight and stop; the caller checkpoints and writes its results, and the
    CLI exits 128 + the signal's number (130, 143, 129). A later signal does not cut that short: it
    says so on stderr (``kill -9`` or Ctrl-\\ end the process at once). The handler only sets a
    flag, so no exception is ever raised inside JAX or a half-written file.

    Yields a :class:`Stop`."""
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
