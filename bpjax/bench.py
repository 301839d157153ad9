"""``bpjax bench``: training speed side by side, measured in one run.

Every bpjax row times the code ``bpjax train`` runs: the chunk of :mod:`bpjax.step` with the
gradient function of ``--grad`` and the optimizer of the config, compiled ahead of time, one
``lax.scan`` chunk per call with its host round trip. A row's figure is the median over repeats.

Rows (each a dict keyed by data: ``impl``, ``model``, ``grad``, ``variant``, sizes, ``K``; ``name``
is only for display): manual vs autodiff at the notebook config and at n_hidden 200; every other
registered model at its defaults; the PyTorch baselines of ``experiments/torch_baselines.py`` (in
a source checkout, when torch is importable); with ``--makemore PATH``, makemore.py's own training
loop (run as its command line: its data loader, model and AdamW, the step times it prints) and its
model and AdamW alone, beside each of its six models; scaling in batch and n_hidden; K models at once
under ``vmap``; the cost of ``--diagnose-every 100 --verify-every 1000`` beside the plain step (the
two timed alternately). Each row carries the step's FLOPs (the model's ``flops``) and the GFLOP/s
achieved, beside the machine's peak.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import models
from .config import GRADS, Config
from .data import Vocab, load_words, make_dataset, resolve_data_path
from .distributed import default_sweep_devices, make_mesh
from .errors import ConfigError
from .io import atomic_write_json, atomic_write_text, check_output_dir
from .optim import make_optimizer
from .rundir import environment
from .step import ChunkRunner, gradient_fn, init_train_state, make_train_chunk
from .sweep import place_models

SECTIONS = ("models", "scaling", "vmap", "diagnostics")
"""The groups of rows ``--only`` chooses from; the reference rows (manual and autodiff gradients of
the notebook's MLP, its PyTorch loops) always run."""
REFERENCE = "mlp"
"""The notebook's model: the grad, scaling and vmap rows measure it; every other registered model
gets its manual and autodiff rows at its defaults."""
PEAK_GFLOPS_CPU_CORE = 166.4  # AVX-512: 2 FMA units x 16 fp32 lanes x 2 flops x 2.6 GHz
TORCH_BASELINES = Path(__file__).resolve().parent.parent / "experiments" / "torch_baselines.py"
MAKEMORE_PEER = TORCH_BASELINES.parent / "makemore_peer.py"


def step_flops(cfg: Config, vocab: int) -> int | None:
    """One training step's matmul FLOPs, from the model's ``flops`` (None if it has none)."""
    f = cfg.spec.flops
    return None if f is None else f(cfg.batch_size, vocab, **cfg.sizes)


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


def _median_rate(call, steps: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return [steps / t for t in times]


def bench_bpjax(Xtr, Ytr, vocab_size: int, *, grad: str, model: str = "mlp", steps: int, repeats: int,
                K: int = 0, devices: int = 1, **settings) -> dict:
    """Time ``steps`` training steps (one chunk) of the train path; K > 0 vmaps K seeds at once,
    sharded across ``devices`` local devices as ``bpjax sweep`` does (K must divide by it).

    ``settings``: sizes and Config settings (n_hidden, batch_size, ...) over the model's defaults.
    """
    cfg = Config(model, steps=max(steps, 2), grad=grad, **settings).with_data({"block_size": Xtr.shape[1]})
    if K:
        starts = [init_train_state(cfg.replace(seed=k), vocab_size) for k in range(K)]
        stacked = tuple(jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[s[i] for s in starts]) for i in range(4))
        (params, opt_state, state, key_data, Xtr, Ytr), runner = place_models(
            cfg, (*stacked, Xtr, Ytr), make_mesh(devices) if devices > 1 else None)
        args = (params, opt_state, state, key_data, jnp.int32(0), Xtr, Ytr)
        compiled = runner.compile(steps, *args)
    else:
        compiled, args, runner = _compiled_chunk(cfg, Xtr, Ytr, vocab_size, steps)  # noqa: F841
    rates = _median_rate(lambda: np.asarray(compiled(*args)[3]), steps, repeats)
    mem = compiled.memory_analysis()
    return _row(rates, step_flops(cfg, vocab_size), max(K, 1), runner.compile_seconds, mem)


def _compiled_chunk(cfg: Config, Xtr, Ytr, vocab_size: int, steps: int):
    """``(compiled chunk of steps [0, steps), its arguments, runner)``: the chunk ``bpjax train`` runs
    for ``cfg``."""
    params, opt_state, state, key_data = init_train_state(cfg, vocab_size)
    args = (params, opt_state, state, key_data, jnp.int32(0), Xtr, Ytr)
    runner = ChunkRunner(make_train_chunk(gradient_fn(cfg.model, cfg.grad), make_optimizer(cfg), cfg.batch_size))
    return runner.compile(steps, *args), args, runner


DIAGNOSED = {"diagnose_every": 100, "verify_every": 1000}
"""The instrumented row of the ``diagnostics`` group: its cost is measured against the plain step."""


class _TrainLoop:
    """``bpjax train``'s loop over ``steps`` without the files: its chunks (``cfg.chunk`` steps, or
    :func:`bpjax.diagnostics.chunk_segments` with records and checks), each chunk's losses (and
    records and checks) brought back to the host. Compiled on construction; ``run()`` trains from
    the same start each time."""

    def __init__(self, cfg: Config, Xtr, Ytr, vocab_size: int, steps: int):
        from . import diagnostics as D
        from .step import chunk_length, segments

        self.Xtr, self.Ytr = Xtr, Ytr
        self.start = init_train_state(cfg, vocab_size)
        tx = make_optimizer(cfg)
        recording = cfg.diagnose_every or cfg.verify_every
        self.runner = ChunkRunner(D.make_recorded_chunk(cfg.spec, cfg.grad, tx, cfg.batch_size, cfg.diagnose_every)
                                  if recording else make_train_chunk(gradient_fn(cfg.model, cfg.grad), tx,
                                                                     cfg.batch_size))
        self.segments = (D.chunk_segments(cfg, 0, steps) if recording else segments(0, steps, [chunk_length(cfg)]))
        self.static = [D.static_args(a, b, cfg.diagnose_every, cfg.verify_every) if recording else b - a
                       for a, b in self.segments]
        self.run(compile_only=True)

    def run(self, compile_only: bool = False):
        params, opt_state, state, key = self.start
        for (a, _), static in zip(self.segments, self.static, strict=True):
            args = (params, opt_state, state, key, jnp.int32(a), self.Xtr, self.Ytr)
            chunk = self.runner.compile(static, *args)
            if compile_only:
                continue
            params, opt_state, state, losses, _, *extras = chunk(*args)
            np.asarray(losses)
            jax.tree_util.tree_map(np.asarray, extras)


def bench_diagnostics(Xtr, Ytr, vocab_size: int, *, model: str = "mlp", steps: int, repeats: int) -> tuple[dict, dict]:
    """``(plain row, instrumented row)``: ``bpjax train``'s loop over ``steps`` (:class:`_TrainLoop`)
    without and with :data:`DIAGNOSED`'s records and verifications, compiled first, then timed
    alternately (plain, instrumented, plain, ...) so that both see the same machine."""
    cfg = Config(model, steps=max(steps, 2)).with_data({"block_size": Xtr.shape[1]})
    loops = (_TrainLoop(cfg, Xtr, Ytr, vocab_size, steps), _TrainLoop(cfg.replace(**DIAGNOSED), Xtr, Ytr, vocab_size,
                                                                         steps))
    rates = ([], [])
    for _ in range(repeats):
        for loop, out in zip(loops, rates, strict=True):
            out += _median_rate(loop.run, steps, 1)
    f = step_flops(cfg, vocab_size)
    return tuple(_row(r, f, 1, loop.runner.compile_seconds) for r, loop in zip(rates, loops, strict=True))


def _row(rates, flops, models_at_once: int = 1, compile_s: float = 0.0, mem=None) -> dict:
    sps = statistics.median(rates)
    return {
        "steps_per_second": sps, "model_steps_per_second": sps * models_at_once,
        "us_per_step": 1e6 / sps, "compile_seconds": compile_s,
        "flops_per_step": None if flops is None else flops * models_at_once,
        "gflops": None if flops is None else flops * models_at_once * sps / 1e9,
        "temp_bytes": getattr(mem, "temp_size_in_bytes", None) if mem is not None else None,
        "argument_bytes": getattr(mem, "argument_size_in_bytes", None) if mem is not None else None,
        "rates": rates, "peak_rss_mb": peak_rss_mb(),
    }


def _experiment(path: Path, name: str, rows: str):
    """``(module, note)``: an ``experiments/`` file of a source checkout, imported, when torch is
    importable; else ``None`` and why ``rows`` were not measured."""
    if not path.is_file():
        return None, (f"{rows} are timed by experiments/{path.name} of a source checkout "
                      f"(pip install -e . from the repository): they were not measured")
    try:
        import torch  # noqa: F401
    except ImportError:
        return None, f"torch is not importable here: {rows} were not measured (pip install torch)"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def torch_baselines():
    """``(module, note)``: ``experiments/torch_baselines.py`` of a source checkout when torch is
    importable, else ``None`` and why the PyTorch rows are not measured."""
    return _experiment(TORCH_BASELINES, "bpjax_torch_baselines", "the PyTorch rows")


def makemore_peer(makemore: str | None):
    """``(module, note)``: ``experiments/makemore_peer.py`` (the glue that times makemore.py) when
    ``--makemore PATH`` names a file, torch is importable and this is a source checkout; else
    ``None`` and why the makemore rows are not measured."""
    if makemore is None:
        return None, "makemore.py not timed: pass --makemore PATH/TO/makemore.py (needs torch) for its rows"
    if not Path(makemore).is_file():
        raise ConfigError(f"--makemore {makemore!r} is not a file: give the path to makemore.py")
    return _experiment(MAKEMORE_PEER, "bpjax_makemore_peer", "makemore.py's rows")


# --------------------------------------------------------------------------------------------
def find(rows: list[dict], **keys) -> dict:
    """The one row whose fields equal ``keys`` (``find(rows, impl="bpjax", model="mlp", grad="manual",
    group="grad", n_hidden=64)``)."""
    hits = [r for r in rows if all(r.get(k) == v for k, v in keys.items())]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} rows match {keys}")
    return hits[0]


def run_bench(*, data=None, steps: int = 20_000, repeats: int = 5, torch_steps: int = 2_000,
              quick: bool = False, peak_gflops: float | None = None, makemore: str | None = None,
              only: set[str] | None = None, log=print) -> dict:
    """All rows; ``quick`` is the smoke-test size (a few hundred steps, the large rows skipped).
    ``only``: of the groups ``SECTIONS`` (models, scaling, vmap), just these, after the reference rows.
    ``makemore``: the path to makemore.py, whose own training step is timed beside each of its models."""
    if only is not None and not (only and only <= set(SECTIONS)):
        raise ConfigError(f"--only takes some of {', '.join(SECTIONS)}, got {', '.join(sorted(only)) or 'nothing'}")
    words = load_words(data)
    vocab = Vocab.from_words(words)
    V = vocab.size
    splits_by_block = {}

    def train_rows(model: str):
        spec = models.get(model)
        key = (spec.data, Config(model).block_size)
        if key not in splits_by_block:
            splits = make_dataset(words, vocab, layout=spec.data, block_size=key[1])
            splits_by_block[key] = tuple(jnp.asarray(a) for a in splits["train"])
        return splits_by_block[key]

    on_cpu = jax.devices()[0].platform == "cpu"
    peak = peak_gflops if peak_gflops is not None else (PEAK_GFLOPS_CPU_CORE if on_cpu else None)
    rows = []

    def add(group, name, res, **keys):
        row = {"group": group, "name": name, **keys, **res}
        if peak and row["gflops"] is not None:
            row["fraction_of_peak"] = row["gflops"] / peak
        rows.append(row)
        gf = f"{row['gflops']:7.2f} GFLOP/s" if row["gflops"] is not None else ""
        log(f"{group:9s} {name:34s} {row['steps_per_second']:>11,.0f} steps/s  "
            f"{row['model_steps_per_second']:>11,.0f} model-steps/s  {gf}")

    def bpjax_row(group, name, model=REFERENCE, grad="manual", K=0, devices=1, n_steps=steps, **settings):
        cfg = Config(model, **settings).with_data({"block_size": train_rows(model)[0].shape[1]})
        res = bench_bpjax(*train_rows(model), V, model=model, grad=grad, steps=n_steps, repeats=repeats, K=K,
                          devices=devices, **settings)
        add(group, name, res, impl="bpjax", model=model, grad=grad, variant="train", K=max(K, 1),
            devices=devices, n_hidden=cfg.sizes.get("n_hidden"), batch=cfg.batch_size)

    torch_mod, torch_note = torch_baselines()
    if torch_note:
        log(torch_note)
    peer, makemore_note = makemore_peer(makemore)
    if makemore_note:
        log(makemore_note)
    mm = peer.load_makemore(Path(makemore)) if peer else None

    def torch_rows(group, model, n_steps):
        for name, variant, grad, fn in (torch_mod.BASELINES.get(model, []) if torch_mod else []):
            ts = max(n_steps // 4, 50) if variant == "double_loop" else n_steps  # the slow Python loop
            rates = fn(*train_rows(model), V, steps=ts, repeats=max(2, repeats // 2))
            cfg = Config(model).with_data({"block_size": train_rows(model)[0].shape[1]})
            add(group, name, _row(rates, step_flops(cfg, V)), impl="pytorch", model=model, grad=grad,
                variant=variant, K=1, n_hidden=cfg.sizes.get("n_hidden"), batch=cfg.batch_size)

    def makemore_rows(model, n_steps):
        if peer is None or model not in peer.ZOO:
            return
        import torch

        Xtr, Ytr = train_rows(model)
        cfg = Config(model).with_data({"block_size": Xtr.shape[1]})
        for name, variant, rates in (
                (f"makemore.py's own loop, {model}", "makemore_loop",
                 peer.makemore_loop_rates(Path(makemore), model, str(resolve_data_path(data)),
                                          max(n_steps, 50))),
                (f"makemore.py's model + AdamW, {model}", "makemore_model_step",
                 peer.time_torch(mm, torch, model, np.asarray(Xtr), np.asarray(Ytr), V, Xtr.shape[1], n_steps,
                                 repeats=max(2, repeats // 2)))):
            # no FLOPs: makemore computes some models another way (bengio's embcat @ W1 is 30x the projections)
            add(model, name, _row(rates, None), impl="makemore", model=model, grad="autodiff",
                variant=variant, K=1, batch=cfg.batch_size)

    for n_hidden in (64, 200):
        for grad in GRADS:
            bpjax_row("grad", f"bpjax {grad}, n_hidden {n_hidden}", grad=grad, n_hidden=n_hidden)
    torch_rows("pytorch", REFERENCE, min(torch_steps, steps))
    model_steps = max(steps // 10, 100)
    want = lambda section: only is None or section in only  # noqa: E731
    for model in (m for m in models.names() if m != REFERENCE and want("models")):
        for grad in GRADS:
            bpjax_row(model, f"bpjax {grad}, {model}", model=model, grad=grad, n_steps=model_steps)
        torch_rows(model, model, max(min(torch_steps, model_steps) // 2, 20))
        makemore_rows(model, max(min(torch_steps, model_steps) // 2, 20))
    scale_steps = max(steps // 10, 100)
    for b in ((32, 256) if quick else (32, 256, 2048)) if want("scaling") else ():
        bpjax_row("scaling", f"manual, batch {b}", batch_size=b, n_steps=scale_steps)
    for h in ((64, 256) if quick else (64, 256, 1024)) if want("scaling") else ():
        bpjax_row("scaling", f"manual, n_hidden {h}", n_hidden=h, n_steps=scale_steps)
    for K in (4, 16) if want("vmap") else ():
        for grad in GRADS:
            bpjax_row("vmap", f"{grad}, {K} models under vmap", grad=grad, K=K, n_steps=scale_steps)
    for model in ((REFERENCE,) if quick else (REFERENCE, "deep")) if want("diagnostics") else ():
        n = steps if model == REFERENCE else model_steps
        res = bench_diagnostics(*train_rows(model), V, model=model, steps=n, repeats=repeats)
        for variant, r in zip(("train", "diagnosed"), res, strict=True):
            name = f"{model} manual" + (", diagnose 100 + verify 1000" if variant == "diagnosed" else ", plain step")
            add("diagnostics", name, r, impl="bpjax", model=model, grad="manual", variant=variant, K=1,
                n_hidden=Config(model).sizes.get("n_hidden"), batch=32, **(DIAGNOSED if variant == "diagnosed" else {}))
    n_dev = default_sweep_devices()  # bpjax sweep's default: one device per core on CPU
    if n_dev > 1 and want("vmap"):
        for grad in GRADS:
            bpjax_row("vmap", f"{grad}, 16 models under vmap, {n_dev} devices", grad=grad, K=16 - 16 % n_dev,
                      devices=n_dev, n_steps=scale_steps)
    summary = _summary(rows, peak, V, torch_mod is not None)
    machine = {**environment(), "cpu": cpu_name(), "cpu_count": os.cpu_count(), "peak_gflops": peak,
               "xla_flags": os.environ.get("XLA_FLAGS", "")}
    return {"machine": machine, "settings": {"steps": steps, "repeats": repeats, "quick": quick},
            "rows": rows, "summary": summary, "torch": torch_note or "measured (1 thread)",
            "makemore": makemore_note or f"measured: makemore.py on torch's default threads ({_torch_threads()})"}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _summary(rows: list[dict], peak, V: int, with_torch: bool) -> dict:
    def sps(**keys):
        return find(rows, **keys)["model_steps_per_second"]

    mlp = lambda grad, h=64: sps(group="grad", grad=grad, n_hidden=h)  # noqa: E731
    s = {"manual_over_autodiff": mlp("manual") / mlp("autodiff"),
         "manual_over_autodiff_n_hidden_200": mlp("manual", 200) / mlp("autodiff", 200)}
    if any(r["group"] == "vmap" for r in rows):
        s["vmap16_over_single_manual"] = sps(group="vmap", grad="manual", K=16, devices=1) / mlp("manual")
        s["vmap16_over_single_autodiff"] = sps(group="vmap", grad="autodiff", K=16, devices=1) / mlp("autodiff")
    sharded = [r for r in rows if r["group"] == "vmap" and r.get("devices", 1) > 1 and r["grad"] == "manual"]
    if sharded:
        s["vmap16_all_devices_over_one_device_manual"] = sharded[0]["model_steps_per_second"] / sps(
            group="vmap", grad="manual", K=16, devices=1)
        s["vmap16_all_devices_over_single_manual"] = sharded[0]["model_steps_per_second"] / mlp("manual")
    for model in (m for m in models.names() if m != REFERENCE and any(r["group"] == m for r in rows)):
        man = sps(group=model, impl="bpjax", grad="manual")
        s[f"{model}_manual_over_autodiff"] = man / sps(group=model, impl="bpjax", grad="autodiff")
        for r in rows:
            if r["group"] == model and r["impl"] == "pytorch":
                s[f"{model}_manual_over_pytorch_{r['variant']}"] = man / r["model_steps_per_second"]
            if r["group"] == model and r["impl"] == "makemore":
                s[f"{model}_manual_over_{r['variant']}"] = man / r["model_steps_per_second"]
    for model in (m for m in (REFERENCE, "deep") if any(r["group"] == "diagnostics" and r["model"] == m for r in rows)):
        plain = sps(group="diagnostics", model=model, variant="train")
        s[f"{model}_diagnosed_over_plain"] = sps(group="diagnostics", model=model, variant="diagnosed") / plain
    if with_torch:
        torch_ref = lambda variant: sps(impl="pytorch", model=REFERENCE, variant=variant)  # noqa: E731
        s["manual_over_pytorch_notebook_loop"] = mlp("manual") / torch_ref("double_loop")
        s["manual_over_pytorch_index_add"] = mlp("manual") / torch_ref("index_add")
    if peak:
        ref = models.get(REFERENCE)
        f = ref.flops(32, V, **ref.sizes)
        s["compute_limit_steps_per_second"] = peak * 1e9 / f
        s["manual_fraction_of_compute_limit"] = mlp("manual") / (peak * 1e9 / f)
    return s


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['device']}; jax {m['jax']}, "
             f"peak {m['peak_gflops'] or '?'} GFLOP/s. Steps/s are medians of {result['settings']['repeats']} repeats.",
             "", "| group | what | steps/s | model-steps/s | µs/step | compile s | MFLOP/step | GFLOP/s | of peak "
                 "| XLA temp KiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        frac = f"{100 * r['fraction_of_peak']:.1f}%" if "fraction_of_peak" in r else "—"
        mf = f"{r['flops_per_step'] / 1e6:.2f}" if r["flops_per_step"] is not None else "—"
        gf = f"{r['gflops']:.2f}" if r["gflops"] is not None else "—"
        temp = f"{r['temp_bytes'] / 1024:,.0f}" if r.get("temp_bytes") is not None else "—"
        lines.append(f"| {r['group']} | {r['name']} | {r['steps_per_second']:,.0f} "
                     f"| {r['model_steps_per_second']:,.0f} "
                     f"| {r['us_per_step']:.1f} | {r['compile_seconds']:.2f} | {mf} | {gf} | {frac} | {temp} |")
    lines.append("")
    lines += [f"- {k.replace('_', ' ')}: {v:,.2f}" for k, v in result["summary"].items()]
    if result["torch"] != "measured (1 thread)":
        lines.append(f"- {result['torch']}")
    lines.append(f"- makemore.py: {result['makemore']}")
    return "\n".join(lines) + "\n"


def add_bench_args(b) -> None:
    b.add_argument("--data", help="names file (default: the usual search)")
    b.add_argument("--steps", type=int, default=20_000, help="steps per timed repeat (default 20,000)")
    b.add_argument("--repeats", type=int, default=5, help="repeats per row; the median is reported (default 5)")
    b.add_argument("--torch-steps", type=int, default=2_000, help="steps per PyTorch repeat (default 2,000)")
    b.add_argument("--quick", action="store_true", help="smoke-test size: skip the largest scaling rows")
    b.add_argument("--peak-gflops", type=float, help=f"the machine's peak (default {PEAK_GFLOPS_CPU_CORE} on CPU)")
    b.add_argument("--only", metavar="GROUPS", help=f"comma-separated, some of {','.join(SECTIONS)}: only these "
                   "groups after the reference rows (default: all)")
    b.add_argument("--makemore", metavar="PATH", help="makemore.py, to time its own training step beside each of "
                   "its six models (needs torch; its data loader with --num-workers 0, torch's default threads)")
    b.add_argument("--out", default="bench", metavar="DIR", help="where bench.json and bench.md go (default bench/)")


def cmd_bench(args) -> int:
    if args.steps < 10 or args.repeats < 1 or args.torch_steps < 10:
        raise ConfigError("--steps and --torch-steps must be >= 10 and --repeats >= 1")
    check_output_dir(args.out)
    result = run_bench(data=args.data, steps=args.steps, repeats=args.repeats, torch_steps=args.torch_steps,
                       quick=args.quick, peak_gflops=args.peak_gflops, makemore=args.makemore,
                       only=None if args.only is None else {g.strip() for g in args.only.split(",") if g.strip()})
    out = Path(args.out)
    atomic_write_json(out / "bench.json", result)
    md = markdown(result)
    atomic_write_text(out / "bench.md", md)
    print()
    print(md)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
