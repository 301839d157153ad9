"""bpjax runs: three runs compared in a table (what differs between them shown) and a plot; bad
input is one line."""

import json
from types import SimpleNamespace

import pytest

from bpjax import Config, fit
from bpjax.cli import main
from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def three_runs(names_path, tmp_path_factory):
    """tmp/runs/{a, b, c}: lr 0.1 / 0.05 / 0.1, seed 0 / 0 / 1, c stopped at 100 of 200 steps."""
    top = tmp_path_factory.mktemp("cli-runs")
    cfg = Config(n_hidden=16, steps=200, chunk=100, eval_every=50)
    for name, kw, stop in (("a", {}, None), ("b", {"lr": 0.05}, None), ("c", {"seed": 1}, 100)):
        fit(cfg.replace(**kw), data=names_path, out=top / "runs" / name, stop_at=stop, verbose=False, save_plot=False)
    return top


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_three_runs_in_a_table_and_a_plot(three_runs, require):
    require("matplotlib")
    res = run_cli("runs", "--plot", "val.png", cwd=three_runs)  # default: runs/
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert cells(lines[0]) == [
        "run",
        "model",
        "params",
        "steps",
        "train",
        "val",
        "test",
        "steps/s",
        "status",
        "lr",
        "seed",
    ]
    rows = {cells(line)[0]: cells(line) for line in lines[2:5]}
    assert sorted(rows) == ["runs/a", "runs/b", "runs/c"]
    for name, lr, seed, steps, status in (("a", "0.1", "0", "200", "complete"), ("b", "0.05", "0", "200", "complete")):
        m = json.loads((three_runs / "runs" / name / "metrics.json").read_text())
        row = rows[f"runs/{name}"]
        assert row[1:4] == ["mlp", f"{m['n_params']:,}", steps] and row[8:] == [status, lr, seed]
        assert row[4:7] == [f"{m[k + '_loss']:.4f}" for k in ("train", "val", "test")]
        assert row[7] == f"{m['steps_per_second']:,.0f}"
    assert rows["runs/c"][3] == "100/200" and rows["runs/c"][8:] == ["stopped", "0.1", "1"]
    assert lines[5] == "wrote val.png (3 of 3 runs have validation points)"
    assert (three_runs / "val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sort_and_a_single_run(three_runs, capsys):
    assert main(["runs", str(three_runs / "runs"), "--sort", "val"]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    vals = [float(cells(line)[5]) for line in lines]
    assert vals == sorted(vals) and len(vals) == 3
    assert main(["runs", str(three_runs / "runs" / "b")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and cells(out[0])[-1] == "status"  # one run: nothing differs


def one_line(capsys, *argv):
    try:
        code = main(["runs", *map(str, argv)])
    except SystemExit as e:  # a usage error: argparse's exit
        code = e.code
    return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)


def test_bad_input_is_one_line(three_runs, tmp_path, capsys, monkeypatch):
    assert_one_line_error(one_line(capsys, tmp_path / "nowhere"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(one_line(capsys, tmp_path / "empty"), "no runs in")
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(one_line(capsys), "'runs' does not exist")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text('{"val_loss": 2.1')
    assert_one_line_error(one_line(capsys, three_runs / "runs", bad), "metrics.json is not valid JSON")
    assert_one_line_error(one_line(capsys, three_runs / "runs", "--plot", tmp_path), "is a directory")
    assert_one_line_error(one_line(capsys, "--sort", "loss"), "invalid choice")
