"""bpjax on a GPU: the checks, the benchmark, a 1,024-model sweep and the largest trainings, one script.

    python experiments/gpu_check.py                     # on a machine where JAX sees a GPU
    python experiments/gpu_check.py --tiny --allow-cpu  # the same path at tiny sizes, on CPU (its test:
                                                        # checks the MLP only, bench --only vmap)

Runs, each as the command a user would type: ``bpjax check`` (float32 and float64, every model),
``bpjax bench`` (every row), K notebook MLPs at once under ``vmap`` (1,024 by default, reported as
model-steps/s) and ``bpjax train`` for the notebook's MLP, the WaveNet and the Transformer. Writes
``gpu_check.json`` and ``gpu_check.md`` (a table headed by the card's name) to ``--out``.
Exits 2 when JAX sees no GPU (unless ``--allow-cpu``), 1 when a check or a command fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("mlp", "wavenet", "transformer")  # the notebook's, the lecture's, the zoo's largest


def bpjax(*args: str) -> tuple[int, str, float]:
    """Run ``bpjax ARGS`` and return (exit status, the last lines it printed, seconds)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "bpjax", *args], capture_output=True, text=True)
    tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-3:])
    return r.returncode, tail, time.perf_counter() - t


def device() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "kind": d.device_kind, "count": jax.device_count(), "jax": jax.__version__}


def vmap_sweep(K: int, steps: int, data: str | None) -> dict:
    """K notebook MLPs (seeds 0..K-1) trained at once: bpjax bench's vmap row at size K."""
    import jax.numpy as jnp

    from bpjax.bench import bench_bpjax
    from bpjax.data import load_dataset

    vocab, splits, _ = load_dataset(data, block_size=3)
    Xtr, Ytr = (jnp.asarray(a) for a in splits["train"])
    row = bench_bpjax(Xtr, Ytr, vocab.size, grad="manual", steps=steps, repeats=3, K=K)
    return {"models": K, "steps": steps, **{k: row[k] for k in ("steps_per_second", "model_steps_per_second",
                                                                 "compile_seconds", "gflops")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_check", help="directory for gpu_check.json and .md (default gpu_check/)")
    p.add_argument("--data", default=None, help="names file (default: the usual search)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test of the script itself")
    p.add_argument("--allow-cpu", action="store_true", help="run even when JAX sees no GPU")
    args = p.parse_args(argv)
    dev = device()
    if dev["platform"] != "gpu" and not args.allow_cpu:
        print(f"gpu_check: error: JAX sees no GPU (its devices are {dev['platform']}): install jax[cuda12] "
              "on a machine with one, or pass --allow-cpu", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = ["--data", args.data] if args.data else []
    sizes = ({"bench": ["--quick", "--only", "vmap", "--steps", "100", "--repeats", "1", "--torch-steps", "20"],
              "check": ["mlp"], "K": 8, "vmap_steps": 50, "train_steps": 20, "train": ["mlp"]} if args.tiny else
             {"bench": [], "check": None, "K": 1024, "vmap_steps": 2_000, "train_steps": None, "train": MODELS})
    result = {"device": dev, "tiny": args.tiny, "commands": []}

    def run(name, *a):
        rc, tail, secs = bpjax(*a)
        result["commands"].append({"name": name, "args": list(a), "exit": rc, "seconds": secs, "tail": tail})
        print(f"{name:28s} exit {rc}  {secs:7.1f} s", flush=True)
        return rc

    from bpjax import models

    for m in sizes["check"] or models.names():
        for f64 in ((), ("--float64",)):
            run(f"check {m} {'float64' if f64 else 'float32'}", "check", "--model", m, *f64, *data)
    run("bench", "bench", *sizes["bench"], "--out", str(out / "bench"), *data)
    bench_json = out / "bench" / "bench.json"
    result["bench"] = json.loads(bench_json.read_text()) if bench_json.is_file() else None
    result["vmap_sweep"] = vmap_sweep(sizes["K"], sizes["vmap_steps"], args.data)
    print(f"{'vmap sweep of ' + str(sizes['K']) + ' MLPs':28s} "
          f"{result['vmap_sweep']['model_steps_per_second']:,.0f} model-steps/s", flush=True)
    result["train"] = {}
    for m in sizes["train"]:
        steps = ["--steps", str(sizes["train_steps"])] if sizes["train_steps"] else []
        rc = run(f"train {m}", "train", "--model", m, *steps, "--out", str(out / f"train-{m}"), "--no-progress", *data)
        metrics = out / f"train-{m}" / "metrics.json"
        if rc == 0 and metrics.is_file():
            result["train"][m] = {k: v for k, v in json.loads(metrics.read_text()).items()
                                  if k in ("steps", "steps_per_second", "val_loss", "test_loss", "wall_seconds",
                                           "compile_seconds", "n_params")}
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(c["exit"] == 0 for c in result["commands"]) else 1


def markdown(result: dict) -> str:
    d = result["device"]
    lines = [f"bpjax on **{d['kind']}** ({d['platform']}, {d['count']} device(s), jax {d['jax']})"
             + (" — tiny sizes, a smoke test" if result["tiny"] else ""), "",
             "| what | result |", "| --- | --- |"]
    for c in result["commands"]:
        if c["name"].startswith("check"):
            lines.append(f"| bpjax {c['name']} | {'pass' if c['exit'] == 0 else 'FAIL'} |")
    v = result["vmap_sweep"]
    lines.append(f"| {v['models']:,} notebook MLPs under vmap | {v['model_steps_per_second']:,.0f} model-steps/s |")
    for m, t in result["train"].items():
        lines.append(f"| bpjax train --model {m} ({t['steps']:,} steps) | {t['steps_per_second']:,.0f} steps/s, "
                     f"val {t['val_loss']:.4f}, {t['wall_seconds']:.0f} s |")
    if result.get("bench"):
        lines += ["", "bpjax bench on this device:", ""]
        for r in result["bench"]["rows"]:
            lines.append(f"- {r['group']} / {r['name']}: {r['steps_per_second']:,.0f} steps/s, "
                         f"{r['model_steps_per_second']:,.0f} model-steps/s")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
