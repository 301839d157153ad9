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
from .errors import ConfigError

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


def _loss(params, state, X, Y, ly: L.Layers):
    with jax.named_scope("embedding"):
        x = ly.embedding(params["C"], X)
    new_stages = []
    for s, (p, st) in enumerate(zip(params["stages"], state["stages"])):
        with jax.named_scope(f"stage{s}"):
            x = ly.flatten_consecutive(x, FACTOR)
            x = ly.linear(x, p["W"], None)
            mean, var = batch_stats(x)
            new_stages.append({"running_mean": (1 - MOMENTUM) * st["running_mean"] + MOMENTUM * mean,
                               "running_var": (1 - MOMENTUM) * st["running_var"] + MOMENTUM * var})
            x = ly.batchnorm(x, p["bngain"], p["bnbias"])
            x = ly.tanh(x)
    with jax.named_scope("output"):
        logits = ly.linear(x, params["Wout"], params["bout"])
        loss = ly.cross_entropy(logits, Y)
    return loss, {"stages": new_stages}


def loss(params, state, X, Y):
    """Training-mode loss in plain ``jnp``: ``X`` [B, block_size] int, ``Y`` [B] -> (scalar, new_state)."""
    return _loss(params, state, X, Y, L.PLAIN)


def loss_manual(params, state, X, Y):
    """:func:`loss` from the custom_vjp layers: ``jax.grad`` runs every hand-written backward."""
    return _loss(params, state, X, Y, L.MANUAL)


def logits_eval(params, state, X):
    """Eval mode: batch norm with the running statistics. ``X`` [N, block_size] -> [N, V]."""
    x = params["C"][X]
    for p, st in zip(params["stages"], state["stages"]):
        x = L.flatten_consecutive_plain(x, FACTOR) @ p["W"]
        x = jnp.tanh(p["bngain"] * (x - st["running_mean"]) * (st["running_var"] + L.BN_EPS) ** -0.5
                     + p["bnbias"])
    return x @ params["Wout"] + params["bout"]


def loss_eval(params, state, X, Y):
    return L.cross_entropy_plain(logits_eval(params, state, X), Y)


def layer_tables(params, state, X, Y) -> list:
    """``bpjax check --model wavenet``: every custom_vjp layer on this batch's activations, pulled
    back with the oracle's upstream gradient, against its plain twin; then the whole model."""
    from .check import Table, check_vjp, compare

    # The activations and, through zero taps, the oracle's gradient at every layer boundary.
    def forward(params, taps):
        acts = {}
        x = params["C"][X] + taps["emb"]
        acts["emb"] = x
        for s, p in enumerate(params["stages"]):
            acts[f"s{s}.in"] = x
            x = L.flatten_consecutive_plain(x, FACTOR) + taps[f"s{s}.flat"]
            acts[f"s{s}.flat"] = x
            x = x @ p["W"] + taps[f"s{s}.lin"]
            acts[f"s{s}.lin"] = x
            x = L.batchnorm_plain(x, p["bngain"], p["bnbias"]) + taps[f"s{s}.bn"]
            acts[f"s{s}.bn"] = x
            x = jnp.tanh(x) + taps[f"s{s}.h"]
            acts[f"s{s}.h"] = x
        logits = x @ params["Wout"] + params["bout"] + taps["logits"]
        acts["logits"] = logits
        return L.cross_entropy_plain(logits, Y), acts

    shapes = jax.eval_shape(lambda: forward(params, _ZeroTaps())[1])
    zero = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items() if k[-3:] != ".in"}
    d = jax.jit(jax.grad(lambda t: forward(params, t)[0]))(zero)
    acts = jax.jit(lambda t: forward(params, t)[1])(zero)
    rows = []

    def add(f_man, f_ref, args, names, cot, prefix):
        t = check_vjp(f_man, f_ref, args, argnames=[f"{prefix}{n}" for n in names], cotangent=cot, table="layers")
        rows.extend(t.rows)

    add(L.cross_entropy, L.cross_entropy_plain, (acts["logits"], Y), ("logits", "Y"), None, "")
    last = len(params["stages"]) - 1
    add(L.linear, L.linear_plain, (acts[f"s{last}.h"], params["Wout"], params["bout"]), ("h", "Wout", "bout"),
        d["logits"], "output.")
    for s in reversed(range(len(params["stages"]))):
        p = params["stages"][s]
        add(L.tanh, L.tanh_plain, (acts[f"s{s}.bn"],), ("bn_out",), d[f"s{s}.h"], f"stage{s}.")
        add(L.batchnorm, L.batchnorm_plain, (acts[f"s{s}.lin"], p["bngain"], p["bnbias"]),
            ("lin_out", "bngain", "bnbias"), d[f"s{s}.bn"], f"stage{s}.")
        add(lambda x, W: L.linear(x, W, None), lambda x, W: L.linear_plain(x, W, None),
            (acts[f"s{s}.flat"], p["W"]), ("flat_out", "W"), d[f"s{s}.lin"], f"stage{s}.")
        add(lambda x: L.flatten_consecutive(x, FACTOR), lambda x: L.flatten_consecutive_plain(x, FACTOR),
            (acts[f"s{s}.in"],), ("flat_in",), d[f"s{s}.flat"], f"stage{s}.")
    add(L.embedding, L.embedding_plain, (params["C"], X), ("C", "X"), d["emb"], "")
    layers = Table("WaveNet layers: each custom_vjp against jax.grad of its plain twin", rows,
                   str(jnp.asarray(acts["logits"]).dtype))

    g_man = jax.jit(jax.grad(lambda p: loss_manual(p, state, X, Y)[0]))(params)
    g_ref = jax.jit(jax.grad(lambda p: loss(p, state, X, Y)[0]))(params)
    flat = lambda g: {_name(path): v for path, v in jax.tree_util.tree_flatten_with_path(g)[0]}
    model = compare(flat(g_man), flat(g_ref), table="model",
                    title="whole WaveNet: grad(loss_manual) vs grad(loss)")
    return [layers, model]


class _ZeroTaps(dict):
    """Taps that are all zero: used once to learn the activations' shapes."""

    def __missing__(self, key):
        return 0.0


def _name(path) -> str:
    """``stages/0/W`` from a pytree path."""
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "idx", k))))
    return "/".join(parts)
