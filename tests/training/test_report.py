"""Reporting: the notebook's progress lines, the averaging window of a loss curve, the plots."""

import io
import time

import numpy as np

from bpjax.training.report import Progress, loss_figure, plot_curves, plot_history, plot_window, window_mean


def test_window_mean_is_the_notebooks_view_mean():
    lossi = np.arange(2500, dtype=np.float32)
    np.testing.assert_array_equal(window_mean(lossi), lossi[:2000].reshape(2, 1000).mean(1))  # the tail dropped
    assert window_mean(lossi[:10]).shape == (0,)
    assert window_mean(np.ones((3, 40)), 10).shape == (3, 4)


def test_a_short_run_plots_at_least_fifty_points():
    assert plot_window(200_000) == 1000 and plot_window(50_000) == 1000 and plot_window(5) == 1
    for steps in (50, 2000, 5000, 10_000, 49_999):  # short runs: at least 50 points, not two
        w = plot_window(steps)
        assert len(window_mean(np.zeros(steps), w)) >= 50, (steps, w)


def test_progress_lines_print_each_multiple_of_every():
    out = io.StringIO()
    p = Progress(total=100, start=0, every=25, out=out, bar=False)
    p.lines(0, np.linspace(3, 2, 60))
    p.lines(60, np.linspace(2, 1, 40))
    assert out.getvalue().splitlines() == [
        "      0/    100: 3.0000",
        "     25/    100: 2.5763",
        "     50/    100: 2.1525",
        "     75/    100: 1.6154",
    ]


def test_the_bar_is_tqdms_on_a_terminal_only(capsys):
    out = io.StringIO()
    p = Progress(total=100, start=20, every=50, out=out, bar=True)
    p.lines(20, np.full(40, 2.0))
    time.sleep(0.15)  # past tqdm's mininterval (0.1 s): the update is drawn
    p.update(60)
    p.close()
    err = capsys.readouterr().err
    assert "60.0/100" in err and "step/s" in err and out.getvalue() == "     50/    100: 2.0000\n"
    quiet = Progress(total=100, start=0, every=50, out=out)  # None: a bar only if stderr is a terminal
    quiet.update(50)
    quiet.close()
    assert capsys.readouterr().err == ""


def test_plots_are_written_with_matplotlib(tmp_path, require):
    require("matplotlib")
    history = {
        "lossi": np.log10(np.linspace(3, 2, 3000)),
        "eval_steps": np.array([1000, 3000]),
        "eval_val": np.array([2.5, 2.1]),
    }
    fig = loss_figure(history, title="t")
    assert [line.get_label() for line in fig.axes[0].lines] == [
        "train (mean of 60 steps)",
        "val (eval mode)",
    ]  # 3,000 steps: 50 points
    assert plot_history(history, tmp_path / "loss.png") and (tmp_path / "loss.png").stat().st_size > 1000
    assert plot_curves({"a": np.ones((2, 3))}, tmp_path / "c.png", title="c") and (tmp_path / "c.png").is_file()
