"""Runs side by side: what ``bpjax runs`` prints (:func:`table`) and draws (:func:`plot_val_curves`).

    rows = [summary(d) for d in find_runs(["runs/"])]   # every run directory under runs/
    print(table(rows))                                  # a Markdown table, its columns aligned

A run directory is a folder holding ``config.json`` or ``metrics.json`` (see
:mod:`bpjax.training.rundir`); :func:`find_runs` looks for them recursively. A row (:func:`summary`)
is read from those files and ``history.npz`` alone: no checkpoint is loaded, nothing is compiled.
A damaged file is one :class:`~bpjax.errors.CheckpointError` line.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .rundir import read_history, read_json_object
from .runlock import lock_held

MARKERS = ("config.json", "metrics.json")
"""The files that make a folder a run directory."""
STATUSES = ("complete", "stopped", "interrupted", "failed", "running")
"""A row's status: metrics.json's (``complete``, ``stopped``, ``interrupted``: stopped by a signal);
``failed``: trained but never finished (diverged, killed, or its last part did); ``running``: a
process holds the run's ``.lock``."""


def find_runs(paths) -> list[Path]:
    """The run directories of ``paths`` (each a run directory or a folder searched recursively), in
    order of path, each once. A path that does not exist, or a folder with no run, is a :class:`ConfigError`."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"{str(p)!r} does not exist")
        if not p.is_dir():
            raise ConfigError(f"{str(p)!r} is not a directory (give run directories or folders of them)")
        mine = sorted(_run_dirs(p))
        if not mine:
            raise ConfigError(f"no runs in {str(p)!r} (no folder there holds a config.json or metrics.json)")
        found.update(dict.fromkeys(mine))
    return list(found)


def _run_dirs(top: Path):
    for root, dirs, files in os.walk(top):
        if any(m in files for m in MARKERS):
            dirs.clear()  # a run directory holds no other run
            yield Path(root)
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]


def summary(run_dir) -> dict:
    """One row: ``{"run", "model", "n_params", "steps", "total", "train", "val", "test",
    "steps_per_second", "status", "settings", "history"}`` (None where the run does not record it;
    ``val`` is the last evaluation in ``history.npz`` where the run has not finished; ``settings``:
    config.json's settings and sizes, with ``data``, the data file's name; ``history``:
    :func:`read_history`'s)."""
    d = Path(run_dir)
    meta, metrics = (
        read_json_object(d / "config.json", optional=True),
        read_json_object(d / "metrics.json", optional=True),
    )
    metrics = {k: v for k, v in metrics.items() if k in ("status", "model") or _number(v)}  # an edited value: absent
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    history = read_history(d)
    trained = len(history["lossi"]) if history is not None else None
    steps = trained if trained is not None else metrics.get("steps")
    if lock_held(d):
        status = "running"
    elif metrics.get("status") in STATUSES and (trained is None or trained == metrics.get("steps")):
        status = metrics["status"]
    else:
        status = "failed"  # a checkpoint past the last metrics.json (or none): the run never finished
    val = metrics.get("val_loss")
    if (val is None or status in ("running", "failed")) and history is not None and len(history["eval_val"]):
        val = float(history["eval_val"][-1])
    settings = {k: v for k, v in cfg.items() if k != "model"}
    if isinstance(data.get("path"), str):
        settings["data"] = Path(data["path"]).name
    return {
        "run": str(d),
        "model": cfg.get("model", metrics.get("model")),
        "n_params": metrics.get("n_params"),
        "steps": steps,
        "total": cfg["steps"] if _number(cfg.get("steps")) else None,
        "train": None if status in ("running", "failed") else metrics.get("train_loss"),
        "val": val,
        "test": None if status in ("running", "failed") else metrics.get("test_loss"),
        "steps_per_second": metrics.get("steps_per_second"),
        "status": status,
        "settings": settings,
        "history": history,
    }


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def differing(rows: list[dict]) -> list[str]:
    """The settings whose values are not the same in every row (absent counts as a value), in the
    order config.json lists them."""
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r["settings"]))
    missing = object()
    return [k for k in names if len({repr(r["settings"].get(k, missing)) for r in rows}) > 1]


def _shown(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _loss(v) -> str:
    return "—" if not isinstance(v, (int, float)) else f"{v:.4f}"


def _steps(r: dict) -> str:
    if r["steps"] is None:
        return "—"
    return f"{r['steps']:,}" if r["total"] in (None, r["steps"]) else f"{r['steps']:,}/{r['total']:,}"


def columns(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The table's header and cells: the fixed columns, then one per setting that differs."""
    extra = differing(rows)
    header = ["run", "model", "params", "steps", "train", "val", "test", "steps/s", "status", *extra]
    cells = [
        [
            r["run"],
            _shown(r["model"]),
            _shown(r["n_params"]),
            _steps(r),
            _loss(r["train"]),
            _loss(r["val"]),
            _loss(r["test"]),
            "—" if r["steps_per_second"] is None else f"{r['steps_per_second']:,.0f}",
            r["status"],
            *(_shown(r["settings"].get(k)) for k in extra),
        ]
        for r in rows
    ]
    return header, cells


def table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (:func:`summary`), its columns padded to line up in a terminal;
    numbers right-aligned. Losses are eval mode (``val``: the last evaluation where the run has not
    finished); ``steps`` is ``trained/configured`` where they differ."""
    header, cells = columns(rows)
    width = [max(len(c) for c in col) for col in zip(header, *cells, strict=True)]
    left = {"run", "model", "status"}
    right = [h not in left and not (cells and not _numeric(cells, i)) for i, h in enumerate(header)]

    def line(cs):
        return (
            "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cs, width, right, strict=True)) + " |"
        )

    rule = (
        "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(width, right, strict=True)) + "|"
    )
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def _numeric(cells, i) -> bool:
    def number(s):
        try:
            float(s.replace(",", "").split("/")[0])
            return True
        except ValueError:
            return s == "—"

    return all(number(c[i]) for c in cells)


def label(row: dict, names: list[str]) -> str:
    """A curve's legend: the run and its differing settings (``runs/a (lr 0.05, seed 1)``)."""
    shown = ", ".join(f"{k} {_shown(row['settings'].get(k))}" for k in names)
    return f"{row['run']} ({shown})" if shown else row["run"]


def plot_val_curves(rows: list[dict], path) -> int:
    """Overlay the runs' validation curves (``history.npz``'s ``eval_steps`` against ``eval_val``,
    eval-mode loss) in one PNG at ``path``, written atomically. Returns how many runs were drawn; a run
    without evaluations is left out (:class:`ConfigError` if none has any, or without matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'bpjax[plot]'") from None
    from ..io import atomic_savefig

    drawn = [r for r in rows if r["history"] is not None and len(r["history"]["eval_steps"])]
    if not drawn:
        raise ConfigError("none of these runs has a validation point to plot (history.npz's eval_steps)")
    names = differing(rows)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for r in drawn:
        h = r["history"]
        ax.plot(h["eval_steps"], h["eval_val"], "o-" if len(h["eval_steps"]) < 30 else "-", label=label(r, names))
    ax.set_xlabel("step")
    ax.set_ylabel("val loss (eval mode)")
    ax.set_title(f"validation loss of {len(drawn)} run{'s' if len(drawn) != 1 else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    return len(drawn)
