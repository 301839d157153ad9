"""The run directory: its files, their modes, one-line errors for damaged or tampered ones, and bpjax
0.1.0's directories, which sample and resume as 0.1.0 did."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from bpjax import Config, fit, load_run
from bpjax.errors import CheckpointError, ConfigError
from bpjax.models import mlp
from conftest import assert_one_line_error, run_cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "run-0.1.0"
SMALL = dict(n_hidden=32, steps=600, chunk=250)
cli = run_cli


def small(**kw):
    return Config(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def short_run(names_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("short") / "run"
    return fit(small(steps=400, eval_every=200), data=names_path, out=out, verbose=False), out


def test_run_directory_files(short_run):
    _, out = short_run
    assert set(os.listdir(out)) >= {
        "config.json",
        "metrics.json",
        "vocab.json",
        "checkpoint.npz",
        "history.npz",
        "loss.png",
    }
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    env = json.loads((out / "config.json").read_text())["environment"]
    assert {"python", "jax", "jaxlib", "optax", "numpy", "device"} <= set(env)


def test_metrics_json(short_run):
    run, out = short_run
    m = json.loads((out / "metrics.json").read_text())
    for k in (
        "train_loss",
        "val_loss",
        "test_loss",
        "steps",
        "steps_per_second",
        "compile_seconds",
        "wall_seconds",
        "grad",
        "seed",
        "n_params",
    ):
        assert k in m, k
    assert m["steps"] == 400 and m["grad"] == "manual" and m["model"] == "mlp"
    assert m["n_params"] == mlp.n_params(run.params)
    steps, vals = run.history["eval_steps"], run.history["eval_val"]  # nanoGPT's figure: the best val
    assert len(vals) > 1 and m["best_val_loss"] == vals.min() and m["best_val_step"] == steps[vals.argmin()]


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


@pytest.fixture(scope="module")
def good_run(names_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run"
    fit(
        Config(n_hidden=16, steps=300, chunk=100), data=names_path, out=out, stop_at=200, verbose=False, save_plot=False
    )
    return out


def _damage(src, dst, what):
    shutil.copytree(src, dst)
    if what.startswith("config:"):
        key, value = what[len("config:") :].split("=")
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


@pytest.mark.parametrize(
    "what, needle",
    [
        ('config:model="foo"', "model must be one of"),
        ('config:n_hidden="8"', "malformed"),
        ("config:steps=100", "outside the run's"),
        ("config-no-data", "which data file"),
        ("not-json", "not valid JSON"),
        ("vocab", "malformed"),
        ("step=[1, 2]", "'step'"),
        ("key=[1, 2, 3]", "RNG key"),
        ("history/lossi=3.0", "loss history"),
        ("history/eval_val=[1.0, 2.0, 3.0]", "loss history"),
    ],
)
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


def _short(**kw):
    return Config(n_hidden=16, steps=300, chunk=100, **kw)


@pytest.fixture(scope="module")
def stopped_run(names_path, tmp_path_factory):
    """A run stopped at step 100 of 300: each test tampers with its own copy."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    fit(_short(), data=names_path, out=out, stop_at=100, verbose=False)
    return out


def _edit_npz(path, fn):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    fn(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "tamper, needle",
    [
        ("other_checkpoint", "does not belong"),
        ("lr", "does not belong"),
        ("split_seed", "does not belong"),
        ("batch_size", "does not belong"),
        ("vocab", "does not belong"),
        ("nan_bn", "non-finite eval statistics"),
        ("opt_count", "counted"),
    ],
)
def test_a_tampered_run_directory_is_refused(names_path, tmp_path, stopped_run, tamper, needle):
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
        _edit_npz(
            run / "checkpoint.npz", lambda a: a.update({k: np.full_like(a[k], np.nan) for k in a if k.startswith("bn")})
        )
    elif tamper == "opt_count":
        _edit_npz(
            run / "checkpoint.npz", lambda a: a.update({k: a[k] + 7 for k in a if k.startswith("opt") and "count" in k})
        )
    for cmd in (["sample", "--run", str(run)], ["train", "--resume", str(run)]):
        assert_one_line_error(run_cli(*cmd), needle)


def test_the_hash_is_checked_before_a_recorded_data_file_is_parsed(names_path, tmp_path):
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
    run = tmp_path / "r"
    fit(_short(), data=names_path, out=run, stop_at=100, verbose=False)
    (run / "vocab.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(run_cli("sample", "--run", str(run)), "nested too deeply")


def test_the_new_settings_leave_older_runs_identity_alone():
    """A run written before a setting existed (diagnose_every, verify_every; the GPT's schedule,
    warmup, clipping, accumulation, ...) recorded the hash of a config without it: at its default it
    stays out of the hash, so the run's checkpoint still belongs to it; set, it is part of it."""
    from bpjax.data import Vocab
    from bpjax.training.rundir import IDENTITY_OPTIONAL, run_identity

    assert set(IDENTITY_OPTIONAL) == {
        "diagnose_every",
        "verify_every",
        "schedule",
        "warmup_steps",
        "min_lr",
        "grad_clip",
        "grad_accum",
        "weight_decay_on",
        "compute_dtype",
    }
    cfg, vocab = Config(), Vocab.from_words(["emma", "ava"])
    before = {k: v for k, v in cfg.to_json().items() if k not in IDENTITY_OPTIONAL}
    blob = json.dumps({"config": before, "vocab": vocab.to_json(), "data_sha256": "x"}, sort_keys=True)
    assert run_identity(cfg, vocab, "x") == hashlib.sha256(blob.encode()).hexdigest()
    for changed in ({"diagnose_every": 100}, {"grad_accum": 2}, {"schedule": "cosine"}, {"grad_clip": 1.0}):
        assert run_identity(cfg.replace(**changed), vocab, "x") != run_identity(cfg, vocab, "x")


# --- run directories of bpjax 0.1.0 ---------------------------------------------------------
@pytest.fixture
def old_runs(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "runs")
    return tmp_path / "runs", json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("model", ["mlp", "wavenet"])
def test_0_1_0_run_directory_samples_as_0_1_0_did(old_runs, model):
    runs, expected = old_runs
    r = run_cli("sample", "--run", str(runs / model), "-n", "5", "--seed", "1", "--draw", "gumbel")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == expected[model]["sample_seed1_n5"]  # 0.1.0's draws, its names
    fast = run_cli("sample", "--run", str(runs / model), "-n", "5", "--seed", "1")  # today's inverse-CDF draws
    assert fast.returncode == 0, fast.stderr
    names = fast.stdout.split()
    assert len(names) == 5 and all(n.endswith(".") for n in names) and names != expected[model]["sample_seed1_n5"]


def state_digest(checkpoint) -> str:
    """SHA-256 of a checkpoint's training state: every params, optimizer-state, model-state, key and step
    array (name, dtype, shape and bytes), in name order."""
    h = hashlib.sha256()
    with np.load(checkpoint) as z:
        for k in sorted(z.files):
            if re.match(r"(params|opt|state|key|step)(\W|$)", k):
                a = z[k]
                for part in (k, str(a.dtype), str(a.shape)):
                    h.update(part.encode())
                h.update(a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("model", ["mlp", "wavenet"])
def test_0_1_0_run_directory_resumes_to_0_1_0s_result(old_runs, names_path, model):
    """The fixture was stopped at step 40 of 60 by bpjax 0.1.0. Resumed under the JAX it was recorded
    with (both on a CPU), the training state it reaches (parameters, optimizer state, running
    statistics, key) is 0.1.0's bit for bit: its SHA-256, as 0.1.0's code wrote it. The losses match
    0.1.0's to float32 rounding: the fused cross-entropy now takes log-softmax where 0.1.0 took
    ``log(probs)`` (the same value; one ulp apart where the two roundings differ: measured 1.4e-8 relative
    in the MLP's train loss, one log10 minibatch loss 6e-8 apart, the WaveNet's equal). Another JAX's XLA
    may fuse and round float32 sums differently (jax 0.11.2 moved the WaveNet's losses by 6e-8 relative):
    there the state is not compared and the losses agree to rounding accumulated over 20 steps."""
    runs, expected = old_runs
    recorded = json.loads((runs / model / "config.json").read_text())["environment"]
    import jaxlib

    same_jax = (jax.__version__, jaxlib.__version__) == (recorded["jax"], recorded["jaxlib"])  # run_cli: on a CPU
    r = run_cli("train", "--resume", str(runs / model), "--data", str(names_path), "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((runs / model / "metrics.json").read_text())
    assert m["resumed_from"] == 40 and m["steps"] == 60
    lossi = np.load(runs / model / "history.npz")["lossi"]
    got = [m["train_loss"], m["val_loss"], m["test_loss"], *lossi[-3:].tolist()]
    want = [expected[model][k] for k in ("train_loss", "val_loss", "test_loss")] + expected[model]["lossi_tail"]
    if same_jax:
        assert state_digest(runs / model / "checkpoint.npz") == expected[model]["resumed_state_sha256"]
        np.testing.assert_allclose(got, want, rtol=1.2e-7, atol=0)  # one float32 ulp
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
