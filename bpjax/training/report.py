"""Reporting: the notebook's progress lines, a progress bar (tqdm's: rate, ETA), and the loss plots.

Plots use matplotlib's ``Figure`` (no pyplot: no backend, no global figure state) and are written
atomically; without matplotlib (the ``plot`` extra) they are skipped and the functions say so.
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from ..io import atomic_savefig


class Progress:
    """``  10000/ 200000: 2.4803`` every ``every`` steps on ``out``, and a tqdm bar (rate, ETA) on
    stderr when it is a terminal (``bar``: None) or when asked (``bar=True``); none otherwise."""

    def __init__(self, total: int, start: int, every: int, out=sys.stdout, bar=None):
        self.total, self.every, self.out = total, max(1, every), out
        show = sys.stderr.isatty() if bar is None else bar
        self.bar = tqdm(
            total=total,
            initial=start,
            file=sys.stderr,
            disable=not show or total == 0,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            leave=False,  # the progress lines and the results stay; the bar goes when training ends
        )

    def lines(self, step0: int, losses: np.ndarray) -> None:
        """Print ``  10000/ 200000: 2.4803`` for each multiple of ``every`` in this chunk (above the bar)."""
        if self.out is None:
            return
        first = -(-step0 // self.every) * self.every
        for i in range(first, step0 + len(losses), self.every):
            self.write(f"{i:7d}/{self.total:7d}: {losses[i - step0]:.4f}")

    def write(self, line: str) -> None:
        """A line on ``out``, above the bar (none without ``out``)."""
        if self.out is not None:
            tqdm.write(line, file=self.out)
            self.out.flush()

    def update(self, step: int, train_seconds: float | None = None) -> None:
        """Move the bar to ``step``; tqdm measures the rate and the ETA, from the first chunk on
        (``train_seconds``, 0.1's training time, is no longer needed: old callers still run)."""
        self.bar.update(step - self.bar.n)

    def close(self):
        self.bar.close()


def window_mean(lossi: np.ndarray, window: int = 1000) -> np.ndarray:
    """The notebook's ``torch.tensor(lossi).view(-1, 1000).mean(1)`` (a trailing part is dropped)."""
    lossi = np.asarray(lossi)
    n = lossi.shape[-1] // window
    return lossi[..., : n * window].reshape(*lossi.shape[:-1], n, window).mean(-1) if n else lossi[..., :0]


MIN_POINTS = 50
"""A loss curve has at least this many points (where the run has that many steps)."""


def plot_window(steps: int, window: int = 1000) -> int:
    """The averaging window of a loss curve: the notebook's 1000 where that leaves at least
    :data:`MIN_POINTS` points (50,000 steps and more), else ``steps // 50`` (a 2,000-step run: means
    of 40 steps, 50 points), at least 1. The plot's legend says the window."""
    return max(1, min(window, steps // MIN_POINTS))


def _figure(size):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=size)
    return fig, fig.subplots()


def loss_figure(history: dict, title: str = "", window: int = 1000):
    """A figure: log10 training loss averaged over ``window`` steps (the notebook's ``lossi``
    plot), and the eval-mode val loss at each eval point. ``None`` without matplotlib."""
    made = _figure((7, 4))
    if made is None:
        return None
    fig, ax = made
    lossi = np.asarray(history["lossi"])
    w = plot_window(len(lossi), window)
    mean = window_mean(lossi, w)
    ax.plot((np.arange(len(mean)) + 0.5) * w, mean, label=f"train (mean of {w} steps)")
    if len(history["eval_steps"]):
        ax.plot(history["eval_steps"], np.log10(history["eval_val"]), "o-", label="val (eval mode)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_history(history: dict, path, title: str = "", window: int = 1000) -> bool:
    """Write ``loss.png`` atomically; False (and nothing written) without matplotlib."""
    fig = loss_figure(history, title, window)
    if fig is None:
        return False
    atomic_savefig(fig, path, dpi=110)
    return True


def plot_curves(curves: dict, path, title: str, window: int = 1000) -> bool:
    """Many runs' curves: ``curves[label]`` is ``[runs, points]`` of window means; each label's
    mean with a min–max band. Written atomically; False without matplotlib."""
    made = _figure((8, 4.5))
    if made is None:
        return False
    fig, ax = made
    for label, c in curves.items():
        if c.shape[1] == 0:
            continue
        x = (np.arange(c.shape[1]) + 0.5) * window
        (line,) = ax.plot(x, np.nanmean(c, 0), label=f"{label} (mean of {c.shape[0]})")
        ax.fill_between(x, np.nanmin(c, 0), np.nanmax(c, 0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 training loss (mean of {window:,} steps)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    return True
