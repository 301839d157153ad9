"""A smoke test of `bpjax bench`: it runs end to end and writes its JSON and table. No speed is asserted."""
import json
import os
import subprocess
import sys

import pytest

from bpjax import models

# The smoke test checks the table, not the speed: its ~35 programs compile about half as long with
# XLA's optimisation passes off (measured 187 -> 95 s). bench.json records the flags it ran under.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def test_bench_smoke(names_path, tmp_path):
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()}
    r = subprocess.run([sys.executable, "-m", "bpjax", "bench", "--data", str(names_path), "--quick",
                        "--steps", "200", "--repeats", "1", "--torch-steps", "20", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    names = {row["name"] for row in result["rows"]}
    assert {"bpjax manual, n_hidden 64", "bpjax autodiff, n_hidden 64", "manual, 16 models under vmap"} <= names
    for row in result["rows"]:
        assert row["steps_per_second"] > 0
        assert row["flops_per_step"] is None or row["flops_per_step"] > 0  # the bigram has no matmul
    summary = set(result["summary"])
    assert {"manual_over_autodiff", "vmap16_over_single_manual", "wavenet_manual_over_autodiff",
            "mlp_diagnosed_over_plain"} <= summary
    for row in result["rows"]:  # rows are keyed by data, not by their display names
        assert {"impl", "model", "grad", "variant", "K", "batch"} <= set(row), row
    assert {r["model"] for r in result["rows"]} == set(models.names())  # every registered model has rows
    assert FAST_COMPILE in result["machine"]["xla_flags"]
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


def test_makemore_rows_say_why_they_are_missing(monkeypatch, tmp_path):
    """Without --makemore, or without torch, makemore.py's rows are skipped with a reason; a
    --makemore that is not a file is refused before any work, in one line."""
    from bpjax import bench
    from bpjax.errors import ConfigError

    assert bench.makemore_peer(None)[0] is None and "--makemore" in bench.makemore_peer(None)[1]
    with pytest.raises(ConfigError, match="not a file"):
        bench.makemore_peer(str(tmp_path / "makemore.py"))
    fake = tmp_path / "makemore.py"
    fake.write_text("")
    monkeypatch.setitem(sys.modules, "torch", None)
    mod, note = bench.makemore_peer(str(fake))
    assert mod is None and "torch is not importable" in note
    r = subprocess.run([sys.executable, "-m", "bpjax", "bench", "--makemore", str(tmp_path / "nowhere.py"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--makemore" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


FAKE_MAKEMORE = """
import sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
assert args["--num-workers"] == "0" and args["--type"] == "mlp", args
from torch.utils.tensorboard import SummaryWriter  # the stand-in, when tensorboard is missing
SummaryWriter(log_dir=args["--work-dir"]).add_scalar("Loss/train", 1.0, 0)
for step in range(int(args["--max-steps"])):
    if step % 10 == 0:
        print(f"step {step} | loss 3.2958 | step time {1000.0 if step == 0 else 2.0 + step / 100:.2f}ms")
if "FAIL" in open(args["--input-file"]).read():
    raise SystemExit("makemore failed on purpose")
"""


def test_makemore_loop_rates_read_makemores_own_step_times(tmp_path, monkeypatch):
    """makemore.py runs as its own command line (run_makemore.py gives it a tensorboard stand-in) and
    its printed step times, step 0 left out, become steps/s; a failing makemore.py raises with its message."""
    import importlib.util

    from bpjax import bench

    stub_dir = tmp_path / "stubs" / "torch" / "utils"
    stub_dir.mkdir(parents=True)
    (stub_dir.parent / "__init__.py").write_text("")
    (stub_dir / "__init__.py").write_text("")  # a torch with no tensorboard: the stand-in is used
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stubs"))
    spec = importlib.util.spec_from_file_location("peer_under_test", bench.MAKEMORE_PEER)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    fake = tmp_path / "makemore.py"
    fake.write_text(FAKE_MAKEMORE)
    data = tmp_path / "names.txt"
    data.write_text("emma\nolivia\n")
    rates = peer.makemore_loop_rates(fake, "bengio", str(data), 50)
    assert rates == pytest.approx([1000.0 / (2.0 + s / 100) for s in range(10, 51, 10)], rel=1e-3)
    data.write_text("FAIL\n")
    with pytest.raises(RuntimeError, match="makemore failed on purpose"):
        peer.makemore_loop_rates(fake, "bengio", str(data), 50)
