"""A smoke test of `bpjax bench`: it runs end to end and writes its JSON and table. No speed is asserted."""
import json
import subprocess
import sys


def test_bench_smoke(names_path, tmp_path):
    r = subprocess.run([sys.executable, "-m", "bpjax", "bench", "--data", str(names_path), "--quick",
                        "--steps", "200", "--repeats", "1", "--torch-steps", "20", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    names = {row["name"] for row in result["rows"]}
    assert {"bpjax manual, n_hidden 64", "bpjax autodiff, n_hidden 64", "manual, 16 models under vmap"} <= names
    for row in result["rows"]:
        assert row["steps_per_second"] > 0 and row["flops_per_step"] > 0
    assert {"manual_over_autodiff", "vmap16_over_single_manual"} <= set(result["summary"])
    md = (tmp_path / "bench.md").read_text()
    assert "| bpjax manual, n_hidden 64 |" in md


def test_bench_rejects_nonsense(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bpjax", "bench", "--steps", "0", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--steps" in r.stderr and "Traceback" not in r.stderr
