"""One writer per run directory: the lock a training process holds, and asking whether one does."""

import os

import bpjax.training.runlock as R
from bpjax.training.runlock import RunLock, lock_held


def test_a_lock_file_removed_by_its_last_writer_is_not_the_one_locked(tmp_path, monkeypatch):
    """Between opening .lock and locking it, its writer may finish and remove it: the lock taken is
    then on a file no other process finds, so the next writer opens the path again."""
    (tmp_path / "r").mkdir()
    first = RunLock(tmp_path / "r")
    first.release()
    assert not (tmp_path / "r" / ".lock").exists()
    real_stat, calls = os.stat, []

    def stat_after_a_swap(path, *a, **k):  # the file at the path is replaced once, after the flock
        if str(path).endswith(".lock") and not calls:
            calls.append(path)
            os.unlink(path)
            open(path, "w").close()
        return real_stat(path, *a, **k)

    monkeypatch.setattr(R.os, "stat", stat_after_a_swap)
    lock = RunLock(tmp_path / "r")
    monkeypatch.setattr(R.os, "stat", real_stat)
    assert calls and real_stat(tmp_path / "r" / ".lock").st_ino == os.fstat(lock._fd).st_ino
    lock.release()


def test_a_held_lock_is_seen_without_taking_it(tmp_path):
    """lock_held reads the kernel's locks (the file's device and inode), not the pid in the file:
    a lock file left by a dead process is not held."""
    (tmp_path / "r").mkdir()
    assert not lock_held(tmp_path / "r")  # no lock file
    lock = RunLock(tmp_path / "r")
    assert lock_held(tmp_path / "r")
    lock.release()
    (tmp_path / "r" / ".lock").write_text(str(os.getpid()))  # this pid is alive, but nobody holds the lock
    assert not lock_held(tmp_path / "r")
