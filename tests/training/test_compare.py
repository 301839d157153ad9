"""Runs side by side: finding them, one row each, the settings that differ, the table, the plot."""

import json
import shutil

import numpy as np
import pytest

from bpjax import Config, fit
from bpjax.errors import CheckpointError, ConfigError
from bpjax.training import compare as C
from bpjax.training.runlock import RunLock


@pytest.fixture(scope="module")
def two_runs(names_path, tmp_path_factory):
    """runs/a (lr 0.1, complete) and runs/nested/b (lr 0.05, stopped at 60 of 120 steps)."""
    top = tmp_path_factory.mktemp("compare") / "runs"
    cfg = Config(n_hidden=16, steps=120, chunk=60, eval_every=60)
    fit(cfg, data=names_path, out=top / "a", verbose=False, save_plot=False)
    fit(cfg.replace(lr=0.05), data=names_path, out=top / "nested" / "b", stop_at=60, verbose=False, save_plot=False)
    return top


def test_find_runs_searches_folders_and_takes_run_directories(two_runs, tmp_path):
    a, b = two_runs / "a", two_runs / "nested" / "b"
    assert C.find_runs([two_runs]) == [a, b]
    assert C.find_runs([b, two_runs]) == [b, a]  # in the order given, each once
    with pytest.raises(ConfigError, match="does not exist"):
        C.find_runs([tmp_path / "nothing"])
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no runs in"):
        C.find_runs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="not a directory"):
        C.find_runs([a / "metrics.json"])


def test_a_row_is_the_runs_files(two_runs):
    a = C.summary(two_runs / "a")
    m = json.loads((two_runs / "a" / "metrics.json").read_text())
    assert (a["model"], a["n_params"], a["steps"], a["total"], a["status"]) == (
        "mlp",
        m["n_params"],
        120,
        120,
        "complete",
    )
    assert (a["train"], a["val"], a["test"]) == (m["train_loss"], m["val_loss"], m["test_loss"])
    assert a["steps_per_second"] == m["steps_per_second"] and a["settings"]["lr"] == 0.1
    assert a["settings"]["data"] == "names.txt" and "model" not in a["settings"]
    b = C.summary(two_runs / "nested" / "b")
    assert (b["steps"], b["total"], b["status"], b["settings"]["lr"]) == (60, 120, "stopped", 0.05)
    assert C.differing([a, b]) == ["lr"]


def test_status_running_and_failed(two_runs, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(two_runs / "a", run)
    lock = RunLock(run)
    try:
        row = C.summary(run)
        assert row["status"] == "running" and row["train"] is None  # its metrics.json is an earlier part's
        assert row["val"] == float(C.read_history(run)["eval_val"][-1])
    finally:
        lock.release()
    assert C.summary(run)["status"] == "complete"
    (run / "metrics.json").unlink()  # diverged or killed: a checkpoint, no results
    row = C.summary(run)
    assert (row["status"], row["steps"], row["n_params"]) == ("failed", 120, None)


def test_damaged_files_are_one_error(two_runs, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(two_runs / "a", run)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="metrics.json is not valid JSON"):
        C.summary(run)
    (run / "metrics.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        C.summary(run)
    (run / "metrics.json").write_text(
        '{"status": "complete", "steps": "many", "steps_per_second": "fast", "val_loss": [1]}'
    )
    row = C.summary(run)  # an edited value is shown as absent, never a traceback in the table or its sort
    assert row["steps_per_second"] is None and row["n_params"] is None and isinstance(row["val"], float)
    assert "fast" not in C.table([row, C.summary(two_runs / "a")])
    shutil.copy(two_runs / "a" / "metrics.json", run / "metrics.json")
    (run / "history.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(CheckpointError, match="history.npz is corrupt"):
        C.summary(run)


def test_the_table_lines_up_and_shows_what_differs(two_runs):
    rows = [C.summary(d) for d in C.find_runs([two_runs])]
    lines = C.table(rows).splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # aligned
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["run", "model", "params", "steps", "train", "val", "test", "steps/s", "status", "lr"]
    b = [c.strip() for c in lines[3].strip("|").split("|")]
    assert b[0].endswith("nested/b") and b[3] == "60/120" and b[8] == "stopped" and b[9] == "0.05"
    assert b[5] == f"{rows[1]['val']:.4f}" and lines[1].startswith("|-----")
    assert C.label(rows[1], ["lr"]).endswith("nested/b (lr 0.05)")


def test_the_plot_overlays_the_val_curves(two_runs, tmp_path, require):
    require("matplotlib")
    rows = [C.summary(d) for d in C.find_runs([two_runs])]
    assert C.plot_val_curves(rows, tmp_path / "val.png") == 2
    assert (tmp_path / "val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in rows:
        r["history"] = {"lossi": np.zeros(0), "eval_steps": np.zeros(0, int), "eval_val": np.zeros(0)}
    with pytest.raises(ConfigError, match="no.* validation point|none of these runs"):
        C.plot_val_curves(rows, tmp_path / "none.png")
