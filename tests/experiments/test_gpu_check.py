"""experiments/gpu_check.py, the GPU script, run end to end on CPU at tiny sizes (no GPU in CI)."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent.parent / "experiments" / "gpu_check.py"


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )


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
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # main sets it: kept to this test
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
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    ran = []
    monkeypatch.setattr(gpu_check, "bpjax", lambda *a, **kw: ran.append(a))
    monkeypatch.setattr(gpu_check, "MIN_SECONDS", 10**6)  # every command finds the deadline near
    rc = gpu_check.main(
        ["--tiny", "--allow-cpu", "--data", str(names_path), "--out", str(tmp_path), "--deadline", "60"]
    )
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1 and ran == [] and res["commands"] == []
    assert res["skipped"] == ["check mlp float32", "check mlp float64", "train mlp", "vmap sweep of 8 MLPs", "bench"]
    assert "| bench | skipped: the deadline came first |" in (tmp_path / "gpu_check.md").read_text()


def test_commands_get_the_time_left_and_a_killed_one_is_reported(names_path, tmp_path, monkeypatch):
    """With --deadline each command's limit is the time left less the margin; a command killed at its
    limit is "not finished" in the table; checks run --jobs at a time and are listed in their order;
    a bench that did not finish leaves no figures, not even an earlier run's."""
    import threading

    gpu_check = _load()
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    calls, lock, now = [], threading.Lock(), [0.0]
    monkeypatch.setattr(gpu_check, "clock", lambda: now[0])  # a clock that moves when told

    def fake(*args, timeout=None):
        with lock:
            calls.append((args[0], timeout))
            now[0] += 10.0  # each command takes 10 s
        return (gpu_check.TIMED_OUT if args[0] in ("train", "bench") else 0), "tail", 10.0

    monkeypatch.setattr(gpu_check, "bpjax", fake)
    monkeypatch.setattr(
        gpu_check,
        "vmap_sweep",
        lambda K, steps, data: {
            "models": K,
            "steps": steps,
            "steps_per_second": 1.0,
            "model_steps_per_second": float(K),
            "compile_seconds": 0.0,
            "gflops": None,
        },
    )
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.json").write_text('{"rows": []}')  # an earlier run's
    rc = gpu_check.main(
        [
            "--tiny",
            "--allow-cpu",
            "--data",
            str(names_path),
            "--out",
            str(tmp_path),
            "--deadline",
            "1000",
            "--jobs",
            "2",
        ]
    )
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1 and res["skipped"] == []
    assert [c["name"] for c in res["commands"]] == ["check mlp float32", "check mlp float64", "train mlp", "bench"]
    # the limit a command got: the deadline less the time gone before it started, less the margin
    assert [t for _, t in calls][2:] == [1000 - 20 - gpu_check.MARGIN, 1000 - 30 - gpu_check.MARGIN]
    assert all(t <= 1000 - gpu_check.MARGIN for _, t in calls)
    assert res["bench"] is None and res["train"] == {}
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| bpjax train mlp | not finished (time limit) |" in md
    assert "| bpjax bench | not finished (time limit) |" in md


def test_the_full_run_trains_nanogpts_gpu_recipe_in_float32_and_bfloat16(names_path, tmp_path, monkeypatch):
    """Without --tiny the trainings start with the GPT: nanoGPT's GPU recipe (5,000 steps) in float32 and
    in bfloat16 on its own data, then its autodiff twin's speed; the names models keep --data."""
    gpu_check = _load()
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    calls = []

    def fake(*args, timeout=None):
        calls.append(args)
        return (0 if args[0] == "check" else 1), "tail", 1.0  # trainings "fail": no files to read

    monkeypatch.setattr(gpu_check, "bpjax", fake)
    monkeypatch.setattr(gpu_check, "vmap_sweep", lambda K, steps, data: {"models": K, "model_steps_per_second": 1.0})
    monkeypatch.setattr(gpu_check, "MODELS", ("mlp",))
    gpu_check.main(["--allow-cpu", "--data", str(names_path), "--out", str(tmp_path)])
    trains = [a for a in calls if a[0] == "train"]
    recipe = ["--n-layer", "6", "--n-head", "6", "--n-embd", "384", "--block-size", "256", "--batch-size", "64"]
    gpt = [a for a in trains if a[2] == "gpt"]
    assert len(gpt) == 3 and all(" ".join(recipe) in " ".join(a) and "--dropout" in a for a in gpt)
    assert "--compute-dtype" not in gpt[0] and gpt[0][gpt[0].index("--steps") + 1] == "5000"
    assert gpt[1][gpt[1].index("--compute-dtype") + 1] == "bfloat16"
    assert gpt[2][gpt[2].index("--grad") + 1] == "autodiff"
    assert all(str(names_path) not in a for a in gpt) and all(str(names_path) in a for a in trains if a[2] != "gpt")
