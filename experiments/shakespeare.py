"""nanoGPT's CPU recipe for ``shakespeare_char`` in bpjax, beside nanoGPT's own train.py in the same run.

bpjax trains the GPT at its defaults (nanoGPT's README recipe: 4 layers, 4 heads, 128 channels, block
64, batch 12, AdamW 1e-3 with 100 warmup steps and a cosine to 1e-4, 2,000 steps) on tiny
Shakespeare, evaluating every 250 steps on the whole val split, in float32 and again with bfloat16
products (``--compute-dtype bfloat16``: on a CPU with AMX, XLA's bfloat16 GEMM; nanoGPT's train.py
computes in float32 on a CPU, and torch's CPU autocast is slower there, see ``bpjax bench``).
With ``--nanogpt PATH`` (and torch in this environment) nanoGPT's ``train.py`` trains the same recipe
(its README's flags: ``--eval_iters 20 --log_interval 1``; its estimate is the mean over 20 random
batches of each split); its best checkpoint is then converted (:mod:`bpjax.nanogpt`), evaluated on
the whole val split by bpjax, sampled, and trained 100 more steps in bpjax. Steps/s are each side's median step time.

    python experiments/shakespeare.py                                  # bpjax only
    python experiments/shakespeare.py --nanogpt ../shared/peers/nanogpt
    python experiments/shakespeare.py --steps 200 --out /tmp/sh        # a quick look
    python experiments/shakespeare.py --dtypes float32                 # float32 only

Writes ``experiments/results/shakespeare.{json,md,png}`` and the bpjax run in ``.../shakespeare_run``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bpjax import Config, fit, load_run
from bpjax.data import load_dataset
from bpjax.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "ROMEO:"


def _peer():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        return importlib.import_module("nanogpt_peer")
    finally:
        sys.path.pop(0)


def train_bpjax(cfg: Config, data, out: Path) -> dict:
    run = fit(cfg, data=data, out=out, verbose=True, save_plot=True)
    ms = 1e3 / run.metrics["steps_per_second"]
    sample = "".join(run.generate(PROMPT, 500, seed=0))
    return {
        "val_loss": run.metrics["val_loss"],
        "train_loss": run.metrics["train_loss"],
        "ms_per_step": ms,
        "evals": [[int(s), float(v)] for s, v in zip(run.history["eval_steps"], run.history["eval_val"], strict=True)],
        "sample": PROMPT + sample,
        "wall_seconds": run.metrics["wall_seconds"],
        "compute_dtype": cfg.compute_dtype,
        "run": out.name,  # beside this file: no path of the machine it ran on
    }


def train_nanogpt(nanogpt: Path, cfg: Config, data, out: Path) -> dict:
    """nanoGPT's train.py on the recipe; its best checkpoint converted, evaluated, sampled and trained on in bpjax."""
    import torch

    from bpjax.nanogpt import from_state_dict, sizes_of

    peer = _peer()
    text_path = load_dataset(data, block_size=cfg.block_size, layout="text")[2]["path"]
    with tempfile.TemporaryDirectory() as keep:
        res = peer.run_train_py(
            nanogpt,
            peer.load_text(text_path),
            cfg,
            steps=cfg.steps,
            eval_interval=250,
            eval_iters=20,
            out_dir=Path(keep),
        )
        ckpt = torch.load(Path(keep) / "ckpt.pt", map_location="cpu", weights_only=False)
    params = from_state_dict(ckpt)  # the whole checkpoint: its "model" state dict
    theirs = cfg.replace(**sizes_of(ckpt["model_args"]))
    vocab, splits, _ = load_dataset(text_path, block_size=theirs.block_size, layout="text")
    from bpjax.training.evaluate import split_losses

    state = theirs.spec.init(__import__("jax").random.key(0), vocab_size=vocab.size, **theirs.sizes)[1]
    bpjax_val = split_losses(theirs.spec, params, state, splits, ("val",))["val_loss"]
    more = fit(
        theirs.replace(steps=100, warmup_steps=0, lr=1e-4, min_lr=1e-5),
        data=text_path,
        out=out,
        params=params,
        verbose=False,
        save_plot=False,
    )
    return {
        "ms_per_step": statistics.median(res["ms"][2:]),
        "evals": [[s, v] for s, _, v in res["evals"]],
        "val_loss_estimate": res["evals"][-1][2],
        "best_checkpoint_iter": int(ckpt["iter_num"]),
        "best_checkpoint_val_estimate": float(ckpt["best_val_loss"]),
        "best_checkpoint_val_bpjax_whole_split": bpjax_val,
        "bpjax_100_more_steps_val": more.metrics["val_loss"],
        "sample_in_bpjax": PROMPT + "".join(load_run(out).generate(PROMPT, 300, seed=0)),
        "wall_seconds": res["wall_seconds"],
    }


def figure(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no {path.name} (pip install -e '.[plot]')", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in (
        ("bpjax (whole val split)", result.get("bpjax")),
        ("bpjax, bfloat16 products", result.get("bpjax_bfloat16")),
        ("nanoGPT train.py (20-batch estimate)", result.get("nanogpt")),
    ):
        if r:
            s, v = zip(*r["evals"], strict=True)
            ax.plot(s, v, marker="o", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("val loss")
    ax.set_title("tiny Shakespeare, nanoGPT's CPU recipe")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


RUNS = (("bpjax", "bpjax (hand-written backward)"), ("bpjax_bfloat16", "bpjax, bfloat16 products"))


def markdown(result: dict) -> str:
    n = result.get("nanogpt")
    lines = [
        f"# tiny Shakespeare, nanoGPT's CPU recipe ({result['steps']:,} steps)",
        "",
        f"Machine: {result['machine']}. Step times are medians; val losses: bpjax's over the whole val split,",
        "nanoGPT's its 20-batch estimate. nanoGPT's train.py computes in float32 on a CPU.",
        "",
        "| | val loss | ms / step | steps/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    runs = [(label, result[key]) for key, label in RUNS if result.get(key)]
    for label, b in runs:
        lines.append(f"| {label} | {b['val_loss']:.4f} | {b['ms_per_step']:.1f} | {1e3 / b['ms_per_step']:.1f} |")
    if n:
        lines.append(
            f"| nanoGPT train.py | {n['val_loss_estimate']:.4f} | {n['ms_per_step']:.1f} "
            f"| {1e3 / n['ms_per_step']:.1f} |"
        )
        lines.append("")
        for label, b in runs:
            lines.append(f"- {label}: {n['ms_per_step'] / b['ms_per_step']:.2f}x as fast as nanoGPT's step.")
        lines += [
            "",
            f"nanoGPT's best checkpoint (iteration {n['best_checkpoint_iter']:,}, its estimate "
            f"{n['best_checkpoint_val_estimate']:.4f}) "
            f"converted to bpjax: whole-split val {n['best_checkpoint_val_bpjax_whole_split']:.4f}; 100 more steps "
            f"in bpjax: {n['bpjax_100_more_steps_val']:.4f}.",
        ]
    for label, b in runs:
        lines += ["", f"{label}, its sample (500 characters after the prompt, seed 0):", "", "```", b["sample"], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="shakespeare", help="a text (default tiny Shakespeare)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout: train its train.py beside (needs torch)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="bpjax's compute dtypes, one run each")
    p.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    a = p.parse_args(argv)
    from bpjax.bench.timing import cpu_name

    cfg = Config("gpt", steps=a.steps)
    a.out.mkdir(parents=True, exist_ok=True)
    result = {"steps": a.steps, "machine": cpu_name(), "config": cfg.to_json()}
    for dtype in a.dtypes.split(","):
        key = "bpjax" if dtype == "float32" else f"bpjax_{dtype}"
        run_dir = a.out / ("shakespeare_run" if dtype == "float32" else f"shakespeare_run_{dtype}")
        result[key] = train_bpjax(cfg.replace(compute_dtype=dtype), a.data, run_dir)
    if a.nanogpt is not None:
        result["nanogpt"] = train_nanogpt(a.nanogpt, cfg, a.data, a.out / "shakespeare_from_nanogpt")
    atomic_write_json(a.out / "shakespeare.json", result)
    atomic_write_text(a.out / "shakespeare.md", markdown(result))
    figure(result, a.out / "shakespeare.png")
    print(markdown(result))
    for key, _ in RUNS:
        if key in result:
            print(json.dumps({k: v for k, v in result[key].items() if k != "sample"}, indent=1, default=float))


if __name__ == "__main__":
    main()
