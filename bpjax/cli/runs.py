"""``bpjax runs``: a table of runs, side by side, and an overlay of their validation curves
(:mod:`bpjax.training.compare`)."""

from __future__ import annotations

import os

from ..errors import ConfigError

HELP = "compare runs: a table of their results and differing settings, --plot their val curves"

DESCRIPTION = """\
Print a Markdown table of runs, one row each: the run directory, model, parameters, steps
(trained/configured where they differ), the eval-mode train/val/test losses, training speed (steps/s), status
(complete, stopped, interrupted: stopped by a signal, failed: never finished, running: training now),
then one column per setting that differs between the runs (from their config.json). Every run also
writes TensorBoard scalars into its directory: `tensorboard --logdir runs` (pip install
'bpjax[tensorboard]') overlays the curves of the runs under runs/."""


def add_args(p) -> None:
    p.description = DESCRIPTION
    p.add_argument(
        "dirs",
        nargs="*",
        default=["runs"],
        metavar="DIR",
        help="a run directory, or a folder searched recursively for run directories (those holding "
        "config.json or metrics.json); default runs/",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the runs' validation curves (history.npz: eval-mode val loss at each evaluation, "
        "--eval-every) in one PNG (needs matplotlib: pip install 'bpjax[plot]')",
    )
    p.add_argument(
        "--sort",
        choices=("run", "val", "train", "test", "steps/s"),
        default="run",
        help="the rows' order: by run directory (default), by a loss (lowest first) or by speed (fastest first)",
    )


SORT_KEYS = {"val": "val", "train": "train", "test": "test", "steps/s": "steps_per_second"}


def run(args) -> int:
    from ..io import check_output_dir
    from ..training.compare import find_runs, plot_val_curves, summary, table

    if args.plot:  # before reading anything: a plot that cannot be written is one line
        if os.path.isdir(args.plot):
            raise ConfigError(f"--plot {args.plot!r} is a directory; give a file name (runs.png)")
        check_output_dir(os.path.dirname(args.plot) or ".", "--plot")
    rows = [summary(d) for d in find_runs(args.dirs)]
    if args.sort != "run":
        key, sign = SORT_KEYS[args.sort], -1 if args.sort == "steps/s" else 1
        rows.sort(key=lambda r: (r[key] is None, sign * r[key] if r[key] is not None else 0))
    print(table(rows))
    if args.plot:
        n = plot_val_curves(rows, args.plot)
        print(f"wrote {args.plot} ({n} of {len(rows)} runs have validation points)")
    return 0
