"""How a run begins: a new one claims its directory, a stopped one resumes from it, one writer at a time."""

import os

import pytest

from bpjax import Config, fit
from bpjax.errors import CheckpointError, ConfigError
from bpjax.training.runlock import RunLock
from conftest import assert_one_line_error, run_cli


def _short(**kw):
    return Config(n_hidden=16, steps=300, chunk=100, **kw)


def test_one_writer_per_run_directory(names_path, tmp_path):
    fit(_short(), data=names_path, out=tmp_path / "r", stop_at=100, verbose=False)
    lock = RunLock(tmp_path / "r")  # another process training it
    try:
        res = run_cli("train", "--resume", str(tmp_path / "r"))
        assert_one_line_error(res, f"being written by another bpjax process (pid {os.getpid()})")
        new = run_cli("train", "--data", str(names_path), "--steps", "10", "--out", str(tmp_path / "r"))
        assert new.returncode == 2 and "already holds a run" in new.stderr
    finally:
        lock.release()
    (tmp_path / "r" / ".lock").write_text("999999999")  # left by a process that died: taken over
    res = run_cli("train", "--resume", str(tmp_path / "r"), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "r" / ".lock").exists()  # a finished run leaves no lock file


def test_a_refused_resume_releases_the_lock(names_path, tmp_path):
    """In a notebook: a resume refused after the lock was taken (the wrong data) leaves the
    directory free for the next call in the same process."""
    fit(_short(), data=names_path, out=tmp_path / "r", stop_at=100, verbose=False)
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\n" * 20)
    with pytest.raises(CheckpointError, match="not the one this run trained on"):
        fit(resume=tmp_path / "r", data=other, verbose=False)
    assert fit(resume=tmp_path / "r", verbose=False).metrics["status"] == "complete"


def test_resuming_a_complete_run_is_an_error(names_path, tmp_path):
    out = tmp_path / "done"
    fit(Config(n_hidden=16, steps=50, chunk=50), data=names_path, out=out, verbose=False, save_plot=False)
    with pytest.raises(ConfigError, match="already complete"):
        fit(resume=out, verbose=False)


def test_a_resume_keeps_its_own_configuration(names_path, tmp_path):
    fit(_short(), data=names_path, out=tmp_path / "r", stop_at=100, verbose=False, save_plot=False)
    with pytest.raises(ConfigError, match="a resumed run keeps its own configuration"):
        fit(_short(), resume=tmp_path / "r", verbose=False)
    with pytest.raises(ConfigError, match="model= is for resume"):
        fit(_short(), out=False, model=Config().spec, verbose=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        fit(resume=tmp_path / "none", verbose=False)
