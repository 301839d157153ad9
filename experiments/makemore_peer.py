"""bpjax's six makemore models against makemore.py's PyTorch ones, on the same parameters and batch.

For each model: bpjax's parameters (float64) go into makemore.py's module through
``bpjax.models.makemore.to_state_dict``; both compute the loss and the gradients of one batch of makemore's
layout, PyTorch by autograd, bpjax by its hand-written backward (``loss_manual``); the table gives
the loss difference and, per parameter, the float64 pass rule of ``bpjax.check``. Then each
framework's training step is timed on this machine in the same run (PyTorch on its default threads;
bpjax in a fresh process on the cores ``bpjax train`` gives the model, ``Model.cpu_cores``, the
median of 5 timed chunks; makemore.py's figure is the median of the step times it prints).

    python experiments/makemore_peer.py                       # needs torch; makemore.py from ../shared/peers
    python experiments/makemore_peer.py --makemore PATH --steps 200

makemore.py imports tensorboard at the top; a stub stands in for it when it is absent.
Writes ``experiments/results/makemore_peer.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bpjax import Config, models
from bpjax.check import compare
from bpjax.data import Vocab, load_words, make_sequences, resolve_data_path
from bpjax.io import atomic_write_json, atomic_write_text
from bpjax.models.makemore import to_state_dict
from bpjax.training.distributed import default_cores
from bpjax.training.step import gradient_fn, init_train_state

ROOT = Path(__file__).resolve().parent.parent
ZOO = {"bigram": "bigram", "bengio": "mlp", "rnn": "rnn", "gru": "gru", "bow": "bow", "transformer": "transformer"}


def _sibling(name: str):
    """Another file of ``experiments/``, imported by its module name."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _time_eager(run, steps: int, repeats: int) -> list[float]:
    return _sibling("torch_baselines")._time_eager(run, steps, repeats)


def load_makemore(path: Path):
    """makemore.py as a module, with a stub for ``torch.utils.tensorboard`` if it is missing."""
    _sibling("run_makemore").stub_tensorboard()
    spec = importlib.util.spec_from_file_location("makemore_peer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_model(mm, kind: str, vocab_size: int, block_size: int):
    cfg = mm.ModelConfig(vocab_size=vocab_size, block_size=block_size)
    return {
        "transformer": mm.Transformer,
        "bigram": mm.Bigram,
        "mlp": mm.MLP,
        "bow": mm.BoW,
        "rnn": lambda c: mm.RNN(c, cell_type="rnn"),
        "gru": lambda c: mm.RNN(c, cell_type="gru"),
    }[kind](cfg)


def compare_model(mm, torch, name: str, Xb, Yb, V: int, T: int) -> dict:
    """Loss and gradients of makemore.py's module and bpjax's hand-written backward, float64."""
    spec = models.get(name)
    with jax.enable_x64(True):
        params, state = spec.init(
            jax.random.key(0), vocab_size=V, dtype=jnp.float64, **Config(name).with_data({"block_size": T}).sizes
        )
        if name == "bigram":  # the zero table has a trivial gradient
            params = {"logits": jax.random.normal(jax.random.key(1), (V, V), jnp.float64)}
        (loss, _), grads = jax.jit(gradient_fn(name, "manual"))(params, state, jnp.asarray(Xb), jnp.asarray(Yb))
        g_bpjax = to_state_dict(name, jax.tree_util.tree_map(np.asarray, grads))
    torch.set_default_dtype(torch.float64)  # makemore's CausalBoW makes its weights with the default dtype
    try:
        model = torch_model(mm, ZOO[name], V, T).double()
        res = model.load_state_dict(
            {k: torch.from_numpy(v) for k, v in to_state_dict(name, params).items()}, strict=False
        )
        missing = [k for k in res.missing_keys if not k.endswith((".attn.bias", ".cbow.bias"))]
        assert not missing and not res.unexpected_keys, (missing, res.unexpected_keys)  # only the mask buffers
        _, t_loss = model(torch.from_numpy(np.asarray(Xb, np.int64)), torch.from_numpy(np.asarray(Yb, np.int64)))
        t_loss.backward()
    finally:
        torch.set_default_dtype(torch.float32)
    g_torch = {k: p.grad.numpy() for k, p in model.named_parameters()}
    table = compare(g_bpjax, g_torch, table=name, title=f"{name}: bpjax's hand-written backward vs PyTorch autograd")
    return {
        "model": name,
        "loss_bpjax": float(loss),
        "loss_torch": float(t_loss),
        "loss_diff": abs(float(loss) - float(t_loss)),
        "ok": table.ok,
        "worst": table.worst().name,
        "worst_maxdiff": table.worst().maxdiff,
        "rows": table.to_json(),
    }


def time_torch(mm, torch, name: str, Xtr, Ytr, V: int, T: int, steps: int, repeats: int = 1) -> list[float]:
    """makemore.py's model and AdamW alone (no data loader: rows drawn by ``torch.randint``),
    steps/s of each of ``repeats`` runs of ``steps`` steps, after 10 warm-up steps."""
    model = torch_model(mm, ZOO[name], V, T)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    X, Y = torch.from_numpy(np.asarray(Xtr, np.int64)), torch.from_numpy(np.asarray(Ytr, np.int64))
    g = torch.Generator().manual_seed(0)

    def run(n):
        for _ in range(n):
            ix = torch.randint(0, X.shape[0], (32,), generator=g)
            _, loss = model(X[ix], Y[ix])
            model.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()

    return _time_eager(run, steps, repeats)


def makemore_loop_rates(makemore: Path, name: str, data: str, steps: int) -> list[float]:
    """makemore.py's own training loop, run as its command line (``--type``, ``--max-steps``,
    ``--num-workers 0``, a temporary work directory): the steps/s of each step it reports
    (every 10th, from its printed step time, which covers its data loader, forward, backward and
    AdamW), step 0 left out. Raises RuntimeError with makemore's output when it fails."""
    runner = Path(__file__).resolve().parent / "run_makemore.py"
    with tempfile.TemporaryDirectory() as work:
        cmd = [
            sys.executable,
            str(runner),
            str(makemore),
            "--type",
            ZOO[name],
            "--input-file",
            data,
            "--work-dir",
            work,
            "--max-steps",
            str(steps + 1),
            "--num-workers",
            "0",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    ms = [
        float(line.rsplit("step time", 1)[1].strip().removesuffix("ms"))
        for line in proc.stdout.splitlines()
        if "| step time " in line
    ][1:]
    if proc.returncode or not ms:
        raise RuntimeError(
            f"makemore.py --type {ZOO[name]} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        )
    return [1000.0 / t for t in ms]


def time_bpjax_process(name: str, data: str, steps: int) -> float:
    """:func:`time_bpjax` in a fresh process on the cores ``bpjax train`` gives the model by default
    (``Model.cpu_cores``: XLA sizes its thread pool when JAX starts, so this cannot be set in a
    process that has already run the PyTorch side's JAX code)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--time-bpjax", name, "--data", data, "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"timing bpjax's {name} failed (exit {proc.returncode}): {last}")
    return float(proc.stdout.strip().splitlines()[-1])


def time_bpjax(name: str, Xtr, Ytr, V: int, steps: int, repeats: int = 5) -> float:
    """bpjax's training step (the chunk ``bpjax train`` runs), steps/s, compiled ahead of time: the
    median of ``repeats`` timed chunks of ``steps`` steps (makemore's figure is a median too)."""
    from bpjax.training.chunk import ChunkRunner
    from bpjax.training.loop import chunk_for

    cfg = Config(name, steps=steps).with_data({"block_size": Xtr.shape[1]})
    params, opt_state, state, key = init_train_state(cfg, V)
    runner = ChunkRunner(chunk_for(cfg))
    args = (params, opt_state, state, key, jnp.int32(0), jnp.asarray(Xtr), jnp.asarray(Ytr))
    run = runner.compile(steps, *args)
    np.asarray(run(*args)[3])
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.asarray(run(*args)[3])
        rates.append(steps / (time.perf_counter() - t))
    return statistics.median(rates)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--makemore", default=str(ROOT.parent / "shared" / "peers" / "makemore.py"))
    p.add_argument("--data", default=None)
    p.add_argument(
        "--steps",
        type=int,
        default=300,
        help="timed steps per framework and model (bpjax: the median of 5 chunks of this many)",
    )
    p.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    p.add_argument("--time-bpjax", metavar="MODEL", help=argparse.SUPPRESS)  # the child of time_bpjax_process
    args = p.parse_args(argv)
    if args.time_bpjax:
        from bpjax.training.distributed import use_cores

        n = default_cores(args.time_bpjax)
        if n is not None:
            use_cores(n)  # as bpjax train does, before JAX starts
        words = load_words(args.data)
        vocab = Vocab.from_words(words)
        Xtr, Ytr = make_sequences(words, vocab)["train"]
        print(time_bpjax(args.time_bpjax, Xtr, Ytr, vocab.size, args.steps))
        return 0
    try:
        import torch
    except ImportError:
        print("torch is not importable: pip install torch (a CPU build) to compare with makemore.py")
        return 2
    mm = load_makemore(Path(args.makemore))
    words = load_words(args.data)
    data_path = str(resolve_data_path(args.data))
    vocab = Vocab.from_words(words)
    Xtr, Ytr = make_sequences(words, vocab)["train"]
    T, V = Xtr.shape[1], vocab.size
    Xb, Yb = Xtr[:32], Ytr[:32]
    rows = []
    for name in ZOO:
        r = compare_model(mm, torch, name, Xb, Yb, V, T)
        r["makemore_loop_steps_per_second"] = statistics.median(
            makemore_loop_rates(Path(args.makemore), name, data_path, args.steps)
        )
        r["torch_steps_per_second"] = time_torch(mm, torch, name, Xtr, Ytr, V, T, args.steps)[0]
        r["bpjax_steps_per_second"] = time_bpjax_process(name, data_path, max(args.steps, 100))
        r["bpjax_cpu_cores"] = default_cores(name) or "all"
        r["speedup"] = r["bpjax_steps_per_second"] / r["makemore_loop_steps_per_second"]
        r["speedup_over_model_step"] = r["bpjax_steps_per_second"] / r["torch_steps_per_second"]
        rows.append(r)
        print(
            f"{name:12s} loss diff {r['loss_diff']:.1e}  grads {'ok' if r['ok'] else 'FAIL'} "
            f"(worst {r['worst']} {r['worst_maxdiff']:.1e})  bpjax {r['bpjax_steps_per_second']:,.0f} steps/s "
            f"vs makemore.py {r['makemore_loop_steps_per_second']:,.0f} ({r['speedup']:.1f}x), its model "
            f"and AdamW alone {r['torch_steps_per_second']:,.0f} ({r['speedup_over_model_step']:.1f}x)",
            flush=True,
        )
    md = [
        "| model | loss, bpjax | loss, PyTorch | gradients (float64 rule) | worst row | bpjax steps/s "
        "| bpjax cores | makemore.py steps/s | × | its model + AdamW alone, steps/s | × |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        md.append(
            f"| {r['model']} | {r['loss_bpjax']:.12f} | {r['loss_torch']:.12f} | {'ok' if r['ok'] else 'FAIL'} "
            f"| {r['worst']} {r['worst_maxdiff']:.1e} | {r['bpjax_steps_per_second']:,.0f} "
            f"| {r['bpjax_cpu_cores']} "
            f"| {r['makemore_loop_steps_per_second']:,.0f} | {r['speedup']:.1f} "
            f"| {r['torch_steps_per_second']:,.0f} | {r['speedup_over_model_step']:.1f} |"
        )
    out = Path(args.out)
    atomic_write_json(
        out / "makemore_peer.json",
        {
            "rows": rows,
            "steps": args.steps,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "jax": jax.__version__,
        },
    )
    atomic_write_text(out / "makemore_peer.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if all(r["ok"] and r["loss_diff"] <= 1e-12 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
