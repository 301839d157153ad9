"""TensorBoard scalars: read back from the event files, they are the run's history and metrics."""

import json
import math

import jax
import numpy as np
import pytest

from bpjax import Config, fit
from bpjax.errors import CheckpointError
from bpjax.training import tensorboard as tb
from bpjax.training.compare import read_history
from conftest import missing

SMALL = dict(n_hidden=16, chunk=1000)
"""The notebook's MLP, small: 2,500 steps train in a fraction of a second once compiled."""


def f32(a):
    return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)


def assert_scalars_are_the_run(run_dir):
    """Every tag's points, read back, against history.npz and metrics.json (float32, as stored)."""
    s = tb.read_scalars(run_dir)
    h = read_history(run_dir)
    m = json.loads((run_dir / "metrics.json").read_text())
    cfg = json.loads((run_dir / "config.json").read_text())["config"]
    steps, w = len(h["lossi"]), max(1, math.ceil(cfg["steps"] / 1000))
    ends = np.array(sorted({*range(w, steps + 1, w), steps}))  # every w steps, and the last partial window
    means = [np.mean(10.0 ** h["lossi"][(e - 1) // w * w : e].astype(np.float64)) for e in ends]
    np.testing.assert_array_equal(s["loss/train_batch"][0], ends)
    np.testing.assert_array_equal(s["loss/train_batch"][1], f32(means))
    decayed = cfg["lr"] * cfg["lr_decay_factor"]
    decay = cfg["lr_decay_step"] if cfg["lr_decay_step"] is not None else cfg["steps"] // 2
    np.testing.assert_array_equal(s["lr"][0], ends)
    np.testing.assert_array_equal(s["lr"][1], f32(np.where(ends - 1 < decay, cfg["lr"], decayed)))
    np.testing.assert_array_equal(s["loss/val"][0], h["eval_steps"])
    np.testing.assert_array_equal(s["loss/val"][1], f32(h["eval_val"]))
    for split in ("train", "test"):
        np.testing.assert_array_equal(s[f"loss/{split}"][0][-1:], [steps])
        assert s[f"loss/{split}"][1][-1] == f32(m[f"{split}_loss"])
    at, rate = s["steps_per_second"]
    assert np.all(np.diff(at) > 0) and at[-1] == steps and np.all(rate > 0)
    return s, h, m


def test_a_runs_scalars_are_its_history_and_metrics(names_path, tmp_path):
    out = tmp_path / "run"
    fit(Config(steps=2500, eval_every=500, **SMALL), data=names_path, out=out, verbose=False, save_plot=False)
    s, h, m = assert_scalars_are_the_run(out)
    assert len(s["loss/train_batch"][0]) == 834  # w = 3: 833 windows and the last step's own
    assert list(h["eval_steps"]) == [500, 1000, 1500, 2000, 2500]
    at, rate = s["steps_per_second"]  # one point per chunk (cut at each eval): together, the run's speed
    np.testing.assert_array_equal(at, [500, 1000, 1500, 2000, 2500])
    np.testing.assert_allclose(2500 / np.sum(np.diff(at, prepend=0) / rate), m["steps_per_second"], rtol=1e-6)
    assert {k for k in s if "/" in k and k.split("/")[0] in ("update_data", "saturation")} == set()


def test_a_resumed_run_continues_the_same_curves_and_purges_a_stale_tail(names_path, tmp_path):
    out = tmp_path / "run"
    fit(Config(steps=600, eval_every=200, **SMALL), data=names_path, out=out, stop_at=400, verbose=False)
    from tensorboardX import SummaryWriter

    stale = SummaryWriter(str(out), filename_suffix=".a-killed-part")  # as if killed after its last checkpoint
    for step in range(401, 451):
        stale.add_scalar("loss/train_batch", 99.0, step)
    stale.add_scalar("loss/val", 99.0, 450)
    stale.close()
    fit(resume=out, verbose=False)
    s, h, _ = assert_scalars_are_the_run(out)
    for tag, (steps, _) in s.items():
        assert np.all(np.diff(steps) > 0), tag  # each step once, in order: one curve across the parts
    assert s["loss/train"][0].tolist() == [400, 600]  # the stopped part's end, then the run's
    assert len(list(out.glob(tb.PATTERN))) == 3
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        missing("tensorboard is not installed: pip install -e '.[tensorboard]'")
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0})  # what `tensorboard --logdir` shows
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == sorted(s)
    for tag, (steps, values) in s.items():
        seen = acc.Scalars(tag)
        np.testing.assert_array_equal([e.step for e in seen], steps)
        np.testing.assert_array_equal([e.value for e in seen], values)


def test_resuming_a_run_without_event_files_writes_its_history(names_path, tmp_path):
    """A run of a bpjax before the event files: its curves from the start, on resuming."""
    out = tmp_path / "run"
    fit(Config(steps=600, eval_every=200, **SMALL), data=names_path, out=out, stop_at=400, verbose=False)
    for f in out.glob(tb.PATTERN):
        f.unlink()
    fit(resume=out, verbose=False, save_plot=False)
    s, _, _ = assert_scalars_are_the_run(out)
    assert s["loss/val"][0].tolist() == [200, 400, 600] and s["steps_per_second"][0].tolist() == [600]


def test_diagnostics_series_are_the_records(names_path, tmp_path):
    from bpjax.training import diagnostics as D

    out = tmp_path / "run"
    fit(Config(steps=200, diagnose_every=50, **SMALL), data=names_path, out=out, verbose=False, save_plot=False)
    s, a = tb.read_scalars(out), D.load(out)
    assert a["diag_step"].tolist() == [0, 50, 100, 150]
    for key, tag, names in (
        ("update_data", "update_data", a["param_names"]),
        ("act_saturated", "saturation", a["probe_names"]),
    ):
        for i, name in enumerate(names.tolist()):
            want = a[key][:, i]
            ok = np.isfinite(want)
            assert ok.any(), (key, name)
            np.testing.assert_array_equal(s[f"{tag}/{name}"][0], a["diag_step"][ok])
            np.testing.assert_array_equal(s[f"{tag}/{name}"][1], want[ok].astype(np.float64))


def test_only_a_run_directory_on_process_0_is_written(tmp_path, monkeypatch):
    class Tr:
        run_dir = None

    assert isinstance(tb.open_scalars(Tr()), tb.NoScalars)  # fit(out=False): in memory only
    Tr.run_dir = tmp_path
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert isinstance(tb.open_scalars(Tr()), tb.NoScalars)  # several processes: process 0 writes


def test_a_damaged_event_file_is_one_error_and_a_truncated_one_ends(names_path, tmp_path):
    out = tmp_path / "run"
    fit(Config(steps=50, **SMALL), data=names_path, out=out, verbose=False, save_plot=False)
    (f,) = out.glob(tb.PATTERN)
    raw = f.read_bytes()
    full = tb.read_scalars(out)
    f.write_bytes(raw[:-7])  # a writer killed mid-record: the records before it are read
    cut = tb.read_scalars(out)
    assert sum(len(v[0]) for v in cut.values()) == sum(len(v[0]) for v in full.values()) - 1
    f.write_bytes(raw[:40] + bytes([raw[40] ^ 1]) + raw[41:])
    with pytest.raises(CheckpointError, match="checksum"):
        tb.read_scalars(out)
