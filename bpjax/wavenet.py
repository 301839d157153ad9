"""makemore part 5: the hierarchical "WaveNet", built from the same custom_vjp layers.

    emb = C[X]                                   [B, 8, E]
    3 x:  x = flatten_consecutive(x, 2)          [B, T, C] -> [B, T/2, 2C]   (T/2 == 1: [B, 2C])
          x = x @ W                              no bias: batch norm removes it
          x = batchnorm(x)                       statistics over every axis but the last (B·T rows)
          x = tanh(x)
    logits = x @ Wout + bout                     [B, V]   (Wout scaled by 0.1 at init)

At the lecture's sizes (n_embd 24, n_hidden 128, block_size 8) this has 76,579 parameters.
Batch norm keeps running mean and (Bessel) variance with momentum 0.1 as explicit functional state:
``loss(params, state, X, Y) -> (loss, new_state)``; eval mode (:func:`logits_eval`) uses them.

* :func:`loss` — plain ``jnp``, the oracle's forward;
* :func:`loss_manual` — the same from ``custom_vjp`` layers (MLP's layers where the math is the
  same, plus :func:`bpjax.layers.flatten_consecutive`). Both work with
  ``jax.value_and_grad(..., has_aux=True)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import layers as L
from .check import NO_TAP
from .errors import ConfigError
from .models import Model

MOMENTUM = 0.1
FACTOR = 2  # FlattenConsecutive(2) in every stage


def n_stages(block_size: int) -> int:
    """Stages of FlattenConsecutive(2) that reduce ``block_size`` to 1; an error if none do."""
    if block_size < 2 or block_size & (block_size - 1):
        raise ConfigError(f"the WaveNet halves the context in every stage, so block_size must be a "
                          f"power of 2 (>= 2), got {block_size}")
    return int(math.log2(block_size))


def init_params(key, *, vocab_size: int = 27, n_embd: int = 24, n_hidden: int = 128,
                block_size: int = 8, dtype=jnp.float32) -> dict:
    """The lecture's init: C ~ N(0, 1); each W ~ N(0, 1)/sqrt(fan_in) (no bias before batch norm);
    bngain 1, bnbias 0; the output layer ``Wout`` scaled by 0.1 and ``bout`` 0.

    Returns ``{"C": [V, E], "stages": [{"W": [2·C_in, H], "bngain": [H], "bnbias": [H]}, ...],
    "Wout": [H, V], "bout": [V]}``.
    """
    S = n_stages(block_size)
    keys = jax.random.split(key, S + 2)
    stages, fan_in = [], FACTOR * n_embd
    for s in range(S):
        stages.append({"W": jax.random.normal(keys[1 + s], (fan_in, n_hidden), dtype) / fan_in**0.5,
                       "bngain": jnp.ones((n_hidden,), dtype), "bnbias": jnp.zeros((n_hidden,), dtype)})
        fan_in = FACTOR * n_hidden
    return {
        "C": jax.random.normal(keys[0], (vocab_size, n_embd), dtype),
        "stages": stages,
        "Wout": jax.random.normal(keys[-1], (n_hidden, vocab_size), dtype) / n_hidden**0.5 * 0.1,
        "bout": jnp.zeros((vocab_size,), dtype),
    }


def init_state(params) -> dict:
    """Running statistics: mean 0 and variance 1 per stage, as ``nn.BatchNorm1d`` starts."""
    return {"stages": [{"running_mean": jnp.zeros_like(s["bngain"]), "running_var": jnp.ones_like(s["bngain"])}
                       for s in params["stages"]]}


def batch_stats(x):
    """Mean and Bessel variance of ``x`` [..., H] over every axis but the last (no gradient)."""
    x = jax.lax.stop_gradient(x)
    axes = tuple(range(x.ndim - 1))
    return x.mean(axes), x.var(axes, ddof=1)


def _logits(params, X, ly: L.Layers, norm, tap=NO_TAP):
    """The forward, written once: ``ly`` the layers (plain or manual), ``norm(stage, x, bngain,
    bnbias)`` the batch norm of each stage (training or eval mode), ``tap`` names the intermediates."""
    with jax.named_scope("embedding"):
        x = tap("emb", ly.embedding(params["C"], X))
    for s, p in enumerate(params["stages"]):
        with jax.named_scope(f"stage{s}"):
            x = tap(f"stage{s}.flat", ly.flatten_consecutive(x, FACTOR))
            x = tap(f"stage{s}.lin", ly.linear(x, p["W"], None))
            x = tap(f"stage{s}.bn", norm(s, x, p["bngain"], p["bnbias"]))
            x = tap(f"stage{s}.h", ly.tanh(x))
    with jax.named_scope("output"):
        return tap("logits", ly.linear(x, params["Wout"], params["bout"]))


def _loss(params, state, X, Y, ly: L.Layers, tap=NO_TAP):
    """Training mode: batch statistics, and the running ones updated with momentum 0.1."""
    new_stages = []

    def norm(s, x, bngain, bnbias):
        st = state["stages"][s]
        mean, var = batch_stats(x)
        new_stages.append({"running_mean": (1 - MOMENTUM) * st["running_mean"] + MOMENTUM * mean,
                           "running_var": (1 - MOMENTUM) * st["running_var"] + MOMENTUM * var})
        return ly.batchnorm(x, bngain, bnbias)

    logits = _logits(params, X, ly, norm, tap)
    with jax.named_scope("output"):
        return ly.cross_entropy(logits, Y), {"stages": new_stages}


def loss(params, state, X, Y):
    """Training-mode loss in plain ``jnp``: ``X`` [B, block_size] int, ``Y`` [B] -> (scalar, new_state)."""
    return _loss(params, state, X, Y, L.PLAIN)


def loss_manual(params, state, X, Y):
    """:func:`loss` from the custom_vjp layers: ``jax.grad`` runs every hand-written backward."""
    return _loss(params, state, X, Y, L.MANUAL)


def loss_tapped(params, state, X, Y, tap, manual: bool):
    """:func:`loss_manual` (``manual``) or :func:`loss`, every intermediate through ``tap``."""
    return _loss(params, state, X, Y, L.MANUAL if manual else L.PLAIN, tap)


def logits_eval(params, state, X):
    """Eval mode: batch norm with the running statistics. ``X`` [N, block_size] -> [N, V]."""
    def norm(s, x, bngain, bnbias):
        st = state["stages"][s]
        return L.batchnorm_eval(x, bngain, bnbias, st["running_mean"], st["running_var"])
    return _logits(params, X, L.PLAIN, norm)


def loss_eval(params, state, X, Y):
    return L.cross_entropy_plain(logits_eval(params, state, X), Y)


def layer_tables(params, state, X, Y) -> list:
    """``bpjax check --model wavenet``: every custom_vjp layer on this batch's activations, pulled
    back with the oracle's upstream gradient, against its plain twin; then the whole model."""
    from .check import model_table, tap_grads, vjp_table

    # The activations and, through zero taps, the oracle's gradient at every layer boundary.
    _, acts, d, _ = tap_grads(lambda tap: _loss(params, state, X, Y, L.PLAIN, tap)[0])
    S = len(params["stages"])
    checks = [(L.cross_entropy, L.cross_entropy_plain, (acts["logits"], Y), ("logits", "Y"), None),
              (L.linear, L.linear_plain, (acts[f"stage{S - 1}.h"], params["Wout"], params["bout"]),
               ("output.h", "output.Wout", "output.bout"), d["logits"])]
    for s in reversed(range(S)):
        p, pre = params["stages"][s], f"stage{s}."
        flat_in = acts[f"stage{s - 1}.h"] if s else acts["emb"]
        checks += [
            (L.tanh, L.tanh_plain, (acts[pre + "bn"],), (pre + "bn_out",), d[pre + "h"]),
            (L.batchnorm, L.batchnorm_plain, (acts[pre + "lin"], p["bngain"], p["bnbias"]),
             (pre + "lin_out", pre + "bngain", pre + "bnbias"), d[pre + "bn"]),
            (lambda x, W: L.linear(x, W, None), lambda x, W: L.linear_plain(x, W, None),
             (acts[pre + "flat"], p["W"]), (pre + "flat_out", pre + "W"), d[pre + "lin"]),
            (lambda x: L.flatten_consecutive(x, FACTOR), lambda x: L.flatten_consecutive_plain(x, FACTOR),
             (flat_in,), (pre + "flat_in",), d[pre + "flat"]),
        ]
    checks.append((L.embedding, L.embedding_plain, (params["C"], X), ("C", "X"), d["emb"]))
    layers = vjp_table("WaveNet layers: each custom_vjp against jax.grad of its plain twin", checks,
                       dtype=str(jnp.asarray(acts["logits"]).dtype))
    model = model_table(lambda p: loss_manual(p, state, X, Y)[0], lambda p: loss(p, state, X, Y)[0], params,
                        title="whole WaveNet: grad(loss_manual) vs grad(loss)")
    return [layers, model]


# --------------------------------------------------------------------------------------------
# The model, as bpjax's training, checks and benchmark see it
# --------------------------------------------------------------------------------------------
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


def init(key, *, vocab_size: int, dtype=jnp.float32, **sizes):
    """``(params, state)``: :func:`init_params` and its :func:`init_state`."""
    params = init_params(key, vocab_size=vocab_size, dtype=dtype, **sizes)
    return params, init_state(params)


MODEL = Model(
    name="wavenet",
    sizes={"n_embd": 24, "n_hidden": 128, "block_size": 8},
    defaults={"lr_decay_step": 150_000},
    help={"": "makemore part 5's WaveNet: three flatten(2), linear, batch norm, tanh stages "
              "(n_embd 24, n_hidden 128, block 8, lr decay at 150,000; 76,579 parameters)"},
    init=init,
    loss=loss,
    loss_manual=loss_manual,
    eval_stats=lambda p, s, X_train: s,  # the running statistics, as the lecture evaluates
    logits_eval=logits_eval,
    check_tables=layer_tables,
    flops=flops,
    min_batch=2,
    check_sizes=lambda sizes: n_stages(sizes["block_size"]),
    loss_tapped=loss_tapped,
    probes=lambda name: name.endswith(".h"),
)
