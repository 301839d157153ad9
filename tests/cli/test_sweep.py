"""bpjax sweep on the command line: sharded over devices by default on a CPU, bad options refused before any work."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

FOUR = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
NO_CACHE = {"JAX_ENABLE_COMPILATION_CACHE": "false"}  # see tests/training/test_distributed.py


def cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bpjax", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **NO_CACHE, **(env or {})},
    )


def test_sweep_sharded_over_devices(names_path, tmp_path):
    r = cli(
        "sweep",
        "--data",
        str(names_path),
        "--seeds",
        "4",
        "--steps",
        "300",
        "--n-hidden",
        "16",
        "--devices",
        "4",
        "--out",
        str(tmp_path),
        env=FOUR,
    )
    assert r.returncode == 0, r.stderr
    g = json.loads((tmp_path / "sweep.json").read_text())["groups"][0]
    assert g["sharded_over"] == 4 and g["seeds"] == 4 and np.isfinite(g["val_mean"])
    bad = cli("sweep", "--seeds", "0", "--out", str(tmp_path))
    assert bad.returncode == 2 and "--seeds" in bad.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--seeds", "2", "--steps", "0"], "--steps >= 1"),
        (["--seeds", "2", "--n-hidden", "8,0", "--steps", "10"], "n-hidden must be a positive"),
        (["--seeds", "x"], "could not read a number"),
        (["--lrs", "0.1,-1", "--steps", "10"], "lr must be a positive"),
    ],
)
def test_sweep_bad_options_before_training(names_path, tmp_path, args, needle):
    r = cli("sweep", "--data", str(names_path), *args, "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "s").exists()


def test_sweep_cli_defaults_to_every_core_and_rejects_zero_devices(names_path, tmp_path):
    r = cli(
        "sweep",
        "--data",
        str(names_path),
        "--seeds",
        "3",
        "--steps",
        "40",
        "--n-hidden",
        "8",
        "--out",
        str(tmp_path / "s"),
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode == 0, r.stderr
    g = json.loads((tmp_path / "s" / "sweep.json").read_text())["groups"][0]
    assert g["sharded_over"] == 2 and g["seeds"] == 3 and len(g["runs"]) == 3
    for bad in ("0", "-1"):
        r = cli("sweep", "--devices", bad, "--out", str(tmp_path / "t"))
        assert r.returncode == 2 and "--devices" in r.stderr and not (tmp_path / "t").exists()
