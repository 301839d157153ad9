"""A signal stops a run without losing it: the chunk in flight ends, the run is saved, the exit says which."""

import signal
import subprocess
import sys

import pytest

from bpjax.training import load_run
from bpjax.training.signals import STOP_SIGNALS, signals_stop


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_checkpoints_and_exits_128_plus_its_number(names_path, tmp_path, sig, code):
    """Ctrl-C, SIGTERM (timeout, SLURM, docker) and SIGHUP: the chunk in flight ends, the run is saved."""
    out = tmp_path / "int"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bpjax",
            "train",
            "--data",
            str(names_path),
            "--steps",
            "100000000",
            "--chunk",
            "2000",
            "--no-progress",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in p.stdout:  # wait until training is under way, then interrupt
            if line.startswith("  10000/"):
                break
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == code, err
    run = load_run(out)
    assert 10_000 <= run.step < 100_000_000 and run.metrics["status"] == "interrupted"
    assert run.metrics["signal"] == sig.name and len(run.history["lossi"]) == run.step
    assert not list(out.glob(".*.tmp"))  # no temporary file survives


def test_the_handler_only_records_the_first_signal_and_says_so_of_a_second(capfd):
    assert set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    before = signal.getsignal(signal.SIGINT)
    with signals_stop() as stop:
        assert not stop.received()
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        assert stop.received() and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are put back
    assert "already stopping" in capfd.readouterr().err
