"""The bench's peers: PyTorch's rows and makemore.py's, timed when they can be, a note of why when not."""

import subprocess
import sys

import pytest

from bpjax.bench import peers
from bpjax.errors import ConfigError


def test_torch_baselines_say_why_they_are_missing(monkeypatch, tmp_path):
    """Outside a source checkout, or without torch, the PyTorch rows are skipped with a reason."""
    mod, note = peers.torch_baselines(tmp_path / "nowhere.py")
    assert mod is None and "source checkout" in note
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    mod, note = peers.torch_baselines()
    assert mod is None and "torch is not importable" in note


def test_makemore_rows_say_why_they_are_missing(monkeypatch, tmp_path):
    """Without --makemore, or without torch, makemore.py's rows are skipped with a reason; a
    --makemore that is not a file is refused before any work, in one line."""
    assert peers.makemore_peer(None)[0] is None and "--makemore" in peers.makemore_peer(None)[1]
    with pytest.raises(ConfigError, match="not a file"):
        peers.makemore_peer(str(tmp_path / "makemore.py"))
    fake = tmp_path / "makemore.py"
    fake.write_text("")
    monkeypatch.setitem(sys.modules, "torch", None)
    mod, note = peers.makemore_peer(str(fake))
    assert mod is None and "torch is not importable" in note
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpjax",
            "bench",
            "--makemore",
            str(tmp_path / "nowhere.py"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
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

    stub_dir = tmp_path / "stubs" / "torch" / "utils"
    stub_dir.mkdir(parents=True)
    (stub_dir.parent / "__init__.py").write_text("")
    (stub_dir / "__init__.py").write_text("")  # a torch with no tensorboard: the stand-in is used
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stubs"))
    spec = importlib.util.spec_from_file_location("peer_under_test", peers.MAKEMORE_PEER)
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


def test_nanogpts_row_says_why_it_is_missing(monkeypatch, tmp_path):
    assert peers.nanogpt_peer(None)[0] is None and "--nanogpt" in peers.nanogpt_peer(None)[1]
    with pytest.raises(ConfigError, match="not a nanoGPT checkout"):
        peers.nanogpt_peer(str(tmp_path))
    (tmp_path / "train.py").write_text("")
    monkeypatch.setitem(sys.modules, "torch", None)
    mod, note = peers.nanogpt_peer(str(tmp_path))
    assert mod is None and "torch is not importable" in note
