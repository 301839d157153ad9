"""bpjax bench on the command line: it runs end to end and writes its JSON and table. No speed is asserted."""

import json
import os
import subprocess
import sys

from bpjax import models

# The smoke test checks the table, not the speed: its ~35 programs compile about half as long with
# XLA's optimisation passes off (measured 187 -> 95 s). bench.json records the flags it ran under.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def test_bench_smoke(names_path, tmp_path):
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpjax",
            "bench",
            "--data",
            str(names_path),
            "--quick",
            "--steps",
            "200",
            "--repeats",
            "1",
            "--torch-steps",
            "20",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    names = {row["name"] for row in result["rows"]}
    assert {"bpjax manual, n_hidden 64", "bpjax autodiff, n_hidden 64", "manual, 16 models under vmap"} <= names
    for row in result["rows"]:
        assert row["steps_per_second"] > 0
        assert row["flops_per_step"] is None or row["flops_per_step"] > 0  # the bigram has no matmul
    summary = set(result["summary"])
    assert {
        "manual_over_autodiff",
        "vmap16_over_single_manual",
        "wavenet_manual_over_autodiff",
        "mlp_diagnosed_over_plain",
    } <= summary
    for row in result["rows"]:  # rows are keyed by data, not by their display names
        assert {"impl", "model", "grad", "variant", "K", "batch"} <= set(row), row
    assert {r["model"] for r in result["rows"]} == set(models.names())  # every registered model has rows
    assert FAST_COMPILE in result["machine"]["xla_flags"]
    md = (tmp_path / "bench.md").read_text()
    assert "| bpjax manual, n_hidden 64 |" in md


def test_bench_rejects_nonsense(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "bpjax", "bench", "--steps", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--steps" in r.stderr and "Traceback" not in r.stderr


def test_bench_times_a_model_of_your_own_from_its_file(names_path, tmp_path):
    """``--model PATH.py:NAME``: the reference rows, then its hand-written and autodiff rows only."""
    from test_readme import readme_example

    mine = tmp_path / "mine.py"
    mine.write_text(readme_example(), encoding="utf-8")
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpjax",
            "bench",
            "--model",
            f"{mine}:swish_mlp",
            "--data",
            str(names_path),
            "--steps",
            "100",
            "--repeats",
            "1",
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
    mine_rows = [row for row in rows if row["model"] == "swish_mlp"]
    assert [row["grad"] for row in mine_rows] == ["manual", "autodiff"] and all(
        row["steps_per_second"] > 0 for row in mine_rows
    )
    assert {row["group"] for row in rows} <= {"grad", "pytorch", "model"}  # no other group ran
