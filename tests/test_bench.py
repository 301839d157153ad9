"""A smoke test of `bpjax bench`: it runs end to end and writes its JSON and table. No speed is asserted."""
import json
import subprocess
import sys

import pytest

from bpjax import models


def test_bench_smoke(names_path, tmp_path):
    r = subprocess.run([sys.executable, "-m", "bpjax", "bench", "--data", str(names_path), "--quick",
                        "--steps", "200", "--repeats", "1", "--torch-steps", "20", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    names = {row["name"] for row in result["rows"]}
    assert {"bpjax manual, n_hidden 64", "bpjax autodiff, n_hidden 64", "manual, 16 models under vmap"} <= names
    for row in result["rows"]:
        assert row["steps_per_second"] > 0
        assert row["flops_per_step"] is None or row["flops_per_step"] > 0  # the bigram has no matmul
    summary = set(result["summary"])
    assert {"manual_over_autodiff", "vmap16_over_single_manual", "wavenet_manual_over_autodiff"} <= summary
    for row in result["rows"]:  # rows are keyed by data, not by their display names
        assert {"impl", "model", "grad", "variant", "K", "batch"} <= set(row), row
    assert {r["model"] for r in result["rows"]} == set(models.names())  # every registered model has rows
    md = (tmp_path / "bench.md").read_text()
    assert "| bpjax manual, n_hidden 64 |" in md


def test_bench_rejects_nonsense(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bpjax", "bench", "--steps", "0", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--steps" in r.stderr and "Traceback" not in r.stderr


def test_torch_baselines_say_why_they_are_missing(monkeypatch, tmp_path):
    """Outside a source checkout, or without torch, the PyTorch rows are skipped with a reason."""
    from bpjax import bench

    monkeypatch.setattr(bench, "TORCH_BASELINES", tmp_path / "nowhere.py")
    mod, note = bench.torch_baselines()
    assert mod is None and "source checkout" in note
    monkeypatch.setattr(bench, "TORCH_BASELINES", bench.Path(__file__).resolve().parent.parent / "experiments"
                        / "torch_baselines.py")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    mod, note = bench.torch_baselines()
    assert mod is None and "torch is not importable" in note


def test_rows_are_found_by_their_keys():
    from bpjax.bench import find

    rows = [{"group": "grad", "grad": "manual", "n_hidden": 64}, {"group": "grad", "grad": "autodiff", "n_hidden": 64}]
    assert find(rows, grad="autodiff")["grad"] == "autodiff"
    with pytest.raises(KeyError):
        find(rows, group="grad")
