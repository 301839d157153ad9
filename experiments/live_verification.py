"""The hand-written backward checked against jax.grad while every model trains (issue 12).

Trains each model at its default steps (200,000 for the notebook's MLP, the WaveNet and the
lecture's deep network; 10,000 for makemore's six) with ``verify_every=1000`` (and diagnostics
every 100 steps for the deep network) and reports, per model, how many checks ran, whether every
one passed the float32 rule (``maxdiff <= 1e-4 * max|oracle| + 1e-7`` per parameter), and the worst
row as a fraction of its bound.

    python experiments/live_verification.py                  # every registered model
    python experiments/live_verification.py --models mlp,deep --steps 20000

Writes ``experiments/results/live_verification.{json,md}`` and the deep network's figures,
``experiments/results/deep_diagnostics.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import bpjax
from bpjax import models

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(models.names()), help="comma-separated (default: all)")
    p.add_argument("--steps", type=int, help="steps for every model (default: each model's own)")
    p.add_argument("--verify-every", type=int, default=1000)
    p.add_argument("--data", help="names file (default: the usual search)")
    p.add_argument("--out", default=str(RESULTS / "live_verification"), help="path without suffix")
    args = p.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        settings = {"verify_every": args.verify_every}
        if args.steps:
            settings["steps"] = args.steps
        if name == "deep":
            settings["diagnose_every"] = 100
        cfg = bpjax.Config(name, **settings)
        t = time.perf_counter()
        run = bpjax.fit(cfg, data=args.data, out=False, verbose=False)
        a = run.diagnostics
        ratio = a["verify_maxdiff"] / a["verify_bound"]
        q, k = np.unravel_index(np.argmax(ratio), ratio.shape)
        row = {
            "model": name,
            "steps": cfg.steps,
            "checks": int(len(a["verify_step"])),
            "passed": int(a["verify_ok"].all(1).sum()),
            "worst_ratio": float(ratio[q, k]),
            "worst_parameter": str(a["param_names"][k]),
            "worst_step": int(a["verify_step"][q]),
            "val_loss": run.metrics["val_loss"],
            "steps_per_second": run.metrics["steps_per_second"],
            "wall_seconds": time.perf_counter() - t,
        }
        rows.append(row)
        if name == "deep":
            from bpjax.training import diagnostics

            diagnostics.save_figure(
                a,
                RESULTS / "deep_diagnostics.png",
                title=f"deep network, {cfg.steps:,} steps: diagnostics every 100, checks every {args.verify_every:,}",
            )
        print(
            f"{name:12s} {row['passed']:,}/{row['checks']:,} checks passed over {cfg.steps:,} steps; worst "
            f"{row['worst_parameter']} at step {row['worst_step']:,}: {row['worst_ratio']:.3f} of the bound; "
            f"val {row['val_loss']:.4f}",
            flush=True,
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"verify_every": args.verify_every, "rows": rows}, indent=2) + "\n")
    lines = [
        f"Every model trained with `verify_every={args.verify_every}` "
        "(`python experiments/live_verification.py`): each check compares jax.grad of `loss_manual` with "
        "jax.grad of `loss` on the parameters and minibatch of the step about to be taken.",
        "",
        "| model | steps | checks passed | worst row (of its bound) | where | val | steps/s |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['steps']:,} | {r['passed']:,}/{r['checks']:,} | {r['worst_ratio']:.3f} "
            f"| {r['worst_parameter']}, step {r['worst_step']:,} | {r['val_loss']:.4f} "
            f"| {r['steps_per_second']:,.0f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0 if all(r["passed"] == r["checks"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
