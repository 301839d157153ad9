"""Training: correctness of the step's gradients, determinism, resume, run directory, bad input."""
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import mlp
from bpjax.check import compare
from bpjax.config import Config
from bpjax.errors import CheckpointError, ConfigError, TrainingDiverged
from bpjax.optim import sgd_step_decay
from bpjax.rundir import load_run
from bpjax.step import gradient_fn, sample_batches, segments
from bpjax.train import fit
from conftest import run_cli

SMALL = dict(n_hidden=32, steps=600, chunk=250)


def small(**kw):
    return Config(**{**SMALL, **kw})


def test_schedule():
    tx = sgd_step_decay(0.1, 100, 0.1)
    g = {"w": jnp.ones(2)}
    state = tx.init(g)
    rates = []
    for _ in range(102):
        u, state = tx.update(g, state)
        rates.append(-float(u["w"][0]))
    assert rates[0] == rates[99] == np.float32(0.1)  # steps 0..99
    assert rates[100] == rates[101] == np.float32(0.01)  # from step 100: 0.01 exactly, not 0.1f * 0.1f
    assert Config(steps=200_000).decay_step == 100_000 and Config(steps=10, lr_decay_step=3).decay_step == 3


def test_segments_cut_at_chunks_checkpoints_and_evals():
    assert segments(0, 10, [4]) == [(0, 4), (4, 8), (8, 10)]
    assert segments(3, 10, [4, 5]) == [(3, 4), (4, 5), (5, 8), (8, 10)]
    assert segments(5, 5, [4]) == []


@pytest.mark.parametrize("at_step", [0, 1000])
def test_manual_gradients_equal_jax_grad_during_training(names_path, tmp_path, at_step):
    """The notebook's bug (stale bn_raw / bn_var_inv) would fail this after step 0."""
    run = fit(Config(steps=max(at_step, 1), chunk=500), data=names_path, out=False, stop_at=at_step,
              verbose=False, save_plot=False)
    Xtr, Ytr = (jnp.asarray(a) for a in run_splits(names_path)["train"])
    # the very minibatch and gradient functions the training step uses at this step
    key = jax.random.wrap_key_data(jnp.asarray(run.key_data))
    X, Y = (a[0] for a in sample_batches(key, jnp.array([at_step], jnp.int32), Xtr, Ytr, 32))
    (l_m, _), g_m = gradient_fn("mlp", "manual")(run.params, run.state, X, Y)
    (l_a, _), g_a = gradient_fn("mlp", "autodiff")(run.params, run.state, X, Y)
    t = compare(g_m, g_a, mlp.PARAM_KEYS)
    assert t.ok, str(t)
    assert l_m == l_a and run.step == at_step


def run_splits(names_path):
    from bpjax.data import Vocab, load_words, make_splits

    w = load_words(names_path)
    return make_splits(w, Vocab.from_words(w))


@pytest.fixture(scope="module")
def short_run(names_path, tmp_path_factory):
    """400 steps with evals at 200 and 400, in a run directory: the tests below read it."""
    out = tmp_path_factory.mktemp("short") / "run"
    return fit(small(steps=400, eval_every=200), data=names_path, out=out, verbose=False), out


def test_short_training_lowers_the_loss(short_run):
    run, _ = short_run
    lossi = run.history["lossi"]
    assert lossi.shape == (400,)
    assert 10 ** lossi[:50].mean() > 10 ** lossi[-50:].mean() + 0.3  # ~3.3 -> ~2.6
    assert run.metrics["val_loss"] < 2.8
    assert list(run.history["eval_steps"]) == [200, 400]


def test_run_directory_files(short_run):
    _, out = short_run
    assert set(os.listdir(out)) >= {"config.json", "metrics.json", "vocab.json", "checkpoint.npz",
                                    "history.npz", "loss.png"}
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    env = json.loads((out / "config.json").read_text())["environment"]
    assert {"python", "jax", "jaxlib", "optax", "numpy", "device"} <= set(env)


def test_metrics_json(short_run):
    run, out = short_run
    m = json.loads((out / "metrics.json").read_text())
    for k in ("train_loss", "val_loss", "test_loss", "steps", "steps_per_second", "compile_seconds",
              "wall_seconds", "grad", "seed", "n_params"):
        assert k in m, k
    assert m["steps"] == 400 and m["grad"] == "manual" and m["model"] == "mlp"
    assert m["n_params"] == mlp.n_params(run.params)


def test_load_run_gives_back_the_run(short_run):
    run, out = short_run
    back = load_run(out)
    assert back.metrics == run.metrics and back.step == 400
    np.testing.assert_array_equal(back.history["lossi"], run.history["lossi"])
    for k in run.params:
        np.testing.assert_array_equal(back.params[k], run.params[k])
    assert len(back.sample(n=5)) == 5


def test_history_has_one_form_in_memory_and_on_disk(names_path, short_run, tmp_path):
    """fit's history and load_run's are the same arrays with the same dtypes, for a complete run
    and stopped ones (0.1.0's fit gave an empty eval_steps as float64, load_run as int64)."""
    stopped = fit(small(steps=400, eval_every=100), data=names_path, out=tmp_path / "s", stop_at=250,
                  verbose=False, save_plot=False)
    empty = fit(small(steps=400), data=names_path, out=tmp_path / "e", stop_at=50, verbose=False, save_plot=False)
    for run, out in (short_run, (stopped, tmp_path / "s"), (empty, tmp_path / "e")):
        back = load_run(out).history
        on_disk = dict(np.load(out / "history.npz"))
        for k in ("lossi", "eval_steps", "eval_val"):
            assert run.history[k].dtype == back[k].dtype == on_disk[k].dtype, (k, run.history[k].dtype, back[k].dtype)
            np.testing.assert_array_equal(run.history[k], back[k])
    assert stopped.history["eval_steps"].dtype == np.int64 and list(stopped.history["eval_steps"]) == [100, 200]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_run_files_follow_the_umask(names_path, tmp_path, umask):
    """Files get 0o666 & ~umask, as open() gives, not mkstemp's 0o600 nor a fixed 0o644."""
    old = os.umask(umask)
    try:
        out = tmp_path / "run"
        fit(small(steps=10), data=names_path, out=out, verbose=False)
    finally:
        os.umask(old)
    modes = {f: os.stat(out / f).st_mode & 0o777 for f in os.listdir(out)}
    assert modes and all(m == 0o666 & ~umask for m in modes.values()), modes


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


@pytest.mark.parametrize("kw, needle", [
    (dict(batch_size=1), "batch size must be >= 2"),
    (dict(steps=-1), "steps must be between 0"),
    (dict(n_hidden=0), "n-hidden must be a positive integer"),
    (dict(lr=0.0), "lr must be a positive"),
    (dict(lr=float("nan")), "lr must be a positive"),
    (dict(grad="magic"), "grad must be one of"),
])
def test_invalid_config(names_path, kw, needle):
    with pytest.raises(ConfigError, match=needle):
        fit(small(**kw), data=names_path, out=False, verbose=False)


def test_stop_at_beyond_steps(names_path):
    with pytest.raises(ConfigError, match="stop-at"):
        fit(small(), data=names_path, out=False, stop_at=601, verbose=False)


def test_run_dir_errors(names_path, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "none")
    out = tmp_path / "r"
    fit(small(steps=10), data=names_path, out=out, verbose=False, save_plot=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(small(steps=10), data=names_path, out=out, verbose=False)
    raw = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(out)
    (out / "checkpoint.npz").write_bytes(raw)
    cfg = json.loads((out / "config.json").read_text())
    cfg["config"]["n_hidden"] = 33
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_run(out)


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(names_path, tmp_path):
    out = tmp_path / "nan"
    # lr 0.1 for 10,000 steps (a checkpoint is written there), then lr 1e4: the loss blows up
    cfg = Config(n_hidden=32, steps=30_000, lr=0.1, lr_decay_step=10_000, lr_decay_factor=1e5, chunk=5_000)
    with pytest.raises(TrainingDiverged, match=r"at step 1\d{4}.*last good checkpoint \(step 10000\)"):
        fit(cfg, data=names_path, out=out, verbose=False)
    z = np.load(out / "checkpoint.npz")
    assert int(z["step"]) == 10_000
    assert all(np.isfinite(z[k]).all() for k in z.files if k.startswith("params/"))
    assert load_run(out).step == 10_000


# --- the command line -----------------------------------------------------------------------
cli = run_cli


def test_cli_train_resume_and_sample(names_path, tmp_path):
    out = tmp_path / "cli"
    r = cli("train", "--data", str(names_path), "--steps", "400", "--n-hidden", "16", "--out", str(out),
            "--stop-at", "200")
    assert r.returncode == 0, r.stderr
    assert "      0/    400:" in r.stdout
    r = cli("train", "--resume", str(out), "--steps", "5")
    assert r.returncode == 2 and "drop --steps" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("train", "--resume", str(out), "--data", str(names_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 200
    assert "val " in r.stdout
    r = cli("sample", "--run", str(out), "-n", "7", "--seed", "3")
    names = r.stdout.split()
    assert r.returncode == 0 and len(names) == 7 and all(n.endswith((".", "…")) for n in names)
    assert cli("sample", "--run", str(out), "-n", "7", "--seed", "3").stdout == r.stdout
    r = cli("sample", "--run", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--data", str(names_path), "--batch-size", "1")
    assert r.returncode == 2 and "batch size must be >= 2" in r.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_checkpoints_and_exits_128_plus_its_number(names_path, tmp_path, sig, code):
    """Ctrl-C, SIGTERM (timeout, SLURM, docker) and SIGHUP: the chunk in flight ends, the run is saved."""
    out = tmp_path / "int"
    p = subprocess.Popen([sys.executable, "-m", "bpjax", "train", "--data", str(names_path), "--steps",
                          "100000000", "--chunk", "2000", "--no-progress", "--out", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:  # wait until training is under way, then interrupt
            if line.startswith("  10000/"):
                break
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == code, err
    run = load_run(out)
    assert 10_000 <= run.step < 100_000_000 and run.metrics["status"] == "interrupted"
    assert run.metrics["signal"] == sig.name and len(run.history["lossi"]) == run.step
    assert not list(out.glob(".*.tmp"))  # no temporary file survives


# --- damaged run directories: one line each, never a traceback ------------------------------
@pytest.fixture(scope="module")
def good_run(names_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run"
    fit(Config(n_hidden=16, steps=300, chunk=100), data=names_path, out=out, stop_at=200, verbose=False,
        save_plot=False)
    return out


def _damage(src, dst, what):
    import shutil

    shutil.copytree(src, dst)
    if what.startswith("config:"):
        key, value = what[len("config:"):].split("=")
        meta = json.loads((dst / "config.json").read_text())
        meta["config"][key] = json.loads(value)
        (dst / "config.json").write_text(json.dumps(meta))
    elif what == "config-no-data":
        meta = json.loads((dst / "config.json").read_text())
        del meta["data"]
        (dst / "config.json").write_text(json.dumps(meta))
    elif what == "vocab":
        (dst / "vocab.json").write_text('{"itos": [".", "ab"]}')
    elif what == "not-json":
        (dst / "config.json").write_text("{nope")
    else:  # an entry of checkpoint.npz replaced
        key, value = what.split("=")
        z = dict(np.load(dst / "checkpoint.npz"))
        z[key] = np.asarray(json.loads(value))
        np.savez(dst / "checkpoint.npz", **z)


@pytest.mark.parametrize("what, needle", [
    ("config:model=\"foo\"", "model must be one of"),
    ("config:n_hidden=\"8\"", "malformed"),
    ("config:steps=100", "outside the run's"),
    ("config-no-data", "which data file"),
    ("not-json", "not valid JSON"),
    ("vocab", "malformed"),
    ("step=[1, 2]", "'step'"),
    ("key=[1, 2, 3]", "RNG key"),
    ("history/lossi=3.0", "loss history"),
    ("history/eval_val=[1.0, 2.0, 3.0]", "loss history"),
])
def test_damaged_run_directory_is_one_line(good_run, tmp_path, what, needle):
    bad = tmp_path / "bad"
    _damage(good_run, bad, what)
    commands = [["train", "--resume", str(bad)]]
    if what != "config-no-data":  # sampling needs no data file
        commands.append(["sample", "--run", str(bad)])
    for args in commands:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        assert needle in r.stderr, r.stderr


def test_resuming_a_complete_run_is_an_error(names_path, tmp_path):
    out = tmp_path / "done"
    fit(Config(n_hidden=16, steps=50, chunk=50), data=names_path, out=out, verbose=False, save_plot=False)
    with pytest.raises(ConfigError, match="already complete"):
        fit(resume=out, verbose=False)


def test_unwritable_paths_are_one_line(names_path, tmp_path):
    (tmp_path / "file").write_text("x")
    r = cli("train", "--data", str(names_path), "--steps", "10", "--out", str(tmp_path / "file" / "run"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = cli("check", "--data", str(names_path), "--json", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = cli("train", "--data", str(names_path), "--steps", "5000000000")
    assert r.returncode == 2 and "2**31" in r.stderr
    r = cli("sample", "--run", str(tmp_path), "--seed", "100000000000000000000000")
    assert r.returncode == 2 and "seed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
