"""nanoGPT's own ``train.py``, run on the same text and configuration as a bpjax ``gpt`` run.

nanoGPT reads its data from ``data/<dataset>/{train,val}.bin`` (uint16 ids) and ``meta.pkl`` under the
working directory, and ``configurator.py`` from there too: :func:`prepare` writes them for any text
(the sorted characters, the first 90% trains: nanoGPT's ``prepare.py``), and :func:`run_train_py`
runs ``train.py`` there with nanoGPT's ``shakespeare_char`` config and the flags of a bpjax config,
in a subprocess of this Python (which must import torch), and parses what it prints: each
iteration's time and each evaluation's losses (nanoGPT's estimate from ``eval_iters`` random batches).

    python experiments/nanogpt_peer.py --nanogpt ../shared/peers/nanogpt --steps 200   # time it
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bpjax import Config
from bpjax.data import Vocab, encode_text, load_text

ITER = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
EVAL = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")


def check_checkout(nanogpt: Path) -> Path:
    """The nanoGPT checkout ``nanogpt`` (its ``train.py``, ``model.py``, ``configurator.py`` and
    ``config/train_shakespeare_char.py``), or a one-line error naming what is missing."""
    nanogpt = Path(nanogpt)
    need = ["train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py"]
    missing = [n for n in need if not (nanogpt / n).is_file()]
    if missing:
        raise SystemExit(f"--nanogpt {str(nanogpt)!r} is not a nanoGPT checkout: no {', '.join(missing)}")
    return nanogpt.resolve()  # train.py runs from a temporary directory: a relative path would not hold there


def prepare(work: Path, text: str, dataset: str = "bpjax_text") -> Vocab:
    """nanoGPT's data for ``text`` under ``work/data/<dataset>``: ``train.bin``, ``val.bin``, ``meta.pkl``."""
    vocab = Vocab.from_text(text)
    ids = encode_text(text, vocab).astype(np.uint16)
    n = len(ids)
    d = work / "data" / dataset
    d.mkdir(parents=True, exist_ok=True)
    ids[: int(n * 0.9)].tofile(d / "train.bin")
    ids[int(n * 0.9) :].tofile(d / "val.bin")
    meta = {"vocab_size": vocab.size, "itos": dict(enumerate(vocab.itos)), "stoi": vocab.stoi}
    (d / "meta.pkl").write_bytes(pickle.dumps(meta))
    return vocab


def flags(cfg: Config, steps: int, eval_interval: int, eval_iters: int, out_dir: Path, dataset: str) -> list[str]:
    """``train.py``'s flags for the bpjax config ``cfg`` (its sizes, batch, schedule and optimizer)."""
    s = cfg.sizes
    return [
        "--device=cpu",
        "--compile=False",
        f"--dataset={dataset}",
        f"--out_dir={out_dir}",
        f"--eval_interval={eval_interval}",
        f"--eval_iters={eval_iters}",
        "--log_interval=1",
        f"--block_size={s['block_size']}",
        f"--batch_size={cfg.batch_size}",
        f"--gradient_accumulation_steps={cfg.grad_accum}",
        f"--n_layer={s['n_layer']}",
        f"--n_head={s['n_head']}",
        f"--n_embd={s['n_embd']}",
        f"--dropout={s['dropout']}",
        f"--bias={s['bias']}",
        f"--learning_rate={cfg.lr}",
        f"--max_iters={steps}",
        f"--lr_decay_iters={cfg.steps}",
        f"--min_lr={cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10}",
        f"--warmup_iters={cfg.warmup_steps}",
        f"--weight_decay={cfg.weight_decay}",
        f"--grad_clip={cfg.grad_clip}",
    ]


def run_train_py(
    nanogpt: Path,
    text: str,
    cfg: Config,
    *,
    steps: int,
    eval_interval: int | None = None,
    eval_iters: int = 20,
    out_dir: Path | None = None,
    log=print,
) -> dict:
    """nanoGPT's ``train.py`` for ``steps`` iterations of ``cfg`` on ``text``. Returns ``{"ms": [each
    iteration's time], "losses": [...], "evals": [(iter, train, val)], "wall_seconds"}``; with no
    ``eval_interval`` only iteration 0 is evaluated (with ``eval_iters`` 1: a timing run). ``out_dir``:
    where its ``ckpt.pt`` goes (written at an evaluation that improves val; default: a temporary one)."""
    import time

    nanogpt = check_checkout(nanogpt)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work, text)
        shutil.copy(nanogpt / "configurator.py", work / "configurator.py")  # train.py execs it from the cwd
        timing = eval_interval is None
        out = Path(out_dir) if out_dir is not None else work / "out"
        args = flags(cfg, steps, eval_interval or steps + 1, 1 if timing else eval_iters, out, "bpjax_text")
        cmd = [sys.executable, str(nanogpt / "train.py"), str(nanogpt / "config/train_shakespeare_char.py"), *args]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"nanoGPT's train.py failed: {proc.stderr.strip().splitlines()[-1:]}")
    ms, losses, evals = [], [], []
    for line in proc.stdout.splitlines():
        if m := ITER.match(line):
            losses.append(float(m.group(2)))
            ms.append(float(m.group(3)))
        elif m := EVAL.match(line):
            evals.append((int(m.group(1)), float(m.group(2)), float(m.group(3))))
    log(f"nanoGPT train.py: {len(ms)} iterations, median {statistics.median(ms[2:] or ms):.1f} ms")
    return {"ms": ms, "losses": losses, "evals": evals, "wall_seconds": wall}


def time_model_step(nanogpt: Path, text: str, cfg: Config, *, steps: int, autocast: bool, seed: int = 0) -> dict:
    """nanoGPT's ``model.py`` GPT with its own AdamW (``configure_optimizers``) and clipping, the step
    ``train.py`` runs, timed in this process; ``autocast``: its forward under ``torch.autocast("cpu",
    torch.bfloat16)``, the mixed precision ``train.py`` uses on a GPU and leaves off on a CPU
    (``nullcontext``), so that bpjax's ``--compute-dtype bfloat16`` has its torch twin beside it.
    Batches are random windows of ``text``'s train split, as ``train.py`` draws them."""
    import time

    import torch

    nanogpt = check_checkout(nanogpt)
    sys.path.insert(0, str(nanogpt))
    try:
        from model import GPT, GPTConfig
    finally:
        sys.path.pop(0)
    vocab = Vocab.from_text(text)
    data = torch.from_numpy(encode_text(text, vocab)[: int(0.9 * len(text))].astype(np.int64))
    s, T, B = cfg.sizes, cfg.sizes["block_size"], cfg.batch_size
    torch.manual_seed(seed)
    sizes = {k: s[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")}
    model = GPT(GPTConfig(vocab_size=vocab.size, **sizes))
    opt = model.configure_optimizers(cfg.weight_decay, cfg.lr, (0.9, 0.99), "cpu")
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    ms = []
    for _ in range(steps):
        ix = torch.randint(len(data) - T - 1, (B,))
        x = torch.stack([data[i : i + T] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + T] for i in ix])
        t = time.perf_counter()
        with ctx:
            _, loss = model(x, y)
        loss.backward()
        if cfg.grad_clip:  # train.py's rule: 0 turns clipping off
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ms.append(1e3 * (time.perf_counter() - t))
    return {"ms": ms, "final_loss": float(loss)}


def model_step_in_process(nanogpt: Path, text_path, steps: int, *, autocast: bool) -> dict:
    """:func:`time_model_step` on the CPU recipe in a fresh Python (this one's), as ``train.py`` runs:
    timed inside a process that has run JAX (bpjax bench's), torch's step was far slower than alone."""
    cmd = [sys.executable, __file__, "--nanogpt", str(Path(nanogpt).resolve()), "--data", str(text_path)]
    cmd += ["--steps", str(steps), "--model-step", "autocast" if autocast else "float32"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"nanoGPT's model step failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def iteration_rates(ms: list[float], repeats: int) -> list[float]:
    """Iterations per second of ``repeats`` equal blocks of the iteration times (the first two, the
    warm-up, left out): a row's rates, like bpjax's repeated chunks."""
    ms = ms[2:] if len(ms) > 2 + repeats else ms
    n = max(1, len(ms) // repeats)
    return [1e3 * n / sum(ms[i * n : (i + 1) * n]) for i in range(min(repeats, len(ms) // n))]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanogpt", type=Path, required=True, help="a nanoGPT checkout (train.py, model.py, ...)")
    p.add_argument("--data", default=None, help="a text file (default tiny Shakespeare)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--model-step", choices=("float32", "autocast"), help="time model.py's step in this process")
    a = p.parse_args(argv)
    if a.model_step:
        cfg, autocast = Config("gpt"), a.model_step == "autocast"
        res = time_model_step(a.nanogpt, load_text(a.data), cfg, steps=a.steps, autocast=autocast)
        print(json.dumps(res))
        return
    res = run_train_py(a.nanogpt, load_text(a.data), Config("gpt"), steps=a.steps)
    print(json.dumps({"median_ms": statistics.median(res["ms"][2:]), "rates": iteration_rates(res["ms"], 5)}))


if __name__ == "__main__":
    main()
