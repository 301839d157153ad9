"""makemore's Transformer (GPT-2's block), every layer's backward by hand.

    x = wte[X] + wpe[t]                                        [B, T, C]
    n_layer x:  x = x + attention(layernorm(x))                causal self-attention, n_head heads
                x = x + gelu(layernorm(x) @ W_fc + b_fc) @ W_mp + b_mp      (4C hidden)
    logits = layernorm(x) @ W_lm                               [B, T, V]   (no bias)
    loss = cross_entropy_masked(logits, Y)

makemore's sizes (n_layer 4, n_embd 64, n_head 4, T 16): 204,544 parameters with names.txt.
PyTorch's default init: embeddings N(0, 1), Linears U(±1/√fan_in), layer norm γ = 1, β = 0 (no
GPT-2-style 0.02 init: makemore does not apply one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from ..errors import ConfigError
from . import MAKEMORE_TRAINING, Model
from .initializers import torch_linear
from .statedict import linear_keys


def init(
    key, *, vocab_size: int, n_layer: int = 4, n_embd: int = 64, n_head: int = 4, block_size: int, dtype=jnp.float32
):
    """``(params, {})``: ``wte`` [V, C], ``wpe`` [T, C], ``blocks`` (one dict per layer), ``ln_f``, ``W_lm`` [C, V]."""
    C = n_embd
    keys = jax.random.split(key, n_layer + 3)

    def ln():
        return jnp.ones((C,), dtype), jnp.zeros((C,), dtype)

    blocks = []
    for kb in keys[3:]:
        k1, k2, k3, k4 = jax.random.split(kb, 4)
        b = {}
        b["ln1_g"], b["ln1_b"] = ln()
        W, bias = torch_linear(k1, C, 3 * C, dtype)  # makemore's c_attn; q, k, v per head:
        b["W_attn"], b["b_attn"] = W.reshape(C, 3, n_head, C // n_head), bias.reshape(3, n_head, C // n_head)
        b["W_proj"], b["b_proj"] = torch_linear(k2, C, C, dtype)
        b["ln2_g"], b["ln2_b"] = ln()
        b["W_fc"], b["b_fc"] = torch_linear(k3, C, 4 * C, dtype)
        b["W_mp"], b["b_mp"] = torch_linear(k4, 4 * C, C, dtype)
        blocks.append(b)
    lnf_g, lnf_b = ln()
    return {
        "wte": jax.random.normal(keys[0], (vocab_size, C), dtype),
        "wpe": jax.random.normal(keys[1], (block_size, C), dtype),
        "blocks": blocks,
        "lnf_g": lnf_g,
        "lnf_b": lnf_b,
        "W_lm": torch_linear(keys[2], C, vocab_size, dtype)[0],
    }, {}


def check_sizes(sizes):
    if sizes["n_embd"] % sizes["n_head"]:
        raise ConfigError(f"n-embd ({sizes['n_embd']}) must divide by n-head ({sizes['n_head']})")


def forward(ly, params, state, X, tap=NO_TAP):
    """``X`` [B, T] int -> ``(logits [B, T, V], state)``."""
    p = params
    with jax.named_scope("embedding"):
        tok = tap("tok", ly.embedding(p["wte"], X))
        pos = tap("pos", ly.embedding(p["wpe"], jnp.arange(X.shape[1])))
        x = tap("x", tok + pos)
    for i, b in enumerate(p["blocks"]):
        with jax.named_scope(f"block{i}"):
            a_in = tap(f"b{i}.ln1", ly.layernorm(x, b["ln1_g"], b["ln1_b"]))
            attn = ly.attention(a_in, b["W_attn"], b["b_attn"], b["W_proj"], b["b_proj"])
            x = tap(f"b{i}.x1", x + tap(f"b{i}.attn", attn))
            m_in = tap(f"b{i}.ln2", ly.layernorm(x, b["ln2_g"], b["ln2_b"]))
            h_pre = tap(f"b{i}.fc", ly.linear(m_in, b["W_fc"], b["b_fc"]))
            h = tap(f"b{i}.gelu", ly.gelu(h_pre))
            x = tap(f"b{i}.x2", x + tap(f"b{i}.mp", ly.linear(h, b["W_mp"], b["b_mp"])))
    with jax.named_scope("lm_head"):
        xf = tap("lnf", ly.layernorm(x, p["lnf_g"], p["lnf_b"]))
        return tap("logits", ly.linear(xf, p["W_lm"], None)), state


def flops(batch: int, vocab_size: int, *, n_layer: int, n_embd: int, n_head: int, block_size: int) -> int:
    """One step's matmul FLOPs, 3 x forward: per layer ``2·BT·C·3C`` (qkv) + ``2·2·B·T·T·C`` (scores
    and weighted sum) + ``2·BT·C·C`` (projection) + ``2·2·BT·C·4C`` (MLP); then ``2·BT·C·V``."""
    BT, C, T = batch * block_size, n_embd, block_size
    per_layer = 2 * BT * C * 3 * C + 4 * batch * T * T * C + 2 * BT * C * C + 16 * BT * C * C
    return 3 * (n_layer * per_layer + 2 * BT * C * vocab_size)


def makemore_keys(n_layer: int) -> list:
    """makemore.py's state-dict entries (see :mod:`bpjax.models.statedict`)."""
    out = [("transformer.wte.weight", "wte", ""), ("transformer.wpe.weight", "wpe", "")]
    for i in range(n_layer):
        h, b = f"transformer.h.{i}", f"blocks/{i}"
        out += [
            (f"{h}.ln_1.weight", f"{b}/ln1_g", ""),
            (f"{h}.ln_1.bias", f"{b}/ln1_b", ""),
            (f"{h}.attn.c_attn.weight", f"{b}/W_attn", "attn"),
            (f"{h}.attn.c_attn.bias", f"{b}/b_attn", "attn_b"),
            *linear_keys(f"{h}.attn.c_proj", f"{b}/W_proj", f"{b}/b_proj"),
            (f"{h}.ln_2.weight", f"{b}/ln2_g", ""),
            (f"{h}.ln_2.bias", f"{b}/ln2_b", ""),
            *linear_keys(f"{h}.mlp.c_fc", f"{b}/W_fc", f"{b}/b_fc"),
            *linear_keys(f"{h}.mlp.c_proj", f"{b}/W_mp", f"{b}/b_mp"),
        ]
    return out + [
        ("transformer.ln_f.weight", "lnf_g", ""),
        ("transformer.ln_f.bias", "lnf_b", ""),
        ("lm_head.weight", "W_lm", "T"),
    ]


MODEL = Model(
    name="transformer",
    sizes={"n_layer": 4, "n_embd": 64, "n_head": 4, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={
        "": "makemore's GPT-2-style Transformer: layer norm, causal self-attention, GELU MLP, every "
        "backward by hand (204,544 parameters; AdamW 5e-4)",
        "n_layer": "Transformer blocks",
        "n_head": "attention heads (n-embd must divide by it)",
    },
    init=init,
    forward=forward,
    flops=flops,
    data="sequences",
    check_sizes=check_sizes,
    probes=lambda name: name.endswith(".gelu"),
    state_dicts={"makemore": makemore_keys},
)
