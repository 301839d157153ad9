"""The GPT's step against nanoGPT's train.py on a shared, noisy machine: fresh processes, alternated.

    python experiments/gpt_speed.py --nanogpt ../shared/peers/nanogpt [--rounds 5] [--steps 300]

Each round runs, one after another (the order rotating from round to round), ``bpjax train --model
gpt`` in float32, ``bpjax train --model gpt --compute-dtype bfloat16``, nanoGPT's ``train.py`` (its
CPU recipe's flags, :func:`nanogpt_peer.run_train_py`) and nanoGPT's model and AdamW under torch's
CPU autocast (bfloat16; :func:`nanogpt_peer.time_model_step`), each for ``--steps`` steps of the CPU
recipe with no evaluation on the way, each in a fresh process. A round's step times are measured
within a minute or two of each other, so a slow phase of the machine slows them all; the ratios
are per round, and the report gives their median and range. bpjax's step time is its run's
``steps_per_second`` (training chunks only); nanoGPT's, the median of its iteration times.
Writes ``experiments/results/gpt_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bpjax import Config
from bpjax.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ("float32", "bfloat16")


def bpjax_ms(dtype: str, steps: int, data: str) -> float:
    """``bpjax train``'s ms a step (its ``steps_per_second``) for ``steps`` steps, evaluating at the end only."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "bpjax", "train", "--model", "gpt", "--data", data, "--steps", str(steps)]
        cmd += ["--eval-every", str(steps), "--compute-dtype", dtype, "--no-progress", "--out", d]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"bpjax train failed: {proc.stderr.strip()[-500:]}")
        metrics = json.loads((Path(d) / "metrics.json").read_text())
    return 1e3 / metrics["steps_per_second"]


def _peer():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        return importlib.import_module("nanogpt_peer")
    finally:
        sys.path.pop(0)


def _text_path(data: str):
    from bpjax.data import load_dataset

    return load_dataset(data, block_size=Config("gpt").block_size, layout="text")[2]["path"]


def nanogpt_ms(nanogpt: Path, steps: int, data: str) -> float:
    """nanoGPT's ``train.py``: the median of the iteration times it prints (the first two left out)."""
    peer = _peer()
    res = peer.run_train_py(nanogpt, peer.load_text(_text_path(data)), Config("gpt"), steps=steps, log=lambda *_: None)
    return statistics.median(res["ms"][2:])


def autocast_ms(nanogpt: Path, steps: int, data: str) -> float:
    """nanoGPT's model and AdamW under torch's CPU autocast (bfloat16), in a fresh process."""
    res = _peer().model_step_in_process(nanogpt, _text_path(data), steps, autocast=True)
    return statistics.median(res["ms"][2:])


RUNNERS = {
    "float32": lambda a: bpjax_ms("float32", a.steps, a.data),
    "bfloat16": lambda a: bpjax_ms("bfloat16", a.steps, a.data),
    "nanogpt": lambda a: nanogpt_ms(a.nanogpt.resolve(), a.steps, a.data),
    "nanogpt_autocast": lambda a: autocast_ms(a.nanogpt.resolve(), a.steps, a.data),
}


def summarise(rounds: list[dict]) -> dict:
    """Per dtype: the median ms a step over the rounds, and the median, lowest and highest of the
    per-round ratios nanoGPT's time / bpjax's (how many times as fast as nanoGPT's step)."""
    out = {"nanogpt_ms": statistics.median(r["nanogpt"] for r in rounds)}
    if all("nanogpt_autocast" in r for r in rounds):
        out["nanogpt_autocast_ms"] = statistics.median(r["nanogpt_autocast"] for r in rounds)
    for dtype in DTYPES:
        ratios = [r["nanogpt"] / r[dtype] for r in rounds]
        out[dtype] = {
            "ms": statistics.median(r[dtype] for r in rounds),
            "over_nanogpt_median": statistics.median(ratios),
            "over_nanogpt_min": min(ratios),
            "over_nanogpt_max": max(ratios),
        }
    return out


def markdown(result: dict) -> str:
    s, rounds = result["summary"], result["rounds"]
    lines = [
        f"# The GPT's step against nanoGPT's train.py, {len(rounds)} alternated rounds",
        "",
        f"Machine: {result['machine']}. The CPU recipe (4 layers, 4 heads, 128 channels, block 64, batch 12),",
        f"{result['steps']} steps a process; each round one fresh process of each, one after another.",
        "",
        "| | ms / step (median of rounds) | × nanoGPT's step (median, range over rounds) |",
        "| --- | ---: | ---: |",
    ]
    for dtype, label in (("float32", "bpjax, float32"), ("bfloat16", "bpjax, bfloat16 products")):
        d = s[dtype]
        lines.append(
            f"| {label} | {d['ms']:.1f} | {d['over_nanogpt_median']:.2f}x "
            f"({d['over_nanogpt_min']:.2f}-{d['over_nanogpt_max']:.2f}) |"
        )
    lines.append(f"| nanoGPT train.py (float32: its CPU path) | {s['nanogpt_ms']:.1f} | 1 |")
    if "nanogpt_autocast_ms" in s:
        lines.append(f"| nanoGPT model.py + AdamW, torch CPU autocast bfloat16 | {s['nanogpt_autocast_ms']:.1f} | |")
    auto = "nanogpt_autocast_ms" in s
    head = "| round | bpjax float32 | bpjax bfloat16 | nanoGPT |" + (" nanoGPT autocast |" if auto else "")
    lines += ["", head, "| ---: " * (5 if auto else 4) + "|"]
    for i, r in enumerate(rounds, 1):
        row = f"| {i} | {r['float32']:.1f} | {r['bfloat16']:.1f} | {r['nanogpt']:.1f} |"
        lines.append(row + (f" {r['nanogpt_autocast']:.1f} |" if auto else ""))
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanogpt", type=Path, required=True, help="a nanoGPT checkout (needs torch)")
    p.add_argument("--data", default="shakespeare")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    a = p.parse_args(argv)
    from bpjax.bench.timing import cpu_name

    rounds, names = [], list(RUNNERS)
    for i in range(a.rounds):
        order = names[i % len(names) :] + names[: i % len(names)]  # no runner always first or last
        r = {name: RUNNERS[name](a) for name in order}
        rounds.append({name: r[name] for name in names})
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in rounds[-1].items()), flush=True)
    result = {"machine": cpu_name(), "steps": a.steps, "rounds": rounds, "summary": summarise(rounds)}
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out / "gpt_speed.json", result)
    atomic_write_text(a.out / "gpt_speed.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
