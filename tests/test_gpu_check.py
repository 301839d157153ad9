"""experiments/gpu_check.py, the GPU script, run end to end on CPU at tiny sizes (no GPU in CI)."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "gpu_check.py"


def run(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_gpu_check_refuses_a_machine_without_a_gpu(tmp_path):
    r = run("--out", str(tmp_path / "g"))
    assert r.returncode == 2 and "JAX sees no GPU" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def _in_process(*args, timeout=None):
    """``bpjax ARGS`` through ``bpjax.cli.main`` in this process: the script's own logic, without six
    JAX start-ups (its subprocess runner is three lines)."""
    import contextlib
    import io
    import time

    from bpjax.cli import main

    out, err, t = io.StringIO(), io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, "\n".join((out.getvalue() + err.getvalue()).strip().splitlines()[-3:]), time.perf_counter() - t


def _load():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    return gpu_check


def test_gpu_check_runs_every_part_at_tiny_sizes(names_path, tmp_path, monkeypatch):
    gpu_check = _load()
    monkeypatch.setattr(gpu_check, "bpjax", _in_process)
    assert gpu_check.main(["--tiny", "--allow-cpu", "--data", str(names_path), "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["device"]["platform"] == "cpu" and res["device"]["kind"]
    assert all(c["exit"] == 0 for c in res["commands"]), res["commands"]
    assert {c["name"] for c in res["commands"]} == {"check mlp float32", "check mlp float64", "bench", "train mlp"}
    assert res["train"]["mlp"]["steps"] == 20 and res["bench"]["rows"]
    assert res["vmap_sweep"]["models"] == 8 and res["vmap_sweep"]["model_steps_per_second"] > 0
    assert set(res["train"]) == {"mlp"}  # tiny: one model through the training part (the full run trains three)
    assert all(t["steps"] == 20 and t["val_loss"] > 0 for t in res["train"].values())
    assert any(row["group"] == "vmap" for row in res["bench"]["rows"])
    md = (tmp_path / "gpu_check.md").read_text()
    assert f"**{res['device']['kind']}**" in md and "| 8 notebook MLPs under vmap |" in md
    assert res["skipped"] == [] and "skipped" not in md


def test_a_command_past_its_time_limit_is_killed_and_recorded():
    rc, tail, secs = _load().bpjax("check", "--model", "transformer", "--float64", timeout=0.5)
    assert rc == 124 and "killed after" in tail and secs < 30


def test_past_the_deadline_every_part_is_skipped_and_listed(names_path, tmp_path, monkeypatch):
    gpu_check = _load()
    ran = []
    monkeypatch.setattr(gpu_check, "bpjax", lambda *a, **kw: ran.append(a))
    monkeypatch.setattr(gpu_check, "MIN_SECONDS", 10**6)  # every command finds the deadline near
    rc = gpu_check.main(["--tiny", "--allow-cpu", "--data", str(names_path), "--out", str(tmp_path),
                         "--deadline", "60"])
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1 and ran == [] and res["commands"] == []
    assert res["skipped"] == ["check mlp float32", "check mlp float64", "train mlp", "vmap sweep of 8 MLPs", "bench"]
    assert "| bench | skipped: the deadline came first |" in (tmp_path / "gpu_check.md").read_text()
