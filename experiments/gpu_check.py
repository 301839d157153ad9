"""bpjax on a GPU: the checks, the benchmark, a 1,024-model sweep and the largest trainings, one script.

    python experiments/gpu_check.py                     # on a machine where JAX sees a GPU
    python experiments/gpu_check.py --deadline 540 --jobs 6 --bench-steps 2000   # inside a lease
    python experiments/gpu_check.py --tiny --allow-cpu  # the same path at tiny sizes, on CPU (its test:
                                                        # checks the MLP only, bench --only vmap)

Runs, each as the command a user would type: ``bpjax check`` (float32 and float64, every model;
``--jobs`` of them at once, each without JAX's GPU memory preallocation), ``bpjax train`` for
nanoGPT's GPU recipe of the GPT on tiny Shakespeare (5,000 steps in float32 and in bfloat16, and 500
steps of its ``jax.grad`` twin for the speed), the Transformer, the WaveNet and the notebook's MLP,
K notebook MLPs at once under ``vmap`` (1,024 by default, reported as model-steps/s) and ``bpjax
bench`` (every row). Writes ``gpu_check.json`` and ``gpu_check.md`` (a table headed by the card's
name) to ``--out`` after every part, so a run stopped by its lease leaves what it measured.
``--deadline S`` caps the whole script, about: a command gets the seconds left less a 5 s margin and
is killed after them (exit 124, "not finished" in the table); one that would start with under 20 s
left is skipped and listed. Every process runs without JAX's GPU memory preallocation
(``XLA_PYTHON_CLIENT_PREALLOCATE=false``): the checks share the card, and this process holds it for
the vmap sweep.
Exits 2 when JAX sees no GPU (unless ``--allow-cpu``), 1 when a check or a command fails or a part
is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODELS = ("transformer", "wavenet", "mlp")  # the zoo's largest, the lecture's, the notebook's
GPT_RECIPE = (
    "--n-layer",
    "6",
    "--n-head",
    "6",
    "--n-embd",
    "384",
    "--block-size",
    "256",
    "--batch-size",
    "64",
    "--dropout",
    "0.2",
    "--steps",
    "5000",
)  # nanoGPT's GPU recipe for shakespeare_char (its README)
GPT_RUNS = (  # (label, extra flags): the recipe in float32 and in bfloat16, then its autodiff twin's speed
    ("gpt", GPT_RECIPE),
    ("gpt bfloat16", (*GPT_RECIPE, "--compute-dtype", "bfloat16")),
    ("gpt autodiff", (*GPT_RECIPE[:-2], "--steps", "500", "--grad", "autodiff")),
)
TIMED_OUT = 124  # the exit status recorded for a command killed (SIGKILL) at its time limit
MIN_SECONDS = 20  # a command is not started with less time than this left before the deadline
clock = time.perf_counter  # the deadline's clock (a test replaces it)
MARGIN = 5  # seconds kept back from a command's limit, to kill it, save and print before the deadline


def bpjax(*args: str, timeout: float | None = None) -> tuple[int, str, float]:
    """Run ``bpjax ARGS`` and return (exit status, the last lines it printed, seconds); killed after
    ``timeout`` seconds (exit status 124)."""
    t = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "bpjax", *args], capture_output=True, text=True, timeout=timeout)
        rc, text = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = [b.decode(errors="replace") if isinstance(b, bytes) else (b or "") for b in (e.stdout, e.stderr)]
        rc, text = TIMED_OUT, "".join(out) + f"\n(killed after {timeout:.0f} s)"
    tail = "\n".join(text.strip().splitlines()[-3:])
    return rc, tail, time.perf_counter() - t


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
    return {
        "models": K,
        "steps": steps,
        **{k: row[k] for k in ("steps_per_second", "model_steps_per_second", "compile_seconds", "gflops")},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_check", help="directory for gpu_check.json and .md (default gpu_check/)")
    p.add_argument("--data", default=None, help="names file (default: the usual search)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test of the script itself")
    p.add_argument("--allow-cpu", action="store_true", help="run even when JAX sees no GPU")
    p.add_argument("--jobs", type=int, default=1, help="bpjax check commands run at once (default 1)")
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="S",
        help="seconds for the whole script: commands are cut to the time left (default: no limit)",
    )
    p.add_argument("--bench-steps", type=int, default=None, help="bpjax bench --steps (default: bench's own)")
    p.add_argument("--bench-repeats", type=int, default=None, help="bpjax bench --repeats (default: bench's own)")
    p.add_argument("--train-steps", type=int, default=None, help="bpjax train --steps (default: each model's own)")
    args = p.parse_args(argv)
    if args.jobs < 1 or (args.deadline is not None and args.deadline <= 0):
        p.error("--jobs and --deadline must be positive")
    start = clock()
    # Each process takes GPU memory as it needs it: with JAX's default (75% of the card up front)
    # this process and a check running beside another could not share one GPU. Set before this
    # process starts JAX; the commands inherit it.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    dev = device()
    if dev["platform"] != "gpu" and not args.allow_cpu:
        print(
            f"gpu_check: error: JAX sees no GPU (its devices are {dev['platform']}): install jax[cuda12] "
            "on a machine with one, or pass --allow-cpu",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = ["--data", args.data] if args.data else []
    sizes = (
        {
            "bench": ["--quick", "--only", "vmap", "--steps", "100", "--repeats", "1", "--torch-steps", "20"],
            "check": ["mlp"],
            "K": 8,
            "vmap_steps": 50,
            "train_steps": 20,
            "train": [("mlp", "mlp", ())],
        }
        if args.tiny
        else {
            "bench": [],
            "check": None,
            "K": 1024,
            "vmap_steps": 2_000,
            "train_steps": None,
            "train": [(label, "gpt", flags) for label, flags in GPT_RUNS] + [(m, m, ()) for m in MODELS],
        }
    )
    bench_args = sizes["bench"] + [
        f
        for flag, v in (("--steps", args.bench_steps), ("--repeats", args.bench_repeats))
        if v is not None
        for f in (flag, str(v))
    ]
    train_steps = args.train_steps or sizes["train_steps"]
    result = {
        "device": dev,
        "tiny": args.tiny,
        "deadline": args.deadline,
        "commands": [],
        "skipped": [],
        "train": {},
        "vmap_sweep": None,
        "bench": None,
    }

    def left() -> float:
        return float("inf") if args.deadline is None else args.deadline - (clock() - start)

    def save():
        result["seconds"] = clock() - start
        atomic_write_json(out / "gpu_check.json", result)  # a lease may end mid-run: never half a file
        atomic_write_text(out / "gpu_check.md", markdown(result))

    def run(name, *a):
        if left() < MIN_SECONDS:
            result["skipped"].append(name)
            print(f"{name:28s} skipped: the deadline is near", flush=True)
            return None
        rc, tail, secs = bpjax(*a, timeout=None if args.deadline is None else left() - MARGIN)
        result["commands"].append({"name": name, "args": list(a), "exit": rc, "seconds": secs, "tail": tail})
        print(f"{name:28s} exit {rc}  {secs:7.1f} s", flush=True)
        return rc

    from bpjax import models
    from bpjax.io import atomic_write_json, atomic_write_text

    def train(label, m, flags):
        steps = ["--steps", str(train_steps)] if train_steps else []
        run_dir = out / f"train-{label.replace(' ', '-')}"
        on = data if m != "gpt" else []  # the GPT trains on its own default, tiny Shakespeare
        rc = run(f"train {label}", "train", "--model", m, *flags, *steps, "--out", str(run_dir), *on)
        metrics = run_dir / "metrics.json"
        if rc == 0 and metrics.is_file():
            result["train"][label] = {
                k: v
                for k, v in json.loads(metrics.read_text()).items()
                if k
                in ("steps", "steps_per_second", "val_loss", "test_loss", "wall_seconds", "compile_seconds", "n_params")
            }
        save()

    # The GPT's recipe first (what a lease is for), then the checks, then the other models.
    first = [t for t in sizes["train"] if t[1] == "gpt"]
    for t in first:
        train(*t)
    checks = [
        (f"check {m} {'float64' if f64 else 'float32'}", "check", "--model", m, *f64, *data)
        for m in sizes["check"] or models.names()
        for f64 in ((), ("--float64",))
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda c: run(*c), checks))
    order = {c[0]: i for i, c in enumerate(checks)}  # the table in the checks' order, not finishing order
    result["commands"].sort(key=lambda c: order.get(c["name"], -1))  # the GPT runs before them
    save()
    for t in sizes["train"]:
        if t not in first:
            train(*t)
    if left() >= 3 * MIN_SECONDS:  # in this process: it cannot be killed, so it needs a margin
        result["vmap_sweep"] = vmap_sweep(sizes["K"], sizes["vmap_steps"], args.data)
        print(
            f"{'vmap sweep of ' + str(sizes['K']) + ' MLPs':28s} "
            f"{result['vmap_sweep']['model_steps_per_second']:,.0f} model-steps/s",
            flush=True,
        )
    else:
        result["skipped"].append(f"vmap sweep of {sizes['K']} MLPs")
    save()
    bench_json = out / "bench" / "bench.json"
    bench_json.unlink(missing_ok=True)  # an earlier run's figures must not pass for this one's
    rc = run("bench", "bench", *bench_args, "--out", str(out / "bench"), *data)
    result["bench"] = json.loads(bench_json.read_text()) if rc == 0 and bench_json.is_file() else None
    save()
    print(markdown(result))
    return 0 if all(c["exit"] == 0 for c in result["commands"]) and not result["skipped"] else 1


def markdown(result: dict) -> str:
    d = result["device"]
    lines = [
        f"bpjax on **{d['kind']}** ({d['platform']}, {d['count']} device(s), jax {d['jax']})"
        + (" — tiny sizes, a smoke test" if result["tiny"] else ""),
        "",
        "| what | result |",
        "| --- | --- |",
    ]
    for c in result["commands"]:
        if c["name"].startswith("check"):
            verdict = {0: "pass", TIMED_OUT: "not finished (time limit)"}.get(c["exit"], f"FAIL (exit {c['exit']})")
            lines.append(f"| bpjax {c['name']} | {verdict} |")
    if v := result["vmap_sweep"]:
        lines.append(f"| {v['models']:,} notebook MLPs under vmap | {v['model_steps_per_second']:,.0f} model-steps/s |")
    for m, t in result["train"].items():
        lines.append(
            f"| bpjax train {m} ({t['steps']:,} steps) | {t['steps_per_second']:,.0f} steps/s, "
            f"val {t['val_loss']:.4f}, {t['wall_seconds']:.0f} s |"
        )
    for c in result["commands"]:
        if not c["name"].startswith("check") and c["exit"] != 0:
            lines.append(f"| bpjax {c['name']} | {'not finished (time limit)' if c['exit'] == TIMED_OUT else 'FAIL'} |")
    lines += [f"| {name} | skipped: the deadline came first |" for name in result["skipped"]]
    if result.get("bench"):
        lines += ["", "bpjax bench on this device:", ""]
        for r in result["bench"]["rows"]:
            lines.append(
                f"- {r['group']} / {r['name']}: {r['steps_per_second']:,.0f} steps/s, "
                f"{r['model_steps_per_second']:,.0f} model-steps/s"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
