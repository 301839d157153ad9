"""The lecture's figures: each panel drawn from its own records; several runs side by side."""

import numpy as np

from bpjax.training import Config, fit
from bpjax.training import diagnostics as D


def test_each_panel_draws_its_own_records(names_path, require):
    """The figure's panels, each from its own records (a slip once drew the checks on the first)."""
    require("matplotlib")
    a = fit(
        Config(steps=300, diagnose_every=100, verify_every=100), data=names_path, out=False, verbose=False
    ).diagnostics
    fig = D.figure(a)
    axes = {ax.get_title(): ax for ax in fig.axes}
    act = axes["activation distribution"]
    assert len(act.lines) == 1 and act.get_yscale() == "linear"
    x = act.lines[0].get_xdata()
    assert -1 <= x.min() and x.max() <= 1  # tanh outputs, not steps
    check = axes["hand-written vs jax.grad: maxdiff / bound"]
    np.testing.assert_array_equal(check.lines[0].get_xdata(), [0, 100, 200])
    assert check.get_yscale() == "log"
    ud = axes["update:data ratio (log10)"]
    assert [ln.get_label() for ln in ud.lines] == ["C", "W1", "W2", "1e-3"]


def test_runs_side_by_side_and_a_saved_figure(names_path, tmp_path, require):
    require("matplotlib")
    a = fit(Config(steps=100, diagnose_every=50), data=names_path, out=False, verbose=False).diagnostics
    fig = D.compare_figure({"one": a, "two": a})
    assert len(fig.axes) == 6 and fig.axes[0].get_ylabel() == "one"
    assert D.save_figure(a, tmp_path / "d.png", title="t") and (tmp_path / "d.png").stat().st_size > 10_000
    ax = D.figure(a).axes[5]
    assert ax.get_title() == "hand-written vs jax.grad: maxdiff / bound" and ax.texts[0].get_text() == "not recorded"
