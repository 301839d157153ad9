"""bpjax sweep: models of one shape trained at once under vmap, each exactly its single run."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bpjax import Config, fit
from bpjax.errors import ConfigError
from conftest import run_cli

NO_CACHE = {"JAX_ENABLE_COMPILATION_CACHE": "false"}  # see tests/training/test_distributed.py


def python(code, env=None, timeout=600):
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **NO_CACHE, **(env or {})},
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bpjax", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **NO_CACHE, **(env or {})},
    )


def test_sweep_models_equal_their_single_runs(names_path, tmp_path):
    from bpjax.training.sweep import sweep

    base = Config(n_hidden=32, steps=500, chunk=200)
    res = sweep(
        base, seeds=[0, 1], lrs=[0.05, 0.1], n_hiddens=[32, 16], data=names_path, out=tmp_path, log=lambda *a: None
    )
    assert {(g["n_hidden"], g["lr"]) for g in res["groups"]} == {(32, 0.05), (32, 0.1), (16, 0.05), (16, 0.1)}
    assert all(g["models_at_once"] == 4 and g["seeds"] == 2 for g in res["groups"])
    run = next(r for g in res["groups"] if g["n_hidden"] == 32 and g["lr"] == 0.1 for r in g["runs"] if r["seed"] == 1)
    single = fit(Config(n_hidden=32, steps=500, lr=0.1, seed=1), data=names_path, out=False, verbose=False)
    assert abs(run["val_loss"] - single.metrics["val_loss"]) <= 1e-4
    assert (tmp_path / "sweep.md").read_text().count("\n") == 2 + 4
    assert (tmp_path / "sweep.png").exists() and json.loads((tmp_path / "sweep.json").read_text())["groups"]


def test_sweep_drops_duplicates(names_path, tmp_path):
    from bpjax.training.sweep import sweep

    res = sweep(
        Config(n_hidden=8, steps=50, chunk=50),
        seeds=[0, 0],
        lrs=[0.1, 0.1],
        n_hiddens=[8],
        data=names_path,
        log=lambda *a: None,
    )
    assert len(res["groups"]) == 1 and res["groups"][0]["seeds"] == 1


def test_default_sweep_uses_every_core_with_identical_results(names_path):
    """Python API: use_every_core() before JAX starts; the default sweep shards 3 models over 2 CPU
    devices (one padded copy) and gives exactly the single-device losses."""
    r = python(
        f"""
        import json, os
        os.environ.pop("XLA_FLAGS", None)
        import bpjax.training.distributed as d
        d.usable_cores = lambda: 2  # as on a 2-core machine, whatever this one has
        assert d.use_every_core() == 2
        import jax
        from bpjax import Config
        from bpjax.training.sweep import sweep
        out = {{}}
        for devices in (1, None):
            res = sweep(Config(n_hidden=8, steps=60, chunk=30), seeds=[0, 1, 2], lrs=[0.1], data={str(names_path)!r},
                        devices=devices, log=lambda *a: None)
            g = res["groups"][0]
            out[str(devices)] = {{"sharded": g["sharded_over"], "val": [x["val_loss"] for x in g["runs"]]}}
        print(json.dumps({{"devices": jax.device_count(), **out}}))
    """,
        env={"JAX_PLATFORMS": "cpu"},
    )
    assert r["devices"] == 2 and r["None"]["sharded"] == 2 and r["1"]["sharded"] == 1
    assert r["None"]["val"] == r["1"]["val"]  # bit for bit: each model computed on one device either way


def test_a_sweep_whose_losses_blow_up_is_reported_not_a_traceback(names_path, tmp_path):
    res = run_cli(
        "sweep",
        "--data",
        str(names_path),
        "--seeds",
        "2",
        "--lrs",
        "1e30",
        "--n-hidden",
        "16",
        "--steps",
        "100",
        "--devices",
        "1",
        "--out",
        str(tmp_path / "s"),
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    g = json.loads((tmp_path / "s" / "sweep.json").read_text())["groups"][0]
    assert g["diverged"] == 2 and g["val_mean"] is None and g["val_std"] is None
    assert all(r["diverged"] for r in g["runs"])
    one = run_cli(
        "sweep",
        "--data",
        str(names_path),
        "--seeds",
        "1",
        "--lrs",
        "1e30",
        "--n-hidden",
        "16",
        "--steps",
        "100",
        "--devices",
        "1",
        "--out",
        str(tmp_path / "t"),
    )
    assert one.returncode == 1  # one model alone: diverged too
    assert json.loads((tmp_path / "t" / "sweep.json").read_text())["groups"][0]["runs"][0]["diverged"]


def test_a_sweep_records_no_diagnostics():
    from bpjax.training.sweep import sweep

    with pytest.raises(ConfigError, match="a sweep records no diagnostics"):
        sweep(Config(steps=10, diagnose_every=5), seeds=[0], lrs=[0.1])
