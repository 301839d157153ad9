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
core); every other layer works on rows, in any order (``Model.time_major``: the loss pairs the
logits with ``Y.T`` and ``logits_eval`` returns [N, T, V] as usual).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from . import MAKEMORE_TRAINING, Model
from .initializers import torch_linear
from .statedict import linear_keys


def init(key, *, vocab_size: int, n_embd: int = 64, n_embd2: int = 64, block_size: int, dtype=jnp.float32):
    """``(params, {})``: ``wte`` [V, E], ``wpe`` [T, E], ``W_fc`` [E, E2], ``W_proj`` [E2, E], ``W_lm`` [E, V]
    and their biases."""
    kE, kP, kF, kJ, kL = jax.random.split(key, 5)
    p = {
        "wte": jax.random.normal(kE, (vocab_size, n_embd), dtype),
        "wpe": jax.random.normal(kP, (block_size, n_embd), dtype),
    }
    p["W_fc"], p["b_fc"] = torch_linear(kF, n_embd, n_embd2, dtype)
    p["W_proj"], p["b_proj"] = torch_linear(kJ, n_embd2, n_embd, dtype)
    p["W_lm"], p["b_lm"] = torch_linear(kL, n_embd, vocab_size, dtype)
    return p, {}


def forward(ly, params, state, X, tap=NO_TAP):
    """``X`` [B, T] -> ``(time-major logits [T, B, V], state)``."""
    p = params
    with jax.named_scope("embedding"):
        tok = tap("tok", ly.embedding(p["wte"], X.T))  # [T, B, E]
        pos = tap("pos", ly.embedding(p["wpe"], jnp.arange(X.shape[1])))  # [T, E]
        x = tap("x0", tok + pos[:, None])
    with jax.named_scope("bow"):
        x = tap("x1", x + tap("bow", ly.causal_mean(x, 0)))
    with jax.named_scope("mlp"):
        h_pre = tap("h_pre", ly.linear(x, p["W_fc"], p["b_fc"]))
        h = tap("h", ly.tanh(h_pre))
        x = tap("x2", x + tap("proj", ly.linear(h, p["W_proj"], p["b_proj"])))
    with jax.named_scope("lm_head"):
        return tap("logits", ly.linear(x, p["W_lm"], p["b_lm"])), state


def flops(batch: int, vocab_size: int, *, n_embd: int, n_embd2: int, block_size: int) -> int:
    """One step's matmul FLOPs, 3 x forward: the average ``2·B·T·T·E``, the MLP ``2 · 2·B·T·E·E2``, the head."""
    B, T, E = batch, block_size, n_embd
    return 3 * (2 * B * T * T * E + 4 * B * T * E * n_embd2 + 2 * B * T * E * vocab_size)


def makemore_keys(n_layer) -> list:
    """makemore.py's state-dict entries (see :mod:`bpjax.models.statedict`)."""
    return [
        ("wte.weight", "wte", ""),
        ("wpe.weight", "wpe", ""),
        *linear_keys("context_block.mlp.c_fc", "W_fc", "b_fc"),
        *linear_keys("context_block.mlp.c_proj", "W_proj", "b_proj"),
        *linear_keys("lm_head", "W_lm", "b_lm"),
    ]


MODEL = Model(
    name="bow",
    sizes={"n_embd": 64, "n_embd2": 64, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={
        "": "makemore's bag of words: a causal average of the embeddings, then an MLP (12,827 parameters; AdamW 5e-4)"
    },
    init=init,
    forward=forward,
    time_major=True,
    flops=flops,
    data="sequences",
    probes=lambda name: name == "h",
    cpu_cores=1,
    state_dicts={"makemore": makemore_keys},
)
