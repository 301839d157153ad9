"""makemore part 5: the hierarchical "WaveNet", built from the same custom_vjp layers.

    emb = C[X]                                   [B, 8, E]
    3 x:  x = flatten_consecutive(x, 2)          [B, T, C] -> [B, T/2, 2C]   (T/2 == 1: [B, 2C])
          x = x @ W                              no bias: batch norm removes it
          x = batchnorm(x)                       statistics over every axis but the last (B·T rows)
          x = tanh(x)
    logits = x @ Wout + bout                     [B, V]   (Wout scaled by 0.1 at init)

At the lecture's sizes (n_embd 24, n_hidden 128, block_size 8) this has 76,579 parameters.
Batch norm keeps running mean and (Bessel) variance with momentum 0.1 as explicit functional state
(:func:`bpjax.layers.running_batchnorm`); eval mode uses them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from ..errors import ConfigError
from ..layers import running_batchnorm, running_stats
from . import Model

FACTOR = 2  # FlattenConsecutive(2) in every stage


def n_stages(block_size: int) -> int:
    """Stages of FlattenConsecutive(2) that reduce ``block_size`` to 1; an error if none do."""
    if block_size < 2 or block_size & (block_size - 1):
        raise ConfigError(
            f"the WaveNet halves the context in every stage, so block_size must be a "
            f"power of 2 (>= 2), got {block_size}"
        )
    return int(math.log2(block_size))


def init_params(
    key, *, vocab_size: int = 27, n_embd: int = 24, n_hidden: int = 128, block_size: int = 8, dtype=jnp.float32
) -> dict:
    """The lecture's init: C ~ N(0, 1); each W ~ N(0, 1)/sqrt(fan_in) (no bias before batch norm);
    bngain 1, bnbias 0; the output layer ``Wout`` scaled by 0.1 and ``bout`` 0.

    Returns ``{"C": [V, E], "stages": [{"W": [2·C_in, H], "bngain": [H], "bnbias": [H]}, ...],
    "Wout": [H, V], "bout": [V]}``.
    """
    S = n_stages(block_size)
    keys = jax.random.split(key, S + 2)
    stages, fan_in = [], FACTOR * n_embd
    for s in range(S):
        stages.append(
            {
                "W": jax.random.normal(keys[1 + s], (fan_in, n_hidden), dtype) / fan_in**0.5,
                "bngain": jnp.ones((n_hidden,), dtype),
                "bnbias": jnp.zeros((n_hidden,), dtype),
            }
        )
        fan_in = FACTOR * n_hidden
    return {
        "C": jax.random.normal(keys[0], (vocab_size, n_embd), dtype),
        "stages": stages,
        "Wout": jax.random.normal(keys[-1], (n_hidden, vocab_size), dtype) / n_hidden**0.5 * 0.1,
        "bout": jnp.zeros((vocab_size,), dtype),
    }


def init_state(params) -> dict:
    """Running statistics: mean 0 and variance 1 per stage, as ``nn.BatchNorm1d`` starts."""
    return {"stages": [running_stats(s["bngain"]) for s in params["stages"]]}


def init(key, *, vocab_size: int, dtype=jnp.float32, **sizes):
    """``(params, state)``: :func:`init_params` and its :func:`init_state`."""
    params = init_params(key, vocab_size=vocab_size, dtype=dtype, **sizes)
    return params, init_state(params)


def forward(ly, params, state, X, tap=NO_TAP):
    """``X`` [B, block_size] -> ``(logits [B, V], state)``: each stage's batch norm on the batch's
    statistics, its running ones updated (training mode), or on the running ones (eval mode)."""
    with jax.named_scope("embedding"):
        x = tap("emb", ly.embedding(params["C"], X))
    running = []
    for s, p in enumerate(params["stages"]):
        with jax.named_scope(f"stage{s}"):
            x = tap(f"stage{s}.flat", ly.flatten_consecutive(x, FACTOR))
            x = tap(f"stage{s}.lin", ly.linear(x, p["W"], None))
            x, st = running_batchnorm(ly, x, p["bngain"], p["bnbias"], state["stages"][s])
            running.append(st)
            x = tap(f"stage{s}.bn", x)
            x = tap(f"stage{s}.h", ly.tanh(x))
    with jax.named_scope("output"):
        return tap("logits", ly.linear(x, params["Wout"], params["bout"])), {"stages": running}


def flops(batch: int, vocab_size: int, *, n_embd: int, n_hidden: int, block_size: int) -> int:
    """FLOPs of one training step's matmuls (3 x forward): each stage halves T and doubles the
    fan-in, ``2·B·(T/2)·(2·C_in)·H``; then ``2·B·H·V`` for the output layer."""
    fwd, T, c_in = 0, block_size, n_embd
    while T > 1:
        T //= FACTOR
        fwd += 2 * batch * T * (FACTOR * c_in) * n_hidden
        c_in = n_hidden
    fwd += 2 * batch * n_hidden * vocab_size
    return 3 * fwd


MODEL = Model(
    name="wavenet",
    sizes={"n_embd": 24, "n_hidden": 128, "block_size": 8},
    defaults={"lr_decay_step": 150_000},
    help={
        "": "makemore part 5's WaveNet: three flatten(2), linear, batch norm, tanh stages "
        "(n_embd 24, n_hidden 128, block 8, lr decay at 150,000; 76,579 parameters)"
    },
    init=init,
    forward=forward,
    flops=flops,
    min_batch=2,
    check_sizes=lambda sizes: n_stages(sizes["block_size"]),
    probes=lambda name: name.endswith(".h"),
)
