"""fit: a short run learns, the same seed is the same run, a stopped run resumes to the straight one,
a divergence stops with its step; signals and full disks lose nothing."""

import json
import math
import os

import numpy as np
import pytest

from bpjax import Config, fit, load_run
from bpjax.errors import ConfigError, TrainingDiverged
from conftest import assert_one_line_error, run_cli

SMALL = dict(n_hidden=32, steps=600, chunk=250)


def small(**kw):
    return Config(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def short_run(names_path, tmp_path_factory):
    """400 steps with evals at 200 and 400, in a run directory."""
    out = tmp_path_factory.mktemp("short") / "run"
    return fit(small(steps=400, eval_every=200), data=names_path, out=out, verbose=False), out


def test_short_training_lowers_the_loss(short_run):
    run, _ = short_run
    lossi = run.history["lossi"]
    assert lossi.shape == (400,)
    assert 10 ** lossi[:50].mean() > 10 ** lossi[-50:].mean() + 0.3  # ~3.3 -> ~2.6
    assert run.metrics["val_loss"] < 2.8
    assert list(run.history["eval_steps"]) == [200, 400]


def test_same_seed_twice_is_identical_and_autodiff_agrees(names_path):
    a = fit(small(), data=names_path, out=False, verbose=False)
    b = fit(small(), data=names_path, out=False, verbose=False)
    np.testing.assert_array_equal(a.history["lossi"], b.history["lossi"])
    for k in ("train_loss", "val_loss", "test_loss"):
        assert a.metrics[k] == b.metrics[k]
    c = fit(small(grad="autodiff"), data=names_path, out=False, verbose=False)
    assert abs(a.metrics["val_loss"] - c.metrics["val_loss"]) < 1e-3


def test_stop_and_resume_equals_straight(names_path, tmp_path):
    straight = fit(small(), data=names_path, out=tmp_path / "a", verbose=False)
    cfg = small()
    # 301: odd-length segments (250, 51 | 199, 250, 100) against the straight run's 250, 250, 100
    stopped = fit(cfg, data=names_path, out=tmp_path / "b", stop_at=301, verbose=False)
    assert stopped.metrics["status"] == "stopped" and load_run(tmp_path / "b").step == 301
    resumed = fit(resume=tmp_path / "b", verbose=False)
    assert resumed.metrics["resumed_from"] == 301 and resumed.step == 600
    np.testing.assert_array_equal(resumed.history["lossi"], straight.history["lossi"])
    for k in ("train_loss", "val_loss", "test_loss"):
        assert resumed.metrics[k] == straight.metrics[k]
    for k in straight.params:
        np.testing.assert_array_equal(resumed.params[k], straight.params[k])


def test_invalid_settings_stop_fit_before_any_work(names_path, tmp_path):
    with pytest.raises(ConfigError, match="batch-size must be >= 2"):
        fit(small(batch_size=1), data=names_path, out=tmp_path / "r", verbose=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="stop-at"):
        fit(small(), data=names_path, out=False, stop_at=601, verbose=False)


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(names_path, tmp_path):
    out = tmp_path / "nan"
    # lr 0.1 for 10,000 steps (a checkpoint is written there), then lr 1e30: the parameters overflow
    cfg = Config(n_hidden=32, steps=30_000, lr=0.1, lr_decay_step=10_000, lr_decay_factor=1e31, chunk=5_000)
    with pytest.raises(TrainingDiverged, match=r"at step 1\d{4}.*last good checkpoint \(step 10,000\)"):
        fit(cfg, data=names_path, out=out, verbose=False)
    z = np.load(out / "checkpoint.npz")
    assert int(z["step"]) == 10_000
    assert all(np.isfinite(z[k]).all() for k in z.files if k.startswith("params/"))
    assert load_run(out).step == 10_000


def test_a_finite_training_whose_eval_loss_is_not_finite_stops(names_path, tmp_path):
    """lr 1e20: every minibatch loss stays finite (log-softmax, bounded gradients) while the parameters
    reach 1e20 and eval mode's batch-norm statistics overflow: not a NaN that trains silently."""
    with pytest.raises(
        TrainingDiverged,
        match=r"the eval-mode \w+ loss became nan at step 300 \(the parameters "
        r"reached .*e\+\d\d\); stopped \(no checkpoint was written yet\)",
    ):
        fit(Config(n_hidden=16, steps=300, lr=1e20, chunk=100), data=names_path, out=tmp_path / "r", verbose=False)


ZOO = ("bigram", "bengio", "rnn", "gru", "bow", "transformer")
ZOO_SMALL = {
    "bengio": {"n_embd": 5, "n_embd2": 6},
    "rnn": {"n_embd": 5, "n_embd2": 6},
    "gru": {"n_embd": 5, "n_embd2": 6},
    "bow": {"n_embd": 5, "n_embd2": 6},
    "transformer": {"n_layer": 1, "n_embd": 8, "n_head": 2},
}


@pytest.mark.parametrize("name", ZOO)
def test_a_few_hundred_steps_lower_the_loss_and_sample(names_path, name):
    run = fit(Config(name, steps=300, chunk=150, **ZOO_SMALL.get(name, {})), data=names_path, out=False, verbose=False)
    lossi = run.history["lossi"]
    assert 10 ** lossi[:20].mean() > 10 ** lossi[-20:].mean() + 0.05
    assert run.config.block_size == 16
    assert run.metrics["val_loss"] < math.log(27) - 0.04  # learnt something beyond the uniform guess
    names = run.sample(n=4, seed=1)
    assert len(names) == 4 and all(n.endswith((".", "…")) for n in names)


# --- a run directory's life cycle under signals and faults --------------------------------
def _short(**kw):
    return Config(n_hidden=16, steps=300, chunk=100, **kw)


@pytest.fixture(scope="module")
def reference(names_path):
    """The uninterrupted run every interrupted one must end equal to."""
    return fit(_short(), data=names_path, out=False, verbose=False).metrics


def test_a_signal_during_the_final_phase_loses_nothing(names_path, tmp_path, monkeypatch, reference):
    import signal

    from bpjax.training import loop

    evaluate = loop.evaluate

    def evaluate_then_ctrl_c(tr, names):
        if "test" in names:  # the final evaluation, and a second Ctrl-C right after the first
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return evaluate(tr, names)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_ctrl_c)
    run = fit(_short(), data=names_path, out=tmp_path / "r", verbose=False)
    assert run.metrics["status"] == "complete" and run.metrics["signal"] == "SIGINT"
    back = load_run(tmp_path / "r")
    assert back.step == 300 and back.metrics["val_loss"] == reference["val_loss"]
    assert (tmp_path / "r" / "history.npz").is_file()


def test_a_signal_during_start_up_leaves_a_run_that_resumes_to_the_same_result(
    names_path, tmp_path, monkeypatch, reference
):
    import signal

    from bpjax.training import session

    init = session.init_train_state

    def init_then_sigterm(*a, **k):
        signal.raise_signal(signal.SIGTERM)  # as `timeout` would, while JAX starts up
        return init(*a, **k)

    monkeypatch.setattr(session, "init_train_state", init_then_sigterm)
    run = fit(_short(), data=names_path, out=tmp_path / "r", verbose=False)
    assert run.step == 0 and run.metrics["status"] == "interrupted" and run.metrics["signal"] == "SIGTERM"
    assert load_run(tmp_path / "r").step == 0
    monkeypatch.setattr(session, "init_train_state", init)
    done = fit(resume=tmp_path / "r", verbose=False)
    assert done.metrics["status"] == "complete" and done.metrics["val_loss"] == reference["val_loss"]


def test_ctrl_c_during_start_up_stops_without_evaluating_and_resumes(names_path, tmp_path, reference):
    """SIGINT as soon as the header prints (while JAX compiles): the run ends with no evaluation of
    zero steps, exit 130, and --resume finishes it to the uninterrupted result."""
    import signal
    import subprocess
    import sys

    run = tmp_path / "r"
    argv = ["--data", str(names_path), "--n-hidden", "16", "--steps", "300", "--chunk", "100", "--no-progress"]
    p = subprocess.Popen(
        [sys.executable, "-m", "bpjax", "train", *argv, "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        header = p.stdout.readline()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert header.startswith("bpjax train: mlp") and p.returncode == 130, (header, out, err)
    assert "val " not in out and "stopped before step 0: nothing trained" in out, out
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "interrupted" and m["signal"] == "SIGINT" and m["steps"] == 0
    assert not any(k.endswith("_loss") for k in m) and not (run / "loss.png").exists()
    res = run_cli("train", "--resume", str(run), "--no-progress")
    assert res.returncode == 0, res.stderr
    done = json.loads((run / "metrics.json").read_text())
    assert done["status"] == "complete" and done["val_loss"] == reference["val_loss"]


@pytest.mark.parametrize(
    "lost", [("checkpoint.npz", "history.npz", "metrics.json", "loss.png"), ("metrics.json", "loss.png")]
)
def test_a_run_that_lost_its_last_files_resumes_to_the_same_result(names_path, tmp_path, lost, reference):
    """kill -9 before the first checkpoint (no checkpoint: resume from step 0), or a full disk
    after the last checkpoint (no metrics: resume writes them): --resume finishes either."""
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


def test_a_full_disk_names_the_file_and_leaves_a_run_that_resume_finishes(
    names_path, tmp_path, monkeypatch, capsys, reference
):
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
    rc = main(
        [
            "train",
            "--data",
            str(names_path),
            "--n-hidden",
            "16",
            "--steps",
            "300",
            "--chunk",
            "100",
            "--no-progress",
            "--out",
            str(run),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(run / "history.npz") in err[0] and "No space left" in err[0], err
    assert (run / "checkpoint.npz").exists() and not (run / "metrics.json").exists()
    assert not list(run.glob(".*.tmp"))
    monkeypatch.setattr(io.os, "fsync", fsync)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "complete" and m["val_loss"] == reference["val_loss"]


# --- the GPT on a text ----------------------------------------------------------------------------
def test_a_small_gpt_learns_shakespeare_and_reports_train_and_val(gpt_run):
    m = json.loads((gpt_run / "metrics.json").read_text())
    assert m["status"] == "complete" and m["steps"] == 300 and "test_loss" not in m  # a text has no test split
    assert m["val_loss"] < 2.9 < 4.17  # from ln(65) = 4.17 at the init
    run = load_run(gpt_run)
    assert run.history["eval_steps"].tolist() == [150, 300]
    assert run.config.schedule == "cosine" and run.config.weight_decay_on == "matrices"


def test_a_gpt_with_dropout_and_accumulation_resumes_bit_for_bit(shakespeare_path, tmp_path):
    from conftest import SMALL_GPT

    cfg = Config("gpt", steps=24, chunk=12, dropout=0.2, grad_accum=2, batch_size=4, warmup_steps=4, **SMALL_GPT)
    straight = fit(cfg, data=shakespeare_path, out=tmp_path / "a", verbose=False, save_plot=False)
    fit(cfg, data=shakespeare_path, out=tmp_path / "b", stop_at=12, verbose=False, save_plot=False)
    resumed = fit(resume=tmp_path / "b", data=shakespeare_path, verbose=False, save_plot=False)
    for a, b in zip(np.asarray(straight.history["lossi"]), np.asarray(resumed.history["lossi"]), strict=True):
        assert a == b
    import jax

    for a, b in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
