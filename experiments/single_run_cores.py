"""Does one ``bpjax train`` gain from a second core? Measured for the larger models, three ways.

    python experiments/single_run_cores.py [--repeats 3]

For the WaveNet, the Transformer and the GRU, ``bpjax train`` runs (as a user runs it, a fresh
process each time) on one core (``taskset`` to the first usable core: XLA's intra-op threads have
nowhere to go), on every core (the default: XLA's CPU client runs a large matmul's blocks on its
thread pool), and data-parallel over one host device per core (``--devices N`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``: each device takes B/N rows of every step,
the gradients all-reduced). Medians of ``--repeats`` runs; writes
``experiments/results/single_run_cores.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = {"wavenet": 3_000, "transformer": 300, "gru": 1_000}


def train_rate(model: str, steps: int, *, devices: int = 1, one_core: bool = False, data=None) -> float:
    cores = sorted(os.sched_getaffinity(0))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    with tempfile.TemporaryDirectory() as d:
        cmd = [
            sys.executable,
            "-m",
            "bpjax",
            "train",
            "--model",
            model,
            "--steps",
            str(steps),
            "--devices",
            str(devices),
            "--out",
            str(Path(d) / "run"),
            "--no-progress",
        ] + (["--data", data] if data else [])
        if one_core:
            cmd = ["taskset", "-c", str(cores[0])] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip().splitlines()[-1:]}")
        return json.loads((Path(d) / "run" / "metrics.json").read_text())["steps_per_second"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    args = p.parse_args(argv)
    n = len(os.sched_getaffinity(0))
    ways = {
        "one core": {"one_core": True},
        f"{n} cores (default)": {},
        f"data-parallel over {n} host devices": {"devices": n},
    }
    rows = []
    for model, steps in STEPS.items():
        row = {"model": model, "steps": steps}
        for way, kw in ways.items():
            rates = [train_rate(model, steps, data=args.data, **kw) for _ in range(args.repeats)]
            row[way] = statistics.median(rates)
            row[way + " rates"] = rates
        rows.append(row)
        print(model, {w: round(row[w]) for w in ways}, flush=True)
    md = ["| model | steps | " + " | ".join(ways) + " |", "| --- | ---: |" + " ---: |" * len(ways)]
    for r in rows:
        md.append(f"| {r['model']} | {r['steps']:,} | " + " | ".join(f"{r[w]:,.0f}" for w in ways) + " |")
    out = Path(args.out)
    result = {"cores": n, "repeats": args.repeats, "rows": rows}
    (out / "single_run_cores.json").write_text(json.dumps(result, indent=1))
    (out / "single_run_cores.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
