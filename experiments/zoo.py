"""Every bpjax model at its defaults, on one split, in one table and one plot.

    python experiments/zoo.py                          # every registered model, its default steps
    python experiments/zoo.py --models bigram,rnn --steps 2000 --out /tmp/zoo

Each model trains with its own defaults (the notebook's MLP and the WaveNet: SGD with step decay,
200,000 steps; makemore's six: AdamW 5e-4, 10,000 steps), evaluating the val split in eval mode
every ``--evals``-th of its run. All split losses are the mean over real targets of the same
80/10/10 word split, so the rows compare directly. Writes ``<out>/zoo.{json,md}`` and
``<out>/zoo.png`` (val loss against the fraction of each model's run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bpjax import Config, fit, models
from bpjax.io import atomic_savefig, atomic_write_json, atomic_write_text
from bpjax.training.rundir import environment


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(models.names()))
    p.add_argument("--steps", type=int, default=None, help="steps for every model (default: each model's own)")
    p.add_argument("--evals", type=int, default=10, help="val evaluations per run (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None)
    p.add_argument("--out", default="experiments/results")
    args = p.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    rows, curves = [], {}
    for name in names:
        cfg = Config(name, seed=args.seed, **({"steps": args.steps} if args.steps else {}))
        cfg.eval_every = max(1, cfg.steps // args.evals)
        print(f"== {name}: {cfg.steps:,} steps, {cfg.optimizer} lr {cfg.lr}", flush=True)
        run = fit(cfg, data=args.data, out=False, verbose=False, progress_bar=False)
        m = run.metrics
        rows.append(
            {
                "model": name,
                "n_params": m["n_params"],
                "steps": m["steps"],
                "optimizer": cfg.optimizer,
                **{
                    k: m[k]
                    for k in (
                        "train_loss",
                        "val_loss",
                        "test_loss",
                        "steps_per_second",
                        "compile_seconds",
                        "wall_seconds",
                    )
                },
            }
        )
        curves[name] = (np.asarray(run.history["eval_steps"]) / m["steps"], np.asarray(run.history["eval_val"]))
        print(
            f"   val {m['val_loss']:.4f}  test {m['test_loss']:.4f}  {m['steps_per_second']:,.0f} steps/s  "
            f"{m['wall_seconds']:.0f} s",
            flush=True,
        )
    md = [
        "| model | parameters | steps | optimizer | train | val | test | steps/s | wall s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    md += [
        f"| {r['model']} | {r['n_params']:,} | {r['steps']:,} | {r['optimizer']} | {r['train_loss']:.4f} "
        f"| {r['val_loss']:.4f} | {r['test_loss']:.4f} | {r['steps_per_second']:,.0f} | {r['wall_seconds']:.0f} |"
        for r in rows
    ]
    out = Path(args.out)
    atomic_write_json(
        out / "zoo.json",
        {
            "rows": rows,
            "environment": environment(),
            "command": "python experiments/zoo.py " + " ".join(argv or sys.argv[1:]),
        },
    )
    atomic_write_text(out / "zoo.md", "\n".join(md) + "\n")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed: no zoo.png (pip install -e '.[plot]')")
    else:
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for name, (x, y) in curves.items():
            ax.plot(x, y, "o-", ms=3, label=name)
        ax.set_xlabel("fraction of the model's run")
        ax.set_ylabel("val loss (eval mode, per character)")
        ax.set_title("bpjax's models at their defaults, one split")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_savefig(fig, out / "zoo.png", dpi=110)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
