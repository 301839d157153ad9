"""The lecture's figures, drawn from a run's records with matplotlib (the ``plot`` extra): one panel
each, :data:`PANELS`; ``diagnostics.png`` beside the run's records, several runs side by side."""

from __future__ import annotations

import numpy as np

from .summary import record_index

FIGURE = "diagnostics.png"

PANELS = ("act", "act_grad", "grad", "update_data", "saturated", "verify")
"""The panels of :func:`figure`: activation histograms, histograms of the gradients into them, the
weights' gradient histograms (grad:data in the legend), update:data over training against the
-3 line, the saturated share over training, and the verifications' maxdiff / bound."""

_TITLES = {
    "act": "activation distribution",
    "act_grad": "gradient distribution (into each nonlinearity)",
    "grad": "weights gradient distribution",
    "update_data": "update:data ratio (log10)",
    "saturated": "saturated share (|t| > 0.97)",
    "verify": "hand-written vs jax.grad: maxdiff / bound",
}


def _density(counts, rng):
    edges = np.linspace(rng[0], rng[1], len(counts) + 1)
    width = (rng[1] - rng[0]) / len(counts) if rng[1] > rng[0] else 1.0
    total = counts.sum()
    return (edges[:-1] + edges[1:]) / 2, counts / (total * width) if total else counts


def draw(ax, a: dict, panel: str, at: int | None = None, legend: bool = True) -> None:
    """Draw one panel of :data:`PANELS` for the records ``a`` on a matplotlib ``ax``."""
    ax.set_title(_TITLES[panel], fontsize=9)
    empty = (panel == "verify" and not len(a["verify_step"])) or (panel != "verify" and not len(a["diag_step"]))
    if panel in ("act", "act_grad", "saturated") and not len(a["probe_names"]):
        empty = True
    if empty:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    if panel in ("act", "act_grad"):
        i = record_index(a, at)
        for j, n in enumerate(a["probe_names"]):
            x, y = _density(a[panel + "_hist"][i, j], a[panel + "_range"][i, j])
            label = f"{n}: mean {a[panel + '_mean'][i, j]:+.2f}, std {a[panel + '_std'][i, j]:.2g}" + (
                f", sat {100 * a['act_saturated'][i, j]:.1f}%" if panel == "act" else ""
            )
            ax.plot(x, y, label=label)
        ax.set_xlabel(f"value at step {int(a['diag_step'][i]):,}")
    elif panel == "grad":
        i = record_index(a, at)
        for j, n in enumerate(a["weight_names"]):
            x, y = _density(a["grad_hist"][i, j], a["grad_range"][i, j])
            ax.plot(x, y, label=f"{n}: std {a['grad_std'][i, j]:.2e}, grad:data {a['grad_data'][i, j]:.2e}")
        ax.set_xlabel(f"gradient at step {int(a['diag_step'][i]):,}")
    elif panel == "update_data":
        pidx = {n: k for k, n in enumerate(a["param_names"])}
        for n in a["weight_names"]:
            ax.plot(a["diag_step"], a["update_data"][:, pidx[n]], label=n)
        ax.axhline(-3, color="k", ls="--", lw=1, label="1e-3")
        ax.set_xlabel("step")
    elif panel == "saturated":
        for j, n in enumerate(a["probe_names"]):
            ax.plot(a["diag_step"], 100 * a["act_saturated"][:, j], label=n)
        ax.set_ylabel("%")
        ax.set_xlabel("step")
    else:
        ratio = a["verify_maxdiff"] / a["verify_bound"]
        worst = np.nanmax(np.where(np.isnan(ratio), np.inf, ratio), axis=1)
        ax.semilogy(a["verify_step"], worst, "o-", ms=3, label="worst parameter")
        ax.axhline(1, color="r", ls="--", lw=1, label="fails above")
        ax.set_xlabel("step")
    if panel in ("act_grad", "grad"):
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    if panel in ("update_data", "saturated", "verify"):  # steps: few ticks, 200,000 is "200k"
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if abs(v) >= 10_000 else f"{v:g}"))
    if legend:
        ax.legend(fontsize=6)
    ax.grid(alpha=0.3)


def figure(a: dict, at: int | None = None, title: str = "", panels=PANELS):
    """The lecture's figures for one run's records, in one matplotlib ``Figure`` (2 x 3 panels by
    default); histograms at the record of step ``at`` (default the last). None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(5.5 * cols, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        draw(ax, a, panel, at)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_figure(runs: dict, panels=("act", "act_grad", "update_data"), at: int | None = None):
    """Several runs side by side: one row per run (``runs[label]`` its records), one column per
    panel, so that a healthy run and a broken one read across. None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(5.0 * len(panels), 3.3 * len(runs)))
    axes = np.array(fig.subplots(len(runs), len(panels), squeeze=False))
    for row, (label, a) in zip(axes, runs.items(), strict=True):
        for ax, panel in zip(row, panels, strict=True):
            draw(ax, a, panel, at)
        row[0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(a: dict, path, at: int | None = None, title: str = "") -> bool:
    """:func:`figure`, written atomically as PNG; False (nothing written) without matplotlib."""
    from ...io import atomic_savefig

    fig = figure(a, at, title)
    if fig is None:
        return False
    atomic_savefig(fig, path, dpi=100)
    return True
