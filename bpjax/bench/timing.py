"""Timing a training step: the chunk ``bpjax train`` runs, compiled ahead of time, one ``lax.scan``
chunk per call with its host round trip; a row's figure is the median over repeats."""

from __future__ import annotations

import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from ..training import Config
from ..training.chunk import ChunkRunner, plan, run_chunk
from ..training.distributed import make_mesh
from ..training.loop import chunk_for
from ..training.step import init_train_state
from ..training.sweep import place_models

DIAGNOSED = {"diagnose_every": 100, "verify_every": 1000}
"""The instrumented row of the ``diagnostics`` group: its cost is measured against the plain step."""


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


def rates_of(call, steps: int, repeats: int) -> list[float]:
    """Steps per second of ``repeats`` calls of ``call`` (each runs ``steps`` steps)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return [steps / t for t in times]


def row(rates, flops, models_at_once: int = 1, compile_s: float = 0.0, mem=None) -> dict:
    """A bench row's figures from its rates (the median is the row's)."""
    sps = statistics.median(rates)
    return {
        "steps_per_second": sps,
        "model_steps_per_second": sps * models_at_once,
        "us_per_step": 1e6 / sps,
        "compile_seconds": compile_s,
        "flops_per_step": None if flops is None else flops * models_at_once,
        "gflops": None if flops is None else flops * models_at_once * sps / 1e9,
        "temp_bytes": getattr(mem, "temp_size_in_bytes", None) if mem is not None else None,
        "argument_bytes": getattr(mem, "argument_size_in_bytes", None) if mem is not None else None,
        "rates": rates,
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_bpjax(
    Xtr,
    Ytr,
    vocab_size: int,
    *,
    grad: str,
    model: str = "mlp",
    steps: int,
    repeats: int,
    K: int = 0,
    devices: int = 1,
    **settings,
) -> dict:
    """Time ``steps`` training steps (one chunk of the train path: :func:`~bpjax.training.loop.chunk_for`);
    K > 0 vmaps K seeds at once, sharded across ``devices`` local devices as ``bpjax sweep`` does (K
    must divide by it). ``settings``: sizes and Config settings (n_hidden, batch_size, ...) over the
    model's defaults."""
    cfg = Config(model, steps=max(steps, 2), grad=grad, **settings)
    if Xtr.ndim == 2:  # rows (a text's stream is 1-D: its block size is the config's)
        cfg = cfg.with_data({"block_size": Xtr.shape[1]})
    if K:
        starts = [init_train_state(cfg.replace(seed=k), vocab_size) for k in range(K)]
        stacked = tuple(jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[s[i] for s in starts]) for i in range(4))
        (params, opt_state, state, key_data, Xtr, Ytr), runner = place_models(
            cfg, (*stacked, Xtr, Ytr), make_mesh(devices) if devices > 1 else None
        )
    else:
        params, opt_state, state, key_data = init_train_state(cfg, vocab_size)
        runner = ChunkRunner(chunk_for(cfg))
    args = (params, opt_state, state, key_data, jnp.int32(0), Xtr, Ytr)
    compiled = runner.compile(steps, *args)
    rates = rates_of(lambda: np.asarray(compiled(*args)[3]), steps, repeats)
    return row(rates, step_flops(cfg, vocab_size), max(K, 1), runner.compile_seconds, compiled.memory_analysis())


class TrainLoop:
    """``bpjax train``'s loop over ``steps`` without the files: the chunks of its plan
    (:func:`~bpjax.training.chunk.plan`), each chunk's losses (and records and checks) brought back to
    the host. Compiled on construction; ``run()`` trains from the same start each time."""

    def __init__(self, cfg: Config, Xtr, Ytr, vocab_size: int, steps: int):
        self.Xtr, self.Ytr = Xtr, Ytr
        self.start = init_train_state(cfg, vocab_size)
        self.runner = ChunkRunner(chunk_for(cfg))
        self.plan = plan(cfg, 0, steps)
        self.run(compile_only=True)

    def run(self, compile_only: bool = False):
        params, opt_state, state, key = self.start
        for a, _, static in self.plan:
            compiled = self.runner.compile(static, params, opt_state, state, key, jnp.int32(a), self.Xtr, self.Ytr)
            if compile_only:
                continue
            out, _, _ = run_chunk(compiled, (params, opt_state, state), key, a, self.Xtr, self.Ytr, np.asarray)
            params, opt_state, state, _, _, extras = out
            jax.tree_util.tree_map(np.asarray, extras)


def bench_diagnostics(Xtr, Ytr, vocab_size: int, *, model: str = "mlp", steps: int, repeats: int) -> tuple[dict, dict]:
    """``(plain row, instrumented row)``: ``bpjax train``'s loop over ``steps`` (:class:`TrainLoop`)
    without and with :data:`DIAGNOSED`'s records and verifications, compiled first, then timed
    alternately (plain, instrumented, plain, ...) so that both see the same machine."""
    cfg = Config(model, steps=max(steps, 2)).with_data({"block_size": Xtr.shape[1]})
    loops = (
        TrainLoop(cfg, Xtr, Ytr, vocab_size, steps),
        TrainLoop(cfg.replace(**DIAGNOSED), Xtr, Ytr, vocab_size, steps),
    )
    rates = ([], [])
    for _ in range(repeats):
        for loop, out in zip(loops, rates, strict=True):
            out += rates_of(loop.run, steps, 1)
    f = step_flops(cfg, vocab_size)
    return tuple(row(r, f, 1, loop.runner.compile_seconds) for r, loop in zip(rates, loops, strict=True))
