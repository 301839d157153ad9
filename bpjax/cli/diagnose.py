"""``bpjax diagnose``: a run's training diagnostics (``--diagnose-every``, ``--verify-every``) printed
and its figures redrawn."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .args import integer

HELP = "print and draw a run's training diagnostics (--diagnose-every, --verify-every)"


def add_args(d) -> None:
    d.add_argument("--run", required=True, metavar="DIR", help="a run directory with diagnostics.npz")
    d.add_argument(
        "--step",
        type=integer,
        metavar="S",
        help="the histograms of the last record at or before step S (default: the last record)",
    )
    d.add_argument("--out", metavar="FILE", help="where the figure goes (default DIR/diagnostics.png)")


def run(args) -> int:
    from ..training import diagnostics as D
    from ..training.rundir import read_json

    run = Path(args.run)
    if not run.is_dir():
        raise ConfigError(f"run directory {args.run!r} does not exist")
    a = D.load(run)
    print(D.summary(a, args.step))
    out = Path(args.out) if args.out else run / D.FIGURE
    cfg = read_json(run / "config.json").get("config") if (run / "config.json").is_file() else None
    cfg = cfg if isinstance(cfg, dict) else {}  # only for the title
    title = f"{cfg.get('model', '?')}, {cfg.get('grad', 'manual')} gradients, seed {cfg.get('seed', '?')} ({run.name})"
    if not D.save_figure(a, out, args.step, title=title):
        raise ConfigError("drawing the figures needs matplotlib: pip install 'bpjax[plot]'")
    print(f"wrote {out}")
    return 0
