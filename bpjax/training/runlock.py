"""One writer per run directory: :class:`RunLock`, the ``flock`` a training process holds on
``run_dir/.lock``, and :func:`lock_held`, which asks whether one does without taking it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ConfigError

LOCK = ".lock"
"""The file :class:`RunLock` locks in a run directory while a process writes it."""


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``run_dir/.lock``, held while a run
    trains and removed when it ends. The kernel drops it when its process dies (even by ``kill -9``),
    so a lock file left by a dead process is simply taken over. The file holds the writer's pid, for
    the message."""

    def __init__(self, run_dir: Path):
        import fcntl

        self.path = Path(run_dir) / LOCK
        while True:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(self._fd)
                raise ConfigError(
                    f"{run_dir} is being written by another bpjax process (pid {holder}); "
                    "wait for it to finish or choose another --out"
                ) from None
            try:  # the file locked is still the one at the path (not one its last writer just removed)
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self._fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        remove_stale_temp_files(run_dir)

    def release(self) -> None:
        """Remove the lock file, then drop the lock: a finished run leaves no ``.lock``. (A process
        that opened the file just before it went checks, once locked, that it locked the file at the
        path, and opens it again otherwise.)"""
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass  # a read-only or vanished directory: the kernel's lock still goes with the fd
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def lock_held(run_dir: Path) -> bool:
    """Whether a process holds ``run_dir/.lock`` (a run training now), asked without taking the lock:
    Linux's ``/proc/locks`` lists the locked inodes; elsewhere, whether the pid in the file is alive."""
    lock = Path(run_dir) / LOCK
    try:
        st = lock.stat()
    except OSError:
        return False
    try:
        with open("/proc/locks") as f:
            locks = f.read().split("\n")
    except OSError:
        locks = None
    if locks is not None:  # "1: FLOCK  ADVISORY  WRITE 6399 00:2c:123456 0 EOF": major:minor (hex), inode
        file = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        return any("FLOCK" in line and file in line.split() for line in locks)
    try:
        os.kill(int(lock.read_text().strip()), 0)
    except (ValueError, OSError):
        return False
    return True


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the ``.NAME.XXXXXXXX.tmp`` files an atomic write leaves when its process is killed
    mid-write (call with the run's lock held: nobody else is writing). Returns what was removed."""
    gone = []
    for f in Path(run_dir).glob(".*.tmp"):
        if re.fullmatch(r"\..+\.[0-9a-f]{8}\.tmp", f.name) and f.is_file():
            f.unlink(missing_ok=True)
            gone.append(f)
    return gone
