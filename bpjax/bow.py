"""makemore's bag of words: each position averages the embeddings before it, then an MLP.

    x = wte[X] + wpe[t]                              [T, B, E]  (time-major: see below)
    x = x + causal_mean(x, 0)                        y_t = mean(x_0..x_t)   (makemore's CausalBoW)
    x = x + tanh(x @ W_fc + b_fc) @ W_proj + b_proj  (n_embd2 hidden)
    logits = x @ W_lm + b_lm                         [T, B, V]   (logits_eval: [N, T, V])
    loss = cross_entropy_masked(logits, Y.T)

makemore's sizes (n_embd 64, n_embd2 64, T 16): 12,827 parameters with names.txt; PyTorch's
default init (embeddings N(0, 1), Linears U(±1/√fan_in)).

The activations are time-major ([T, B, ...]: ``X.T`` is embedded): the causal average is then one
[T, T] @ [T, B·E] GEMM, with no transposes of the residual stream around it (+5-7% steps/s on one
core); every other layer works on rows, in any order. ``logits_eval`` returns [N, T, V] as usual.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import layers as L
from . import layers_seq as S
from .check import NO_TAP
from .models import MAKEMORE_TRAINING, Model, torch_linear


def init(key, *, vocab_size: int, n_embd: int = 64, n_embd2: int = 64, block_size: int, dtype=jnp.float32):
    """``(params, {})``: ``wte`` [V, E], ``wpe`` [T, E], ``W_fc`` [E, E2], ``W_proj`` [E2, E], ``W_lm`` [E, V]
    and their biases."""
    kE, kP, kF, kJ, kL = jax.random.split(key, 5)
    p = {"wte": jax.random.normal(kE, (vocab_size, n_embd), dtype),
         "wpe": jax.random.normal(kP, (block_size, n_embd), dtype)}
    p["W_fc"], p["b_fc"] = torch_linear(kF, n_embd, n_embd2, dtype)
    p["W_proj"], p["b_proj"] = torch_linear(kJ, n_embd2, n_embd, dtype)
    p["W_lm"], p["b_lm"] = torch_linear(kL, n_embd, vocab_size, dtype)
    return p, {}


def _logits(params, X, ly: L.Layers, mean, tap=NO_TAP):
    """``X`` [B, T] -> time-major logits [T, B, V]."""
    p = params
    with jax.named_scope("embedding"):
        tok = tap("tok", ly.embedding(p["wte"], X.T))  # [T, B, E]
        pos = tap("pos", ly.embedding(p["wpe"], jnp.arange(X.shape[1])))  # [T, E]
        x = tap("x0", tok + pos[:, None])
    with jax.named_scope("bow"):
        x = tap("x1", x + tap("bow", mean(x, 0)))
    with jax.named_scope("mlp"):
        h_pre = tap("h_pre", ly.linear(x, p["W_fc"], p["b_fc"]))
        h = tap("h", ly.tanh(h_pre))
        x = tap("x2", x + tap("proj", ly.linear(h, p["W_proj"], p["b_proj"])))
    with jax.named_scope("lm_head"):
        return tap("logits", ly.linear(x, p["W_lm"], p["b_lm"]))


def _loss(params, state, X, Y, ly, mean, tap=NO_TAP):
    return ly.cross_entropy_masked(_logits(params, X, ly, mean, tap), Y.T), state


def loss(params, state, X, Y):
    """``X``, ``Y`` [B, T] int (``Y`` -1 where masked) -> ``(scalar, state)``, plain ``jnp``."""
    return _loss(params, state, X, Y, L.PLAIN, S.causal_mean_plain)


def loss_manual(params, state, X, Y):
    """:func:`loss` from the custom_vjp layers."""
    return _loss(params, state, X, Y, L.MANUAL, S.causal_mean)


def loss_tapped(params, state, X, Y, tap, manual: bool):
    """:func:`loss_manual` (``manual``) or :func:`loss`, every intermediate through ``tap``."""
    return _loss(params, state, X, Y, *((L.MANUAL, S.causal_mean) if manual else (L.PLAIN, S.causal_mean_plain)),
                 tap)


def logits_eval(params, state, X):
    """``X`` [N, T] -> logits [N, T, V]."""
    return jnp.swapaxes(_logits(params, X, L.PLAIN, S.causal_mean_plain), 0, 1)


def check_tables(params, state, X, Y) -> list:
    """Each custom_vjp layer on this batch's activations against jax.grad of its plain twin, then the model."""
    from .check import model_table, tap_grads, vjp_table

    _, a, d, _ = tap_grads(lambda tap: _loss(params, state, X, Y, L.PLAIN, S.causal_mean_plain, tap)[0])
    p = params
    layers = vjp_table("bow layers: each custom_vjp against jax.grad of its plain twin", [
        (L.cross_entropy_masked, L.cross_entropy_masked_plain, (a["logits"], Y.T), ("logits", "Y"), None),
        (L.linear, L.linear_plain, (a["x2"], p["W_lm"], p["b_lm"]), ("x2", "W_lm", "b_lm"), d["logits"]),
        (L.linear, L.linear_plain, (a["h"], p["W_proj"], p["b_proj"]), ("h", "W_proj", "b_proj"), d["proj"]),
        (L.tanh, L.tanh_plain, (a["h_pre"],), ("h_pre",), d["h"]),
        (L.linear, L.linear_plain, (a["x1"], p["W_fc"], p["b_fc"]), ("x1", "W_fc", "b_fc"), d["h_pre"]),
        (lambda x: S.causal_mean(x, 0), lambda x: S.causal_mean_plain(x, 0), (a["x0"],), ("x0",), d["bow"]),
        (L.embedding, L.embedding_plain, (p["wpe"], jnp.arange(X.shape[1])), ("wpe", "pos"), d["pos"]),
        (L.embedding, L.embedding_plain, (p["wte"], X.T), ("wte", "X"), d["tok"]),
    ], dtype=str(a["logits"].dtype))
    model = model_table(lambda p: loss_manual(p, state, X, Y)[0], lambda p: loss(p, state, X, Y)[0], params,
                        title="whole bow: grad(loss_manual) vs grad(loss)")
    return [layers, model]


def flops(batch: int, vocab_size: int, *, n_embd: int, n_embd2: int, block_size: int) -> int:
    """One step's matmul FLOPs, 3 x forward: the average ``2·B·T·T·E``, the MLP ``2 · 2·B·T·E·E2``, the head."""
    B, T, E = batch, block_size, n_embd
    return 3 * (2 * B * T * T * E + 4 * B * T * E * n_embd2 + 2 * B * T * E * vocab_size)


MODEL = Model(
    name="bow",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={"": "makemore's bag of words: a causal average of the embeddings, then an MLP "
              "(12,827 parameters; AdamW 5e-4)"},
    init=init, loss=loss, loss_manual=loss_manual, logits_eval=logits_eval, check_tables=check_tables,
    flops=flops, data="sequences", loss_tapped=loss_tapped, probes=lambda name: name == "h",
    cpu_cores=1,
)
