"""nanoGPT's GPT (``shakespeare_char``), every layer's backward by hand.

    x = dropout(wte[X] + wpe[:T])                                   rows [B·T, C]
    n_layer x:  x = x + dropout(attention(layernorm(x)))            causal, n_head heads, dropout on P
                x = x + dropout(gelu_exact(layernorm(x) @ W_fc + b_fc) @ W_mp + b_mp)     (4C hidden,
                                                                    on a CPU in two column groups)
    logits = layernorm(x) @ wte.T                                   [B, T, V]: the head tied to wte
    loss = cross_entropy(logits, Y)

Activations are kept as rows ``[B·T, C]`` between the layers (attention sees them as [B, T, C], a
free reshape): the same maths, but every matrix product a plain 2-D GEMM, which on a CPU is the
difference between nanoGPT's speed and half of it (see ``PROFILE.md``). ``bias`` False: no biases in
the linears and layer norms (nanoGPT's ``bias=False``). The parameters keep nanoGPT's shapes, so
they need no head count: ``W_attn`` is ``c_attn.weight`` transposed, ``[C, 3C]``; the head count is
in the model's state (:class:`Heads`, from :func:`init`), a static pytree node with no leaves.

GPT-2's initialisation (nanoGPT's ``_init_weights``): every weight and embedding N(0, 0.02), the two
residual projections (``W_proj``, ``W_mp``) N(0, 0.02/√(2·n_layer)), biases 0, layer norm γ 1, β 0.
The CPU recipe's sizes (4 layers, 4 heads, 128 channels, block 64) with tiny Shakespeare's 65
characters: 804,096 parameters (nanoGPT prints 0.80M: it leaves out ``wpe``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from ..errors import ConfigError
from .model import Model
from .transformer import flops as _transformer_flops


@jax.tree_util.register_static
@dataclass(frozen=True)
class Heads:
    """The attention heads of a GPT: a static pytree node (no leaves), so the count rides in the
    model's state through ``jit`` and ``scan`` while the parameters keep nanoGPT's head-agnostic
    shapes (:mod:`bpjax.nanogpt` converts them without being told the head count)."""

    n: int


NANOGPT_TRAINING = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.1,
    "weight_decay_on": "matrices",
    "schedule": "cosine",
    "warmup_steps": 100,
    "min_lr": 1e-4,
    "grad_clip": 1.0,
    "steps": 2000,
    "batch_size": 12,
    "eval_every": 250,
}
"""nanoGPT's CPU recipe for ``shakespeare_char`` (its README): AdamW lr 1e-3 (betas 0.9, 0.99), weight
decay 0.1 on the matrices, 100 warmup steps then a cosine to 1e-4 at step 2,000, clipping at 1.0, batch
12. Its GPU recipe is ``--n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64 --dropout
0.2 --steps 5000`` (README)."""


def init(
    key,
    *,
    vocab_size: int,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 128,
    block_size: int = 64,
    dropout: float = 0.0,
    bias: bool = False,
    dtype=jnp.float32,
):
    """``(params, {"heads": Heads(n_head)})``: ``wte`` [V, C], ``wpe`` [block_size, C], ``blocks`` (one
    dict per layer: ``ln1_g``, ``W_attn`` [C, 3C], ``W_proj`` [C, C], ``ln2_g``, ``W_fc`` [C, 4C],
    ``W_mp`` [4C, C], and with ``bias`` their ``_b``/``b_`` twins), ``lnf_g`` (and ``lnf_b``).
    ``dropout`` is the training's (:meth:`Model.dropout`), not a parameter."""
    C = n_embd
    k_wte, k_wpe, *k_blocks = jax.random.split(key, n_layer + 2)
    std, std_residual = 0.02, 0.02 / math.sqrt(2 * n_layer)

    def normal(k, shape, s=std):
        return s * jax.random.normal(k, shape, dtype)

    def zeros(n):
        return jnp.zeros((n,), dtype)

    blocks = []
    for kb in k_blocks:
        k1, k2, k3, k4 = jax.random.split(kb, 4)
        b = {"ln1_g": jnp.ones((C,), dtype), "ln2_g": jnp.ones((C,), dtype)}
        b["W_attn"], b["W_proj"] = normal(k1, (C, 3 * C)), normal(k2, (C, C), std_residual)
        b["W_fc"], b["W_mp"] = normal(k3, (C, 4 * C)), normal(k4, (4 * C, C), std_residual)
        if bias:
            b.update(ln1_b=zeros(C), ln2_b=zeros(C), b_attn=zeros(3 * C), b_proj=zeros(C))
            b.update(b_fc=zeros(4 * C), b_mp=zeros(C))
        blocks.append(b)
    params = {"wte": normal(k_wte, (vocab_size, C)), "wpe": normal(k_wpe, (block_size, C)), "blocks": blocks}
    params["lnf_g"] = jnp.ones((C,), dtype)
    if bias:
        params["lnf_b"] = zeros(C)
    return params, {"heads": Heads(n_head)}


def check_sizes(sizes):
    if sizes["n_embd"] % sizes["n_head"]:
        raise ConfigError(f"n-embd ({sizes['n_embd']}) must divide by n-head ({sizes['n_head']})")


def _key(ly):
    """The next dropout key of the forward, or None where there is no dropout (eval, rate 0)."""
    return ly.key() if ly.rate else None


def _drop(ly, x):
    key = _key(ly)
    return x if key is None else ly.dropout(x, key, ly.rate)


def forward(ly, params, state, X, tap=NO_TAP):
    """``X`` [B, T] int (T <= block_size) -> ``(logits [B, T, V], state)``. ``state["heads"]``: the
    head count (:func:`init`'s)."""
    p, (B, T) = params, X.shape
    C, n_head = p["wte"].shape[1], _heads(state)
    hs = C // n_head
    with jax.named_scope("embedding"):
        tok = tap("tok", ly.embedding(p["wte"], X))
        emb = tap("emb", ly.add_positions(tok, p["wpe"]))
        x = tap("x", _drop(ly, emb).reshape(B * T, C))
    for i, b in enumerate(p["blocks"]):
        with jax.named_scope(f"block{i}"):
            a_in = tap(f"b{i}.ln1", ly.layernorm(x, b["ln1_g"], b.get("ln1_b")))
            W_attn = tap(f"b{i}.W_attn", b["W_attn"].reshape(C, 3, n_head, hs))  # the heads' view: free
            attn = ly.attention(
                a_in.reshape(B, T, C), W_attn, b.get("b_attn"), b["W_proj"], b.get("b_proj"), _key(ly), ly.rate
            )
            x = tap(f"b{i}.x1", x + _drop(ly, tap(f"b{i}.attn", attn.reshape(B * T, C))))
            m_in = tap(f"b{i}.ln2", ly.layernorm(x, b["ln2_g"], b.get("ln2_b")))
            x = tap(f"b{i}.x2", x + _drop(ly, tap(f"b{i}.mp", _mlp(ly, b, m_in, tap, f"b{i}"))))
    with jax.named_scope("lm_head"):
        xf = tap("lnf", ly.layernorm(x, p["lnf_g"], p.get("lnf_b")))
        logits = tap("logits", ly.tied_head(xf, p["wte"]))
    return logits.reshape(B, T, -1), state


def mlp_groups() -> int:
    """The column groups the MLP's 4C hidden units are computed in: 2 on a CPU, else 1.

    ``gelu(x @ W_fc + b_fc) @ W_mp`` is, for any split of the hidden units into groups, the sum over
    the groups of ``gelu(x @ W_fc[:, g] + b_fc[g]) @ W_mp[g]``: the same maths, summed in another
    order. On XLA:CPU, whose GEMMs of the CPU recipe's sizes run on one thread each, the two groups
    are independent chains its executor runs on the two cores at once, forward and backward: the
    step 2–9% faster in bfloat16 and ~4% in float32 (4 groups: slower again; the attention's heads in
    two groups: slower; ``experiments/results/bench/PROFILE.md``). Elsewhere one group: one GEMM each."""
    return 2 if jax.default_backend() == "cpu" else 1


def _mlp(ly, b, x, tap, name):
    """``gelu_exact(x @ W_fc + b_fc) @ W_mp + b_mp`` for rows ``x`` [B·T, C] -> [B·T, C] (at least
    float32), its hidden units in :func:`mlp_groups` column groups. The taps ``{name}.fc`` and
    ``{name}.gelu`` see the whole [B·T, 4C] intermediates, the groups side by side; with two or more
    groups, ``{name}.fc[j]``, ``{name}.gelu[j]``, ``{name}.W_fc[j]`` and ``{name}.W_mp[j]`` are group j's."""
    W_fc, W_mp, b_fc = b["W_fc"], b["W_mp"], b.get("b_fc")
    n = mlp_groups()
    cols = [slice(j * W_fc.shape[1] // n, (j + 1) * W_fc.shape[1] // n) for j in range(n)]
    W_fcs, W_mps = [W_fc], [W_mp]
    if n > 1:
        W_fcs = [tap(f"{name}.W_fc[{j}]", W_fc[:, c]) for j, c in enumerate(cols)]
        W_mps = [tap(f"{name}.W_mp[{j}]", W_mp[c]) for j, c in enumerate(cols)]
    fc = [ly.linear(x, W, None if b_fc is None else b_fc[c]) for W, c in zip(W_fcs, cols, strict=True)]
    h = _tapped(tap, f"{name}.gelu", [ly.gelu_exact(f) for f in _tapped(tap, f"{name}.fc", fc)])
    b_mps = [b.get("b_mp")] + [None] * (n - 1)  # the output's bias added once
    out = [ly.linear(h_j, W, b_j) for h_j, W, b_j in zip(h, W_mps, b_mps, strict=True)]
    return sum(out[1:], out[0])


def _tapped(tap, name: str, groups: list) -> list:
    """``groups`` (column groups of one intermediate) tapped as the whole, their concatenation, then
    each as ``name[j]``; for training (:data:`NO_TAP`) the groups as they are, independent."""
    if tap is NO_TAP:
        return groups
    if len(groups) == 1:
        return [tap(name, groups[0])]
    parts = jnp.split(tap(name, jnp.concatenate(groups, -1)), len(groups), -1)
    return [tap(f"{name}[{j}]", g) for j, g in enumerate(parts)]


def _heads(state) -> int:
    heads = state.get("heads") if isinstance(state, dict) else None
    if not isinstance(heads, Heads):
        raise ConfigError("a GPT's state carries its head count: pass the state init returned ({'heads': Heads(n)})")
    return heads.n


def flops(batch: int, vocab_size: int, *, n_layer: int, n_embd: int, n_head: int, block_size: int, **_) -> int:
    """One step's matmul FLOPs, 3 x forward (makemore's Transformer's count, the tied head as its
    ``2·BT·C·V``): see :func:`bpjax.models.transformer.flops`."""
    return _transformer_flops(batch, vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size)


def nanogpt_keys(n_layer: int) -> list:
    """nanoGPT's ``state_dict()`` entries (see :mod:`bpjax.models.statedict`); ``lm_head.weight`` is
    ``transformer.wte.weight`` (tied). Bias entries are dropped by the converter when absent."""
    out = [("transformer.wte.weight", "wte", ""), ("transformer.wpe.weight", "wpe", "")]
    for i in range(n_layer):
        h, b = f"transformer.h.{i}", f"blocks/{i}"
        out += [
            (f"{h}.ln_1.weight", f"{b}/ln1_g", ""),
            (f"{h}.ln_1.bias", f"{b}/ln1_b", "bias"),
            (f"{h}.attn.c_attn.weight", f"{b}/W_attn", "T"),
            (f"{h}.attn.c_attn.bias", f"{b}/b_attn", "bias"),
            (f"{h}.attn.c_proj.weight", f"{b}/W_proj", "T"),
            (f"{h}.attn.c_proj.bias", f"{b}/b_proj", "bias"),
            (f"{h}.ln_2.weight", f"{b}/ln2_g", ""),
            (f"{h}.ln_2.bias", f"{b}/ln2_b", "bias"),
            (f"{h}.mlp.c_fc.weight", f"{b}/W_fc", "T"),
            (f"{h}.mlp.c_fc.bias", f"{b}/b_fc", "bias"),
            (f"{h}.mlp.c_proj.weight", f"{b}/W_mp", "T"),
            (f"{h}.mlp.c_proj.bias", f"{b}/b_mp", "bias"),
        ]
    return out + [
        ("transformer.ln_f.weight", "lnf_g", ""),
        ("transformer.ln_f.bias", "lnf_b", "bias"),
        ("lm_head.weight", "wte", "tied"),
    ]


MODEL = Model(
    name="gpt",
    sizes={"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False},
    size_ranges={"dropout": (0.0, 1.0)},
    defaults=NANOGPT_TRAINING,
    help={
        "": "nanoGPT's character-level GPT (shakespeare_char): tied head, exact GELU, dropout, every "
        "backward by hand (804,096 parameters; AdamW 1e-3, warmup and cosine)",
        "n_layer": "Transformer blocks",
        "n_head": "attention heads (n-embd must divide by it)",
        "dropout": "dropout probability on the embeddings, attention probabilities and residual branches",
        "bias": "biases in the linears and layer norms",
    },
    init=init,
    forward=forward,
    flops=flops,
    data="text",
    check_sizes=check_sizes,
    dropout=lambda sizes: float(sizes.get("dropout", 0.0)),
    probes=lambda name: name.endswith(".gelu"),
    check_variants={"bias on": {"bias": True}, "dropout 0.1, masks fixed": {"dropout": 0.1}},
    state_dicts={"nanogpt": nanogpt_keys},
)
