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

from . import layers as L
from . import layers_seq as S
from .check import NO_TAP
from .errors import ConfigError
from .models import MAKEMORE_TRAINING, Model, torch_linear

PLAIN_SEQ = (S.layernorm_plain, S.gelu_plain, S.attention_plain)
MANUAL_SEQ = (S.layernorm, S.gelu, S.attention)


def init(key, *, vocab_size: int, n_layer: int = 4, n_embd: int = 64, n_head: int = 4, block_size: int,
         dtype=jnp.float32):
    """``(params, {})``: ``wte`` [V, C], ``wpe`` [T, C], ``blocks`` (one dict per layer), ``ln_f``, ``W_lm`` [C, V]."""
    C = n_embd
    keys = jax.random.split(key, n_layer + 3)
    ln = lambda: (jnp.ones((C,), dtype), jnp.zeros((C,), dtype))  # noqa: E731
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
    return {"wte": jax.random.normal(keys[0], (vocab_size, C), dtype),
            "wpe": jax.random.normal(keys[1], (block_size, C), dtype), "blocks": blocks,
            "lnf_g": lnf_g, "lnf_b": lnf_b, "W_lm": torch_linear(keys[2], C, vocab_size, dtype)[0]}, {}


def check_sizes(sizes):
    if sizes["n_embd"] % sizes["n_head"]:
        raise ConfigError(f"n-embd ({sizes['n_embd']}) must divide by n-head ({sizes['n_head']})")


def _logits(params, X, ly: L.Layers, seq, tap=NO_TAP):
    layernorm, gelu, attention = seq
    p = params
    with jax.named_scope("embedding"):
        tok = tap("tok", ly.embedding(p["wte"], X))
        pos = tap("pos", ly.embedding(p["wpe"], jnp.arange(X.shape[1])))
        x = tap("x", tok + pos)
    for i, b in enumerate(p["blocks"]):
        with jax.named_scope(f"block{i}"):
            a_in = tap(f"b{i}.ln1", layernorm(x, b["ln1_g"], b["ln1_b"]))
            attn = attention(a_in, b["W_attn"], b["b_attn"], b["W_proj"], b["b_proj"])
            x = tap(f"b{i}.x1", x + tap(f"b{i}.attn", attn))
            m_in = tap(f"b{i}.ln2", layernorm(x, b["ln2_g"], b["ln2_b"]))
            h_pre = tap(f"b{i}.fc", ly.linear(m_in, b["W_fc"], b["b_fc"]))
            h = tap(f"b{i}.gelu", gelu(h_pre))
            x = tap(f"b{i}.x2", x + tap(f"b{i}.mp", ly.linear(h, b["W_mp"], b["b_mp"])))
    with jax.named_scope("lm_head"):
        xf = tap("lnf", layernorm(x, p["lnf_g"], p["lnf_b"]))
        return tap("logits", ly.linear(xf, p["W_lm"], None))


def _loss(params, state, X, Y, ly, seq, tap=NO_TAP):
    return ly.cross_entropy_masked(_logits(params, X, ly, seq, tap), Y), state

def loss(params, state, X, Y):
    """``X``, ``Y`` [B, T] int (``Y`` -1 where masked) -> ``(scalar, state)``, plain ``jnp``."""
    return _loss(params, state, X, Y, L.PLAIN, PLAIN_SEQ)

def loss_manual(params, state, X, Y):
    """:func:`loss` from the custom_vjp layers: every backward hand-written."""
    return _loss(params, state, X, Y, L.MANUAL, MANUAL_SEQ)

def loss_tapped(params, state, X, Y, tap, manual: bool):
    """:func:`loss_manual` (``manual``) or :func:`loss`, every intermediate through ``tap``."""
    return _loss(params, state, X, Y, *((L.MANUAL, MANUAL_SEQ) if manual else (L.PLAIN, PLAIN_SEQ)), tap)

def logits_eval(params, state, X):
    return _logits(params, X, L.PLAIN, PLAIN_SEQ)

def check_tables(params, state, X, Y) -> list:
    from .check import model_table, tap_grads, vjp_table

    _, a, d, _ = tap_grads(lambda tap: _loss(params, state, X, Y, L.PLAIN, PLAIN_SEQ, tap)[0])
    p = params
    checks = [(L.cross_entropy_masked, L.cross_entropy_masked_plain, (a["logits"], Y), ("logits", "Y"), None),
              (lambda x, W: L.linear(x, W, None), lambda x, W: L.linear_plain(x, W, None), (a["lnf"], p["W_lm"]),
               ("lnf", "W_lm"), d["logits"])]
    last = f"b{len(p['blocks']) - 1}.x2" if p["blocks"] else "x"
    checks.append((S.layernorm, S.layernorm_plain, (a[last], p["lnf_g"], p["lnf_b"]),
                   ("ln_f.x", "lnf_g", "lnf_b"), d["lnf"]))
    for i in reversed(range(len(p["blocks"]))):
        b, pre = p["blocks"][i], f"b{i}."
        checks += [
            (L.linear, L.linear_plain, (a[pre + "gelu"], b["W_mp"], b["b_mp"]),
             (pre + "gelu", pre + "W_mp", pre + "b_mp"), d[pre + "mp"]),
            (S.gelu, S.gelu_plain, (a[pre + "fc"],), (pre + "fc",), d[pre + "gelu"]),
            (L.linear, L.linear_plain, (a[pre + "ln2"], b["W_fc"], b["b_fc"]),
             (pre + "ln2", pre + "W_fc", pre + "b_fc"), d[pre + "fc"]),
            (S.layernorm, S.layernorm_plain, (a[pre + "x1"], b["ln2_g"], b["ln2_b"]),
             (pre + "x1", pre + "ln2_g", pre + "ln2_b"), d[pre + "ln2"]),
            (S.attention, S.attention_plain,
             (a[pre + "ln1"], b["W_attn"], b["b_attn"], b["W_proj"], b["b_proj"]),
             (pre + "ln1", pre + "W_attn", pre + "b_attn", pre + "W_proj", pre + "b_proj"), d[pre + "attn"]),
            (S.layernorm, S.layernorm_plain, (a[f"b{i - 1}.x2"] if i else a["x"], b["ln1_g"], b["ln1_b"]),
             (pre + "x", pre + "ln1_g", pre + "ln1_b"), d[pre + "ln1"]),
        ]
    checks += [(L.embedding, L.embedding_plain, (p["wpe"], jnp.arange(X.shape[1])), ("wpe", "pos"), d["pos"]),
               (L.embedding, L.embedding_plain, (p["wte"], X), ("wte", "X"), d["tok"])]
    layers = vjp_table("transformer layers: each custom_vjp against jax.grad of its plain twin", checks,
                       dtype=str(a["logits"].dtype))
    model = model_table(lambda p: loss_manual(p, state, X, Y)[0], lambda p: loss(p, state, X, Y)[0], params,
                        title="whole transformer: grad(loss_manual) vs grad(loss)")
    return [layers, model]



def flops(batch: int, vocab_size: int, *, n_layer: int, n_embd: int, n_head: int, block_size: int) -> int:
    """One step's matmul FLOPs, 3 x forward: per layer ``2·BT·C·3C`` (qkv) + ``2·2·B·T·T·C`` (scores
    and weighted sum) + ``2·BT·C·C`` (projection) + ``2·2·BT·C·4C`` (MLP); then ``2·BT·C·V``."""
    BT, C, T = batch * block_size, n_embd, block_size
    per_layer = 2 * BT * C * 3 * C + 4 * batch * T * T * C + 2 * BT * C * C + 16 * BT * C * C
    return 3 * (n_layer * per_layer + 2 * BT * C * vocab_size)


MODEL = Model(
    name="transformer",
    sizes={"n_layer": 4, "n_embd": 64, "n_head": 4, "block_size": None},
    defaults=MAKEMORE_TRAINING,
    help={"": "makemore's GPT-2-style Transformer: layer norm, causal self-attention, GELU MLP, every "
              "backward by hand (204,544 parameters; AdamW 5e-4)",
          "n_layer": "Transformer blocks", "n_head": "attention heads (n-embd must divide by it)"},
    init=init, loss=loss, loss_manual=loss_manual, logits_eval=logits_eval, check_tables=check_tables,
    flops=flops, data="sequences", check_sizes=check_sizes,
    loss_tapped=loss_tapped, probes=lambda name: name.endswith(".gelu"),
)
