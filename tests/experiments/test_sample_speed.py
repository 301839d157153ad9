"""experiments/sample_speed.py end to end on a small run: both samplers timed, the command's names counted."""

import importlib.util
import json
from pathlib import Path

from bpjax import Config, fit

SCRIPT = Path(__file__).resolve().parent.parent.parent / "experiments" / "sample_speed.py"


def test_sample_speed_times_both_samplers_and_the_command(names_path, tmp_path):
    fit(Config(n_hidden=16, steps=200, chunk=100), data=names_path, out=tmp_path / "run", verbose=False)
    spec = importlib.util.spec_from_file_location("sample_speed", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--run", str(tmp_path / "run"), "-n", "3000", "--in-process", "20000", "--out", str(tmp_path / "out")]
    assert script.main(args) == 0
    result = json.loads((tmp_path / "out" / "sample_speed.json").read_text())
    assert result["command_names"] == 3000 and result["names_per_second"] > 0 < result["baseline_names_per_second"]
    assert "names/s" in (tmp_path / "out" / "sample_speed.md").read_text()
