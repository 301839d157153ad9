"""Faults a hostile or unlucky user meets (issue 14): each case failed before its fix.

A closed pipe, a diverging sweep, options that could only fail after the work, and the small ones:
an empty --out, a long --json name, an ASCII-only terminal, a tab in a name, a symlink loop, a
decayed learning rate that float32 rounds to zero.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import assert_one_line_error, run_cli


def _bpjax(*args):
    return [sys.executable, "-m", "bpjax", *args]


def test_closed_pipe_does_not_kill_training(names_path, tmp_path):
    """`bpjax train ... | head -1`: the reader leaves after one line, the run still completes."""
    out = tmp_path / "run"
    p = subprocess.Popen(_bpjax("train", "--data", str(names_path), "--n-hidden", "16", "--steps", "3000",
                                "--chunk", "100", "--no-progress", "--out", str(out)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    p.stdout.readline()
    p.stdout.close()  # as `head -1` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err
    assert json.loads((out / "metrics.json").read_text())["status"] == "complete"


def test_closed_pipe_ends_sampling_quietly(names_path, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--data", str(names_path), "--n-hidden", "16", "--steps", "50", "--no-progress",
                   "--out", str(run)).returncode == 0
    p = subprocess.Popen(_bpjax("sample", "--run", str(run), "-n", "20000"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.stdout.readline().strip()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and err == "", err


def test_a_sweep_whose_losses_blow_up_is_reported_not_a_traceback(names_path, tmp_path):
    res = run_cli("sweep", "--data", str(names_path), "--seeds", "2", "--lrs", "1000", "--n-hidden", "16",
                  "--steps", "100", "--devices", "1", "--out", str(tmp_path / "s"))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    g = json.loads((tmp_path / "s" / "sweep.json").read_text())["groups"][0]
    assert g["diverged"] == 2 and g["val_mean"] is None and g["val_std"] is None
    assert all(r["diverged"] for r in g["runs"])
    one = run_cli("sweep", "--data", str(names_path), "--seeds", "1", "--lrs", "1000", "--n-hidden", "16",
                  "--steps", "100", "--devices", "1", "--out", str(tmp_path / "t"))
    assert one.returncode == 1  # an inf loss with finite parameters is diverged too
    assert json.loads((tmp_path / "t" / "sweep.json").read_text())["groups"][0]["runs"][0]["diverged"]


@pytest.mark.parametrize("cmd", [["sweep", "--seeds", "2", "--steps", "10"], ["bench", "--steps", "10"]])
def test_an_out_that_is_a_file_is_refused_before_the_work(tmp_path, cmd):
    f = tmp_path / "a-file"
    f.write_text("x")
    res = run_cli(*cmd, "--out", str(f), timeout=60)
    assert_one_line_error(res, "is a file")
    assert f.read_text() == "x"


def test_empty_out_is_refused(names_path, tmp_path):
    res = run_cli("train", "--data", str(names_path), "--steps", "10", "--out", "", cwd=tmp_path)
    assert_one_line_error(res, "--out is empty")
    assert list(tmp_path.iterdir()) == []


def test_check_json_with_a_name_at_the_length_limit(tmp_path, names_path):
    out = tmp_path / ("r" * 250 + ".json")  # 255 bytes: the longest name the file system takes
    res = run_cli("check", "--data", str(names_path), "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["rows"]


def test_sample_on_an_ascii_only_terminal(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("zoë\nchloé\nzoë\n" * 20, encoding="utf-8")
    run = tmp_path / "run"
    assert run_cli("train", "--data", str(names), "--n-hidden", "8", "--steps", "50", "--no-progress",
                   "--out", str(run)).returncode == 0
    res = run_cli("sample", "--run", str(run), "-n", "30", env={"PYTHONIOENCODING": "ascii"})
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.isascii() and res.stdout.count("\n") == 30


def test_a_tab_inside_a_name_is_called_a_tab(tmp_path):
    from bpjax.data import load_words
    from bpjax.errors import DataError

    p = tmp_path / "names.txt"
    p.write_text("anna\nbob\tby\n")
    with pytest.raises(DataError, match="line 2 .* contains a tab"):
        load_words(p)


def test_a_symlink_loop_is_called_a_loop(tmp_path):
    from bpjax.data import load_words
    from bpjax.errors import DataError

    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(DataError, match="symlink loop"):
        load_words(a)
    dangling = tmp_path / "d"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match="broken symlink"):
        load_words(dangling)


def test_a_decayed_rate_that_float32_rounds_to_zero_is_refused():
    from bpjax import Config
    from bpjax.errors import ConfigError

    with pytest.raises(ConfigError, match="round to 0"):
        Config(lr_decay_factor=1e-50).validate()
    Config(lr_decay_factor=1e-30).validate()  # 1e-31 is a float32 number: fine


# --- a run directory's life cycle ------------------------------------------------------------
def _short(**kw):
    from bpjax import Config

    return Config(n_hidden=16, steps=300, chunk=100, **kw)


@pytest.fixture(scope="module")
def reference(names_path):
    """The uninterrupted run every interrupted one must end equal to."""
    from bpjax import fit

    return fit(_short(), data=names_path, out=False, verbose=False).metrics


def test_a_signal_during_the_final_phase_loses_nothing(names_path, tmp_path, monkeypatch, reference):
    import signal

    from bpjax import load_run, train

    evaluate = train._evaluate

    def evaluate_then_ctrl_c(tr, names):
        if "test" in names:  # the final evaluation, and a second Ctrl-C right after the first
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return evaluate(tr, names)

    monkeypatch.setattr(train, "_evaluate", evaluate_then_ctrl_c)
    run = train.fit(_short(), data=names_path, out=tmp_path / "r", verbose=False)
    assert run.metrics["status"] == "complete" and run.metrics["signal"] == "SIGINT"
    back = load_run(tmp_path / "r")
    assert back.step == 300 and back.metrics["val_loss"] == reference["val_loss"]
    assert (tmp_path / "r" / "history.npz").is_file()


def test_a_signal_during_start_up_leaves_a_run_that_resumes_to_the_same_result(names_path, tmp_path,
                                                                               monkeypatch, reference):
    import signal

    from bpjax import fit, load_run, train

    init = train.init_train_state

    def init_then_sigterm(*a, **k):
        signal.raise_signal(signal.SIGTERM)  # as `timeout` would, while JAX starts up
        return init(*a, **k)

    monkeypatch.setattr(train, "init_train_state", init_then_sigterm)
    run = fit(_short(), data=names_path, out=tmp_path / "r", verbose=False)
    assert run.step == 0 and run.metrics["status"] == "interrupted" and run.metrics["signal"] == "SIGTERM"
    assert load_run(tmp_path / "r").step == 0
    monkeypatch.setattr(train, "init_train_state", init)
    done = fit(resume=tmp_path / "r", verbose=False)
    assert done.metrics["status"] == "complete" and done.metrics["val_loss"] == reference["val_loss"]


@pytest.mark.parametrize("lost", [("checkpoint.npz", "history.npz", "metrics.json", "loss.png"),
                                  ("metrics.json", "loss.png")])
def test_a_run_that_lost_its_last_files_resumes_to_the_same_result(names_path, tmp_path, lost, reference):
    """kill -9 before the first checkpoint (no checkpoint: resume from step 0), or a full disk
    after the last checkpoint (no metrics: resume writes them): --resume finishes either."""
    from bpjax import fit

    fit(_short(), data=names_path, out=tmp_path / "r", verbose=False)
    for name in lost:
        (tmp_path / "r" / name).unlink()
    (tmp_path / "r" / ".checkpoint.npz.0123abcd.tmp").write_bytes(b"half a checkpoint")  # kill -9 mid-write
    res = run_cli("train", "--resume", str(tmp_path / "r"), "--no-progress")
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["status"] == "complete" and m["val_loss"] == reference["val_loss"]
    assert not list((tmp_path / "r").glob(".*.tmp"))
    again = run_cli("train", "--resume", str(tmp_path / "r"))
    assert_one_line_error(again, "already complete")


def test_one_writer_per_run_directory(names_path, tmp_path):
    from bpjax import fit
    from bpjax.rundir import RunLock

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


# --- data read once; JSON bounded ------------------------------------------------------------
def test_data_from_stdin_is_hashed_as_read_and_a_resume_on_other_words_is_refused(names_path, tmp_path):
    import hashlib

    raw = names_path.read_bytes()
    run = tmp_path / "r"
    res = run_cli("train", "--data", "/dev/stdin", "--n-hidden", "8", "--steps", "200", "--stop-at", "100",
                  "--no-progress", "--out", str(run), input=raw.decode())
    assert res.returncode == 0, res.stderr
    info = json.loads((run / "config.json").read_text())["data"]
    assert info["sha256"] == hashlib.sha256(raw).hexdigest() and info["words"] == len(raw.decode().split())
    other = run_cli("train", "--resume", str(run), input="anna\nbob\n" * 20)
    assert_one_line_error(other, "not the one this run trained on")


def test_a_fifo_without_a_writer_and_an_endless_device_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(run_cli("check", "--data", str(fifo), timeout=60), "holds no words")
    assert_one_line_error(run_cli("check", "--data", "/dev/zero", timeout=60), "larger than")


def test_the_hash_is_checked_before_a_recorded_data_file_is_parsed(names_path, tmp_path):
    from bpjax import fit

    run = tmp_path / "r"
    fit(_short(), data=names_path, out=run, stop_at=100, verbose=False)
    secret = tmp_path / "secret.txt"
    secret.write_text("password.hunter2\n")  # a '.' in a line: parsing it would echo the line
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["path"] = str(secret)
    (run / "config.json").write_text(json.dumps(cfg))
    res = run_cli("train", "--resume", str(run))
    assert_one_line_error(res, "not the one this run trained on")
    assert "hunter2" not in res.stderr


def test_deeply_nested_json_in_a_run_directory_is_one_line(names_path, tmp_path):
    from bpjax import fit

    run = tmp_path / "r"
    fit(_short(), data=names_path, out=run, stop_at=100, verbose=False)
    (run / "vocab.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(run_cli("sample", "--run", str(run)), "nested too deeply")


# --- sizes that fail before they allocate ----------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["train", "--n-hidden", str(10**30)], "n-hidden must be below 2**31"),
    (["train", "--block-size", str(10**30)], "block-size must be below 2**31"),
    (["train", "--block-size", "100000000"], "use a smaller --block-size"),
    (["train", "--n-embd", str(10**8)], "21,900,001,947 parameters"),
    (["train", "--batch-size", str(10**9), "--steps", "10"], "lower --batch-size"),
    (["check", "--batch-size", str(10**9)], "more than the"),
    (["sweep", "--seeds", str(10**9)], "--seeds must be a count from 1 to 1,000,000"),
    (["sample", "--run", "RUN", "--max-len", str(10**9)], "max-len must be between 1 and 10,000"),
])
def test_absurd_sizes_are_refused_in_one_line_before_they_allocate(names_path, tmp_path, args, needle):
    from bpjax import fit

    if "RUN" in args:
        fit(_short(), data=names_path, out=tmp_path / "run", stop_at=100, verbose=False)
        args = [str(tmp_path / "run") if a == "RUN" else a for a in args]
    out = [] if args[0] in ("check", "sample") else ["--out", str(tmp_path / "out")]
    data = [] if args[0] == "sample" else ["--data", str(names_path)]
    res = run_cli(*args, *data, *out, timeout=120)
    assert_one_line_error(res, needle)
    assert not (tmp_path / "out").exists()  # nothing left behind: the same --out works next time


def test_many_names_are_drawn_in_batches(names_path, tmp_path):
    from bpjax import fit
    from bpjax.sample import SAMPLE_CHUNK

    run = fit(_short(), data=names_path, out=False, verbose=False)
    names = run.sample(n=SAMPLE_CHUNK + 5, seed=1)
    assert len(names) == SAMPLE_CHUNK + 5 and names[:20] == run.sample(n=20, seed=1)
    assert names[SAMPLE_CHUNK:] != names[:5]  # the next batch has its own key


# --- run identity: files that do not belong together ----------------------------------------
@pytest.fixture(scope="module")
def stopped_run(names_path, tmp_path_factory):
    """A run stopped at step 100 of 300: each test tampers with its own copy."""
    from bpjax import fit

    out = tmp_path_factory.mktemp("stopped") / "run"
    fit(_short(), data=names_path, out=out, stop_at=100, verbose=False)
    return out


def _edit_npz(path, fn):
    import numpy as np

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    fn(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("tamper, needle", [
    ("other_checkpoint", "does not belong"),
    ("lr", "does not belong"),
    ("split_seed", "does not belong"),
    ("batch_size", "does not belong"),
    ("vocab", "does not belong"),
    ("nan_bn", "non-finite eval statistics"),
    ("opt_count", "counted"),
])
def test_a_tampered_run_directory_is_refused(names_path, tmp_path, stopped_run, tamper, needle):
    import shutil

    import numpy as np

    from bpjax import fit

    run = tmp_path / "r"
    shutil.copytree(stopped_run, run)
    cfg_path = run / "config.json"
    if tamper == "other_checkpoint":
        fit(_short(seed=1), data=names_path, out=tmp_path / "other", stop_at=100, verbose=False)
        shutil.copy(tmp_path / "other" / "checkpoint.npz", run / "checkpoint.npz")
    elif tamper in ("lr", "split_seed", "batch_size"):
        cfg = json.loads(cfg_path.read_text())
        cfg["config"][tamper] = {"lr": 0.5, "split_seed": 7, "batch_size": 64}[tamper]
        cfg_path.write_text(json.dumps(cfg))
    elif tamper == "vocab":
        v = json.loads((run / "vocab.json").read_text())
        key = next(k for k in v if isinstance(v[k], list))
        v[key][1], v[key][2] = v[key][2], v[key][1]
        (run / "vocab.json").write_text(json.dumps(v))
    elif tamper == "nan_bn":
        _edit_npz(run / "checkpoint.npz", lambda a: a.update(
            {k: np.full_like(a[k], np.nan) for k in a if k.startswith("bn")}))
    elif tamper == "opt_count":
        _edit_npz(run / "checkpoint.npz", lambda a: a.update(
            {k: a[k] + 7 for k in a if k.startswith("opt") and "count" in k}))
    for cmd in (["sample", "--run", str(run)], ["train", "--resume", str(run)]):
        assert_one_line_error(run_cli(*cmd), needle)


def test_a_full_disk_names_the_file_and_leaves_a_run_that_resume_finishes(names_path, tmp_path, monkeypatch,
                                                                          capsys, reference):
    """ENOSPC while writing history.npz after the last checkpoint (as on a small tmpfs): one line
    naming the file, no temp file left, and --resume writes what is missing."""
    import errno

    from bpjax import io
    from bpjax.cli import main

    fsync = io.os.fsync

    def full_for_history(fd):
        if "history.npz" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(io.os, "fsync", full_for_history)
    run = tmp_path / "r"
    rc = main(["train", "--data", str(names_path), "--n-hidden", "16", "--steps", "300", "--chunk", "100",
               "--no-progress", "--out", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(run / "history.npz") in err[0] and "No space left" in err[0], err
    assert (run / "checkpoint.npz").exists() and not (run / "metrics.json").exists()
    assert not list(run.glob(".*.tmp"))
    monkeypatch.setattr(io.os, "fsync", fsync)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "complete" and m["val_loss"] == reference["val_loss"]


def test_a_refused_resume_releases_the_lock(names_path, tmp_path):
    """In a notebook: a resume refused after the lock was taken (the wrong data) leaves the
    directory free for the next call in the same process."""
    from bpjax import fit
    from bpjax.errors import CheckpointError

    fit(_short(), data=names_path, out=tmp_path / "r", stop_at=100, verbose=False)
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\n" * 20)
    with pytest.raises(CheckpointError, match="not the one this run trained on"):
        fit(resume=tmp_path / "r", data=other, verbose=False)
    assert fit(resume=tmp_path / "r", verbose=False).metrics["status"] == "complete"
