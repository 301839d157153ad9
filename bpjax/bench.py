"""``bpjax bench``: training speed side by side, measured in one run.

Every bpjax row times the code ``bpjax train`` runs: :func:`bpjax.train.make_train_chunk` with
the gradient function of ``--grad`` and the optimizer of the config, compiled ahead of time, one
``lax.scan`` chunk per call with its host round trip. A row's figure is the median over repeats.

Rows: manual vs autodiff at the notebook config and at n_hidden 200; the notebook's own PyTorch
loop (eager, ``no_grad``, manual backward, the Python double loop for ``dC``) and the same with
``index_add_`` (when torch is importable); scaling in batch and n_hidden; K models at once under
``vmap``. Each row carries the step's FLOPs (its matmuls: forward 2·B·(T·E)·H + 2·B·H·V, backward
twice that) and the GFLOP/s achieved, beside the machine's peak.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import mlp
from .data import Vocab, load_words, make_splits
from .io import atomic_write_json, atomic_write_text
from .train import Config, environment, gradient_fn, init_model, make_optimizer, make_train_chunk, train_chunk_fn

PEAK_GFLOPS_CPU_CORE = 166.4  # AVX-512: 2 FMA units x 16 fp32 lanes x 2 flops x 2.6 GHz


def matmul_flops(batch: int, n_embd: int, block_size: int, n_hidden: int, vocab: int) -> int:
    """FLOPs of one MLP training step's matmuls: 3 x forward (dX and dW in the backward)."""
    fwd = 2 * batch * n_embd * block_size * n_hidden + 2 * batch * n_hidden * vocab
    return 3 * fwd


def wavenet_flops(batch: int, n_embd: int, block_size: int, n_hidden: int, vocab: int) -> int:
    """FLOPs of one WaveNet training step's matmuls: each stage halves T and doubles the fan-in."""
    fwd, T, c_in = 0, block_size, n_embd
    while T > 1:
        T //= 2
        fwd += 2 * batch * T * (2 * c_in) * n_hidden
        c_in = n_hidden
    fwd += 2 * batch * n_hidden * vocab
    return 3 * fwd


def step_flops(cfg: Config, vocab: int) -> int:
    f = wavenet_flops if cfg.model == "wavenet" else matmul_flops
    return f(cfg.batch_size, cfg.n_embd, cfg.block_size, cfg.n_hidden, vocab)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _time_compiled(call, steps: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return [steps / t for t in times]


def bench_bpjax(Xtr, Ytr, vocab_size: int, *, grad: str, model: str = "mlp", steps: int, repeats: int,
                K: int = 0, **sizes) -> dict:
    """Time ``steps`` training steps (one chunk) of the train path; K > 0 vmaps K seeds at once.

    ``sizes``: Config fields (n_hidden, batch_size, ...) over the model's defaults.
    """
    cfg = Config.for_model(model, steps=max(steps, 2), grad=grad, **sizes)
    tx = make_optimizer(cfg)
    init = partial(init_model, cfg, vocab_size)
    grad_fn, batch = gradient_fn(model, grad), cfg.batch_size
    pure = train_chunk_fn(grad_fn, tx, batch, unroll=2)  # make_train_chunk's program, unroll included
    if K:
        keys = jax.random.split(jax.random.key(0), K)
        params, state = jax.vmap(init)(keys)
        opt_state = jax.vmap(tx.init)(params)
        fn = jax.jit(jax.vmap(pure, in_axes=(0, 0, 0, 0, None, None, None, None)), static_argnums=(7,))
        key_data = jax.random.key_data(keys)
    else:
        params, state = init(jax.random.key(0))
        opt_state = tx.init(params)
        fn = make_train_chunk(grad_fn, tx, batch)
        key_data = jax.random.key_data(jax.random.key(1))
    args = (params, opt_state, state, key_data, jnp.int32(0), Xtr, Ytr)
    t = time.perf_counter()
    compiled = fn.lower(*args, steps).compile()
    compile_s = time.perf_counter() - t
    rates = _time_compiled(lambda: np.asarray(compiled(*args)[3]), steps, repeats)
    mem = compiled.memory_analysis()
    flops = step_flops(cfg, vocab_size)
    sps = statistics.median(rates)
    models = max(K, 1)
    return {
        "steps_per_second": sps, "model_steps_per_second": sps * models,
        "us_per_step": 1e6 / sps, "compile_seconds": compile_s,
        "flops_per_step": flops * models, "gflops": flops * models * sps / 1e9,
        "temp_bytes": getattr(mem, "temp_size_in_bytes", None) if mem is not None else None,
        "argument_bytes": getattr(mem, "argument_size_in_bytes", None) if mem is not None else None,
        "rates": rates, "peak_rss_mb": peak_rss_mb(),
    }


# --------------------------------------------------------------------------------------------
# The notebook's PyTorch loop, written for the benchmark (its bug fixed: fresh bn_raw, bn_var_inv)
# --------------------------------------------------------------------------------------------
def bench_torch(Xtr, Ytr, vocab_size: int, *, steps: int, repeats: int, index_add: bool,
                n_hidden: int = 64, n_embd: int = 10, block_size: int = 3, batch: int = 32) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    X_train, y_train = torch.tensor(np.asarray(Xtr), dtype=torch.long), torch.tensor(np.asarray(Ytr), dtype=torch.long)
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, n_embd), generator=g)
    W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5 / 3) / ((n_embd * block_size) ** 0.5)
    b1 = torch.randn(n_hidden, generator=g) * 0.1
    W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
    b2 = torch.randn(vocab_size, generator=g) * 0.1
    bngain = torch.ones((1, n_hidden)) * 0.1 + 1.0
    bnbias = torch.ones((1, n_hidden)) * 0.1
    parameters = [C, W1, b1, W2, b2, bngain, bnbias]
    n = batch

    @torch.no_grad()
    def run(n_steps, i0=0):
        for i in range(i0, i0 + n_steps):
            ix = torch.randint(0, X_train.shape[0], (batch,), generator=g)
            X_batch, y_batch = X_train[ix], y_train[ix]
            emb = C[X_batch]
            embcat = emb.view(emb.shape[0], -1)
            h_pre_bn = embcat @ W1 + b1
            bn_mean_i = h_pre_bn.mean(0, keepdim=True)
            bn_var = h_pre_bn.var(0, keepdim=True, unbiased=True)
            bn_var_inv = (bn_var + 1e-5) ** -0.5
            bn_raw = (h_pre_bn - bn_mean_i) * bn_var_inv
            h = torch.tanh(bngain * bn_raw + bnbias)
            logits = h @ W2 + b2
            loss = F.cross_entropy(logits, y_batch)
            dlogits = F.softmax(logits, 1)
            dlogits[range(n), y_batch] -= 1
            dlogits /= n
            dh = dlogits @ W2.T
            dW2 = h.T @ dlogits
            db2 = dlogits.sum(0)
            dhpreact = (1.0 - h**2) * dh
            dbngain = (bn_raw * dhpreact).sum(0, keepdim=True)
            dbnbias = dhpreact.sum(0, keepdim=True)
            dhprebn = bngain * bn_var_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bn_raw * (dhpreact * bn_raw).sum(0))
            dembcat = dhprebn @ W1.T
            dW1 = embcat.T @ dhprebn
            db1 = dhprebn.sum(0)
            demb = dembcat.view(emb.shape)
            dC = torch.zeros_like(C)
            if index_add:
                dC.index_add_(0, X_batch.view(-1), demb.view(-1, n_embd))
            else:
                for k in range(X_batch.shape[0]):
                    for j in range(X_batch.shape[1]):
                        dC[X_batch[k, j]] += demb[k, j]
            lr = 0.1 if i < 100_000 else 0.01
            for p, grad in zip(parameters, [dC, dW1, db1, dW2, db2, dbngain, dbnbias]):
                p.data += -lr * grad
            loss.item()  # the notebook's lossi.append(loss.log10().item()) syncs every step

    return _time_eager(run, steps, repeats, matmul_flops(batch, n_embd, block_size, n_hidden, vocab_size))


def _time_eager(run, steps: int, repeats: int, flops: int) -> dict:
    """Time an eager loop ``run(n_steps)`` after a short warm-up: one bench row."""
    run(min(20, steps))
    rates = _time_compiled(lambda: run(steps), steps, repeats)
    sps = statistics.median(rates)
    return {"steps_per_second": sps, "model_steps_per_second": sps, "us_per_step": 1e6 / sps,
            "compile_seconds": 0.0, "flops_per_step": flops, "gflops": flops * sps / 1e9,
            "rates": rates, "peak_rss_mb": peak_rss_mb(), "temp_bytes": None, "argument_bytes": None}


def bench_torch_wavenet(Xtr, Ytr, vocab_size: int, *, steps: int, repeats: int, n_embd: int = 24,
                        n_hidden: int = 128, block_size: int = 8, batch: int = 32) -> dict:
    """makemore part 5's training loop in PyTorch: eager autograd, the lecture's layers and init."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(42)
    X_train, y_train = torch.tensor(np.asarray(Xtr), dtype=torch.long), torch.tensor(np.asarray(Ytr), dtype=torch.long)

    class Linear:
        def __init__(self, fan_in, fan_out, bias=True):
            self.weight = torch.randn((fan_in, fan_out), generator=g) / fan_in**0.5
            self.bias = torch.zeros(fan_out) if bias else None

        def __call__(self, x):
            out = x @ self.weight
            return out + self.bias if self.bias is not None else out

        def parameters(self):
            return [self.weight] + ([] if self.bias is None else [self.bias])

    class BatchNorm1d:
        def __init__(self, dim, eps=1e-5, momentum=0.1):
            self.eps, self.momentum, self.training = eps, momentum, True
            self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
            self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)

        def __call__(self, x):
            dim = 0 if x.ndim == 2 else (0, 1)
            xmean, xvar = x.mean(dim, keepdim=True), x.var(dim, keepdim=True)
            out = self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
            return out

        def parameters(self):
            return [self.gamma, self.beta]

    class Tanh:
        def __call__(self, x):
            return torch.tanh(x)

        def parameters(self):
            return []

    class Embedding:
        def __init__(self, n, d):
            self.weight = torch.randn((n, d), generator=g)

        def __call__(self, ix):
            return self.weight[ix]

        def parameters(self):
            return [self.weight]

    class FlattenConsecutive:
        def __init__(self, n):
            self.n = n

        def __call__(self, x):
            B, T, C = x.shape
            x = x.view(B, T // self.n, C * self.n)
            return x.squeeze(1) if x.shape[1] == 1 else x

        def parameters(self):
            return []

    layers = [Embedding(vocab_size, n_embd)]
    c_in, T = n_embd, block_size
    while T > 1:
        layers += [FlattenConsecutive(2), Linear(2 * c_in, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh()]
        c_in, T = n_hidden, T // 2
    layers.append(Linear(n_hidden, vocab_size))
    with torch.no_grad():
        layers[-1].weight *= 0.1
    parameters = [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True

    def run(n_steps, i0=0):
        for i in range(i0, i0 + n_steps):
            ix = torch.randint(0, X_train.shape[0], (batch,), generator=g)
            x = X_train[ix]
            for layer in layers:
                x = layer(x)
            loss = F.cross_entropy(x, y_train[ix])
            for p in parameters:
                p.grad = None
            loss.backward()
            lr = 0.1 if i < 150_000 else 0.01
            for p in parameters:
                p.data += -lr * p.grad
            loss.log10().item()

    return _time_eager(run, steps, repeats, wavenet_flops(batch, n_embd, block_size, n_hidden, vocab_size))


# --------------------------------------------------------------------------------------------
def run_bench(*, data=None, steps: int = 20_000, repeats: int = 5, torch_steps: int = 2_000,
              quick: bool = False, peak_gflops: float | None = None, log=print) -> dict:
    """All rows; ``quick`` is the smoke-test size (a few hundred steps, the large rows skipped)."""
    words = load_words(data)
    vocab = Vocab.from_words(words)
    Xtr, Ytr = (jnp.asarray(a) for a in make_splits(words, vocab, block_size=3)["train"])
    Xtr8, Ytr8 = (jnp.asarray(a) for a in make_splits(words, vocab, block_size=8)["train"])
    on_cpu = jax.devices()[0].platform == "cpu"
    peak = peak_gflops if peak_gflops is not None else (PEAK_GFLOPS_CPU_CORE if on_cpu else None)
    rows = []

    def add(group, name, res, **info):
        row = {"group": group, "name": name, **info, **res}
        if peak:
            row["fraction_of_peak"] = row["gflops"] / peak
        rows.append(row)
        log(f"{group:9s} {name:34s} {row['steps_per_second']:>11,.0f} steps/s  "
            f"{row['model_steps_per_second']:>11,.0f} model-steps/s  {row['gflops']:7.2f} GFLOP/s")

    V = vocab.size
    for n_hidden in (64, 200):
        for grad in ("manual", "autodiff"):
            add("grad", f"bpjax {grad}, n_hidden {n_hidden}",
                bench_bpjax(Xtr, Ytr, V, grad=grad, n_hidden=n_hidden, steps=steps, repeats=repeats),
                grad=grad, n_hidden=n_hidden, batch=32, K=1)
    try:
        import torch  # noqa: F401
        torch_note = None
    except ImportError:
        torch_note = "torch is not importable here: the PyTorch rows were not measured (pip install torch)"
        log(torch_note)
    if torch_note is None:
        ts = min(torch_steps, steps)
        add("pytorch", "notebook loop (Python double loop dC)",
            bench_torch(Xtr, Ytr, V, steps=max(ts // 4, 50), repeats=max(2, repeats // 2), index_add=False),
            grad="manual", n_hidden=64, batch=32, K=1)
        add("pytorch", "notebook loop, index_add_ dC",
            bench_torch(Xtr, Ytr, V, steps=ts, repeats=max(2, repeats // 2), index_add=True),
            grad="manual", n_hidden=64, batch=32, K=1)
    wn_steps = max(steps // 10, 100)
    for grad in ("manual", "autodiff"):
        add("wavenet", f"bpjax {grad}, wavenet", bench_bpjax(Xtr8, Ytr8, V, model="wavenet", grad=grad,
                                                              steps=wn_steps, repeats=repeats),
            grad=grad, n_hidden=128, batch=32, K=1)
    if torch_note is None:
        add("wavenet", "PyTorch eager autograd, wavenet",
            bench_torch_wavenet(Xtr8, Ytr8, V, steps=max(min(torch_steps, wn_steps) // 2, 20),
                                repeats=max(2, repeats // 2)), grad="autodiff", n_hidden=128, batch=32, K=1)
    scale_steps = max(steps // 10, 100)
    batches = (32, 256) if quick else (32, 256, 2048)
    hiddens = (64, 256) if quick else (64, 256, 1024)
    for b in batches:
        add("scaling", f"manual, batch {b}", bench_bpjax(Xtr, Ytr, V, grad="manual", batch_size=b,
                                                         steps=scale_steps, repeats=repeats),
            grad="manual", n_hidden=64, batch=b, K=1)
    for h in hiddens:
        add("scaling", f"manual, n_hidden {h}", bench_bpjax(Xtr, Ytr, V, grad="manual", n_hidden=h,
                                                            steps=scale_steps, repeats=repeats),
            grad="manual", n_hidden=h, batch=32, K=1)
    for K in (4, 16):
        for grad in ("manual", "autodiff"):
            add("vmap", f"{grad}, {K} models under vmap",
                bench_bpjax(Xtr, Ytr, V, grad=grad, K=K, steps=scale_steps, repeats=repeats),
                grad=grad, n_hidden=64, batch=32, K=K)

    def sps(name):
        return next(r["model_steps_per_second"] for r in rows if r["name"] == name)

    summary = {
        "manual_over_autodiff": sps("bpjax manual, n_hidden 64") / sps("bpjax autodiff, n_hidden 64"),
        "manual_over_autodiff_n_hidden_200": sps("bpjax manual, n_hidden 200") / sps("bpjax autodiff, n_hidden 200"),
        "vmap16_over_single_manual": sps("manual, 16 models under vmap") / sps("bpjax manual, n_hidden 64"),
        "vmap16_over_single_autodiff": sps("autodiff, 16 models under vmap") / sps("bpjax autodiff, n_hidden 64"),
    }
    summary["wavenet_manual_over_autodiff"] = sps("bpjax manual, wavenet") / sps("bpjax autodiff, wavenet")
    if torch_note is None:
        summary["wavenet_manual_over_pytorch_autograd"] = sps("bpjax manual, wavenet") / sps("PyTorch eager autograd, wavenet")
        summary["manual_over_pytorch_notebook_loop"] = (sps("bpjax manual, n_hidden 64")
                                                        / sps("notebook loop (Python double loop dC)"))
        summary["manual_over_pytorch_index_add"] = (sps("bpjax manual, n_hidden 64")
                                                    / sps("notebook loop, index_add_ dC"))
    if peak:
        f = matmul_flops(32, 10, 3, 64, V)
        summary["compute_limit_steps_per_second"] = peak * 1e9 / f
        summary["manual_fraction_of_compute_limit"] = sps("bpjax manual, n_hidden 64") / (peak * 1e9 / f)
    env = environment()
    machine = {**env, "cpu": cpu_name(), "cpu_count": os.cpu_count(), "peak_gflops": peak,
               "xla_flags": os.environ.get("XLA_FLAGS", "")}
    return {"machine": machine, "settings": {"steps": steps, "repeats": repeats, "quick": quick},
            "rows": rows, "summary": summary, "torch": torch_note or "measured (1 thread)"}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['device']}; jax {m['jax']}, "
             f"peak {m['peak_gflops'] or '?'} GFLOP/s. Steps/s are medians of {result['settings']['repeats']} repeats.",
             "", "| group | what | steps/s | model-steps/s | µs/step | compile s | MFLOP/step | GFLOP/s | of peak | XLA temp KiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        frac = f"{100 * r['fraction_of_peak']:.1f}%" if "fraction_of_peak" in r else "—"
        temp = f"{r['temp_bytes'] / 1024:,.0f}" if r.get("temp_bytes") is not None else "—"
        lines.append(f"| {r['group']} | {r['name']} | {r['steps_per_second']:,.0f} | {r['model_steps_per_second']:,.0f} "
                     f"| {r['us_per_step']:.1f} | {r['compile_seconds']:.2f} | {r['flops_per_step'] / 1e6:.2f} "
                     f"| {r['gflops']:.2f} | {frac} | {temp} |")
    lines.append("")
    lines += [f"- {k.replace('_', ' ')}: {v:,.2f}" for k, v in result["summary"].items()]
    if result["torch"] != "measured (1 thread)":
        lines.append(f"- {result['torch']}")
    return "\n".join(lines) + "\n"


def add_bench_args(b) -> None:
    b.add_argument("--data", help="names file (default: the usual search)")
    b.add_argument("--steps", type=int, default=20_000, help="steps per timed repeat (default 20,000)")
    b.add_argument("--repeats", type=int, default=5, help="repeats per row; the median is reported (default 5)")
    b.add_argument("--torch-steps", type=int, default=2_000, help="steps per PyTorch repeat (default 2,000)")
    b.add_argument("--quick", action="store_true", help="smoke-test size: skip the largest scaling rows")
    b.add_argument("--peak-gflops", type=float, help=f"the machine's peak (default {PEAK_GFLOPS_CPU_CORE} on CPU)")
    b.add_argument("--out", default="bench", metavar="DIR", help="where bench.json and bench.md go (default bench/)")


def cmd_bench(args) -> int:
    from pathlib import Path

    from .errors import ConfigError

    if args.steps < 10 or args.repeats < 1 or args.torch_steps < 10:
        raise ConfigError("--steps and --torch-steps must be >= 10 and --repeats >= 1")
    result = run_bench(data=args.data, steps=args.steps, repeats=args.repeats, torch_steps=args.torch_steps,
                       quick=args.quick, peak_gflops=args.peak_gflops)
    out = Path(args.out)
    atomic_write_json(out / "bench.json", result)
    md = markdown(result)
    atomic_write_text(out / "bench.md", md)
    print()
    print(md)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
