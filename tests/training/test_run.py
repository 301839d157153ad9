"""A Run in memory: what fit returns and load_run reads back, its history in one form, its samples."""

import numpy as np
import pytest

from bpjax import Config, fit, load_run
from bpjax.models import mlp

SMALL = dict(n_hidden=32, steps=600, chunk=250)


def small(**kw):
    return Config(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def short_run(names_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("short") / "run"
    return fit(small(steps=400, eval_every=200), data=names_path, out=out, verbose=False), out


def test_load_run_gives_back_the_run(short_run):
    run, out = short_run
    back = load_run(out)
    assert back.metrics == run.metrics and back.step == 400
    np.testing.assert_array_equal(back.history["lossi"], run.history["lossi"])
    for k in run.params:
        np.testing.assert_array_equal(back.params[k], run.params[k])
    assert len(back.sample(n=5)) == 5


def test_history_has_one_form_in_memory_and_on_disk(names_path, short_run, tmp_path):
    """fit's history and load_run's are the same arrays with the same dtypes, for a complete run
    and stopped ones (0.1.0's fit gave an empty eval_steps as float64, load_run as int64)."""
    stopped = fit(
        small(steps=400, eval_every=100),
        data=names_path,
        out=tmp_path / "s",
        stop_at=250,
        verbose=False,
        save_plot=False,
    )
    empty = fit(small(steps=400), data=names_path, out=tmp_path / "e", stop_at=50, verbose=False, save_plot=False)
    for run, out in (short_run, (stopped, tmp_path / "s"), (empty, tmp_path / "e")):
        back = load_run(out).history
        on_disk = dict(np.load(out / "history.npz"))
        for k in ("lossi", "eval_steps", "eval_val"):
            assert run.history[k].dtype == back[k].dtype == on_disk[k].dtype, (k, run.history[k].dtype, back[k].dtype)
            np.testing.assert_array_equal(run.history[k], back[k])
    assert stopped.history["eval_steps"].dtype == np.int64 and list(stopped.history["eval_steps"]) == [100, 200]


def test_a_run_shows_its_metrics_and_losses(short_run):
    run, _ = short_run
    assert "step 400/400" in repr(run) and "val" in repr(run)
    html = run._repr_html_()
    assert "<table>" in html and "val_loss" in html
    assert run.model is run.config.spec and run.logits(np.zeros((2, 3), np.int32)).shape == (2, 27)
    assert mlp.n_params(run.params) == run.metrics["n_params"]
