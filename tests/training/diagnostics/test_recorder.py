"""The records on the host: diagnostics.npz written with every checkpoint, continued on resume, checked on read."""

import numpy as np
import pytest

from bpjax.errors import CheckpointError
from bpjax.training import Config, fit, load_run
from bpjax.training import diagnostics as D


def test_a_stopped_run_resumes_its_records(names_path, tmp_path):
    cfg = Config(steps=400, chunk=200, diagnose_every=50, verify_every=100)
    straight = fit(cfg, data=names_path, out=tmp_path / "a", verbose=False).diagnostics
    fit(cfg, data=names_path, out=tmp_path / "b", stop_at=250, verbose=False)
    resumed = fit(resume=tmp_path / "b", data=names_path, verbose=False)
    for k in D.KEYS:
        np.testing.assert_array_equal(resumed.diagnostics[k], straight[k], err_msg=k)
    assert (tmp_path / "b" / D.FIGURE).is_file()


def test_a_damaged_diagnostics_file_is_one_line_on_resume(names_path, tmp_path):
    cfg = Config(steps=200, diagnose_every=50, verify_every=100)
    fit(cfg, data=names_path, out=tmp_path / "run", stop_at=100, verbose=False, save_plot=False)
    f = tmp_path / "run" / D.FILE
    arrays = dict(np.load(f))
    arrays["act_std"] = arrays["act_std"][:, :0]  # readable, the wrong shape
    np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match=r"is malformed: act_std has shape \(2, 0\), expected \(2, 1\)"):
        fit(resume=tmp_path / "run", data=names_path, verbose=False)
    arrays["diag_step"] = np.array("0")
    np.savez(f, **{**arrays, "act_std": arrays["act_mean"]})
    with pytest.raises(CheckpointError, match="diag_step is <U1 of shape \\(\\), expected a list"):
        D.load(tmp_path / "run")
    with pytest.warns(UserWarning, match="is malformed"):  # sampling a run needs no diagnostics
        assert load_run(tmp_path / "run").diagnostics is None


def test_the_recorder_returns_every_failing_row_of_a_check_and_truncates_on_resume():
    rec = D.Recorder(["h"], ["W"], ["W", "b"], ["float32", "float64"])
    assert rec.add_verification(0, {"maxdiff": [1e-9, 1e-13], "scale": [1.0, 1.0]}) is None
    [(name, maxdiff, bound, rule)] = rec.add_verification(5, {"maxdiff": [1e-9, 1e-9], "scale": [1.0, 1.0]})
    assert name == "b" and maxdiff == 1e-9 and rule == (1e-10, 1e-12) and bound == pytest.approx(1.01e-10)
    both = rec.add_verification(6, {"maxdiff": [1.0, 1e-9], "scale": [1.0, 1.0]})
    assert [r[0] for r in both] == ["W", "b"]
    line = D.failures(both)
    assert line == "W 1.000e+00 > 1.001e-04 (9.99e+03x), b 1.000e-09 > 1.010e-10 (9.9x); worst W"
    a = rec.arrays()
    assert a["verify_step"].tolist() == [0, 5, 6]
    assert a["verify_ok"].tolist() == [[True, True], [True, False], [False, False]]
    # bpjax diagnose's summary: the first failing check, every parameter it failed
    assert "first failing check, step 5: b 1.000e-09 > 1.010e-10 (9.9x); worst b" in D.summary(a)
    rec.truncate(3)
    assert rec.arrays()["verify_step"].tolist() == [0] and set(rec.arrays()) == set(D.KEYS)
