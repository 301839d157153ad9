"""The notebook's MLP (makemore part 4), as pure functions over a dict of arrays.

    emb = C[X]                          [B, T, E]
    embcat = emb.reshape(B, T*E)        [B, T*E]
    h_pre_bn = embcat @ W1 + b1         [B, H]
    h_preact = batchnorm(h_pre_bn)      [B, H]   (training mode: batch statistics, Bessel n - 1)
    h = tanh(h_preact)                  [B, H]
    logits = h @ W2 + b2                [B, V]
    loss = cross_entropy(logits, Y)     scalar

* :func:`forward` — the model, written once against a layer set (``ly``): over the plain layers
  it is the oracle's forward, over the hand-written ones the notebook's fused backwards;
* :func:`loss` and :func:`loss_manual` — the two losses, ``(params, X, Y) -> scalar``;
* :func:`calibrate_bn` and :func:`logits_eval` — eval mode, as the notebook's calibration cell;
* :func:`atomic_grads` — exercise 1: every intermediate's gradient, derived line by line;
* :func:`atomic_oracle` — ``jax.grad`` with respect to every intermediate, through zero "taps".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..check import NO_TAP, Tap, chain_table, tap_grads
from ..layers import BN_EPS, PLAIN
from . import Model, n_params

__all__ = [
    "init_params",
    "forward",
    "loss",
    "loss_manual",
    "hidden_pre_bn",
    "calibrate_bn",
    "logits_eval",
    "loss_eval",
    "forward_chunked",
    "atomic_grads",
    "atomic_oracle",
    "gradient_tables",
    "n_params",
    "MODEL",
]

PARAM_KEYS = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")

# The notebook's order of exercise 1 (its cmp lines), parameters included where it checks them.
ATOMIC_NAMES = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits",
                "logit_maxes", "logits", "h", "W2", "b2", "h_preact", "bngain", "bn_raw", "bnbias",
                "bn_var_inv", "bn_var", "bn_diff_sq", "bn_diff", "bn_mean_i", "h_pre_bn", "embcat",
                "W1", "b1", "emb", "C")  # fmt: skip
INTERMEDIATES = tuple(n for n in ATOMIC_NAMES if n not in PARAM_KEYS)


def init_params(
    key, *, vocab_size: int = 27, n_embd: int = 10, n_hidden: int = 64, block_size: int = 3, dtype=jnp.float32
) -> dict:
    """The notebook's initialisation. ``key``: a ``jax.random`` key.

    Returns ``{"C": [V, E], "W1": [E*T, H], "b1": [H], "W2": [H, V], "b2": [V],
    "bngain": [1, H], "bnbias": [1, H]}``: C ~ N(0, 1); W1 ~ N(0, 1)·(5/3)/sqrt(E·T) (tanh's gain);
    b1, W2, b2 ~ N(0, 1)·0.1; bngain = 1.1 and bnbias = 0.1 (not 1 and 0, so that a backward
    that ignores them cannot hide). 4,137 parameters at the defaults.
    """
    V, E, H, T = vocab_size, n_embd, n_hidden, block_size
    kC, kW1, kb1, kW2, kb2 = jax.random.split(key, 5)

    def normal(k, shape):
        return jax.random.normal(k, shape, dtype)

    return {
        "C": normal(kC, (V, E)),
        "W1": normal(kW1, (E * T, H)) * (5 / 3) / (E * T) ** 0.5,
        "b1": normal(kb1, (H,)) * 0.1,
        "W2": normal(kW2, (H, V)) * 0.1,
        "b2": normal(kb2, (V,)) * 0.1,
        "bngain": jnp.ones((1, H), dtype) * 0.1 + 1.0,
        "bnbias": jnp.ones((1, H), dtype) * 0.1,
    }


def init(key, *, vocab_size: int, dtype=jnp.float32, **sizes):
    """``(params, {})``: :func:`init_params`; the MLP keeps no running statistics."""
    return init_params(key, vocab_size=vocab_size, dtype=dtype, **sizes), {}


def _hidden_pre_bn(ly, params, X, tap=NO_TAP):
    """``embcat @ W1 + b1``: the forward up to batch norm."""
    with jax.named_scope("embedding"):
        emb = tap("emb", ly.embedding(params["C"], X))
        embcat = tap("embcat", emb.reshape(emb.shape[0], -1))
    with jax.named_scope("linear1"):
        return tap("h_pre_bn", ly.linear(embcat, params["W1"], params["b1"]))


def forward(ly, params, state, X, tap=NO_TAP):
    """The notebook's forward, written once: ``ly`` the layers (plain or hand-written), ``X`` [B, T]
    int -> ``(logits [B, V], state)``. Batch norm uses the batch's statistics in training mode and,
    in eval mode, the calibration's (``state``: :func:`calibrate_bn`'s ``bnmean``, ``bnvar``)."""
    h_pre_bn = _hidden_pre_bn(ly, params, X, tap)
    with jax.named_scope("batchnorm"):
        if ly.training:
            h_preact = ly.batchnorm(h_pre_bn, params["bngain"], params["bnbias"])
        else:
            h_preact = ly.batchnorm_eval(h_pre_bn, params["bngain"], params["bnbias"], state["bnmean"], state["bnvar"])
        h_preact = tap("h_preact", h_preact)
    with jax.named_scope("tanh"):
        h = tap("h", ly.tanh(h_preact))
    with jax.named_scope("linear2"):
        return tap("logits", ly.linear(h, params["W2"], params["b2"])), state


def loss(params, X, Y):
    """Training-mode loss in plain ``jnp``. ``X`` [B, T] int, ``Y`` [B] int -> scalar.

    ``jax.grad(loss)`` is the oracle for every hand-written gradient.
    """
    return MODEL.loss(params, {}, X, Y)[0]


def loss_manual(params, X, Y):
    """The same value as :func:`loss`, built from ``custom_vjp`` layers: ``jax.grad`` of it runs
    the hand-written backward of every layer. Works under ``jit``, ``vmap`` and ``grad``."""
    return MODEL.loss_manual(params, {}, X, Y)[0]


# --------------------------------------------------------------------------------------------
# Eval mode: batch norm with fixed statistics (the notebook's calibration + split_loss)
# --------------------------------------------------------------------------------------------
def hidden_pre_bn(params, X):
    """``embcat @ W1 + b1`` for ``X`` [N, T] -> [N, H]."""
    return _hidden_pre_bn(PLAIN, params, X)


def calibrate_bn(params, X, chunk: int = 65536) -> dict:
    """Batch-norm statistics over all of ``X`` [N, T]: ``{"bnmean": [1, H], "bnvar": [1, H]}``.

    Mean and Bessel-corrected variance (``unbiased=True``), as the notebook's calibration cell.
    Computed in two passes over row chunks so memory stays bounded for large N.
    """
    X = jnp.asarray(X)
    N = X.shape[0]
    f = jax.jit(hidden_pre_bn)
    total = sum(f(params, X[i : i + chunk]).sum(0, keepdims=True) for i in range(0, N, chunk))
    bnmean = total / N
    sq = sum(((f(params, X[i : i + chunk]) - bnmean) ** 2).sum(0, keepdims=True) for i in range(0, N, chunk))
    return {"bnmean": bnmean, "bnvar": sq / (N - 1)}


def logits_eval(params, bn_stats, X):
    """Eval-mode logits ``[N, V]`` for ``X`` [N, T], batch norm using ``bn_stats``."""
    return MODEL.logits_eval(params, bn_stats, X)


def loss_eval(params, bn_stats, X, Y):
    """Eval-mode mean cross-entropy (the notebook's ``split_loss``)."""
    return PLAIN.cross_entropy(logits_eval(params, bn_stats, X), Y)


# --------------------------------------------------------------------------------------------
# Exercise 1: the chunked forward and its atomic backward, line by line
# --------------------------------------------------------------------------------------------
def forward_chunked(params, X, Y, taps=None) -> dict:
    """The notebook's explicit forward, returning every intermediate and ``"loss"``.

    ``taps`` (optional) maps intermediate names to arrays of their shape added to them: with zero
    taps the values are unchanged and ``jax.grad`` with respect to a tap is the gradient with
    respect to that intermediate (JAX's stand-in for PyTorch's ``retain_grad``).
    """
    return _forward_chunked(params, X, Y, Tap(taps))


def _forward_chunked(params, X, Y, t) -> dict:
    """:func:`forward_chunked` with each intermediate passed through the tap ``t(name, value)``."""
    C, W1, b1, W2, b2 = (params[k] for k in ("C", "W1", "b1", "W2", "b2"))
    bngain, bnbias = params["bngain"], params["bnbias"]
    n = X.shape[0]
    v = {}
    v["emb"] = t("emb", C[X])
    v["embcat"] = t("embcat", v["emb"].reshape(n, -1))
    # Linear layer 1
    v["h_pre_bn"] = t("h_pre_bn", v["embcat"] @ W1 + b1)
    # BatchNorm layer
    v["bn_mean_i"] = t("bn_mean_i", 1 / n * v["h_pre_bn"].sum(0, keepdims=True))
    v["bn_diff"] = t("bn_diff", v["h_pre_bn"] - v["bn_mean_i"])
    v["bn_diff_sq"] = t("bn_diff_sq", v["bn_diff"] ** 2)
    v["bn_var"] = t("bn_var", 1 / (n - 1) * v["bn_diff_sq"].sum(0, keepdims=True))
    v["bn_var_inv"] = t("bn_var_inv", (v["bn_var"] + BN_EPS) ** -0.5)
    v["bn_raw"] = t("bn_raw", v["bn_diff"] * v["bn_var_inv"])
    v["h_preact"] = t("h_preact", bngain * v["bn_raw"] + bnbias)
    # Non-linearity
    v["h"] = t("h", jnp.tanh(v["h_preact"]))
    # Linear layer 2
    v["logits"] = t("logits", v["h"] @ W2 + b2)
    # Cross-entropy loss
    v["logit_maxes"] = t("logit_maxes", v["logits"].max(1, keepdims=True))
    v["norm_logits"] = t("norm_logits", v["logits"] - v["logit_maxes"])
    v["counts"] = t("counts", jnp.exp(v["norm_logits"]))
    v["counts_sum"] = t("counts_sum", v["counts"].sum(1, keepdims=True))
    v["counts_sum_inv"] = t("counts_sum_inv", v["counts_sum"] ** -1)
    v["probs"] = t("probs", v["counts"] * v["counts_sum_inv"])
    v["logprobs"] = t("logprobs", jnp.log(v["probs"]))
    v["loss"] = -v["logprobs"][jnp.arange(n), Y].mean()
    return v


def atomic_oracle(params, X, Y) -> dict:
    """``jax.grad`` of the loss with respect to every intermediate and every parameter."""
    _, _, d_taps, (d_params,) = tap_grads(
        lambda tap, p: _forward_chunked(p, X, Y, tap)["loss"], params, names=INTERMEDIATES
    )
    return {**d_taps, **d_params}


def atomic_grads(params, X, Y) -> dict:
    """Exercise 1: the hand-derived gradient of every intermediate and parameter.

    Keys are the bare names (``"probs"``, ``"W1"``); every gradient has its tensor's shape.
    Each line is the notebook's, with its slips mended: ``d_b2`` does not overwrite ``d_logits``,
    ``d_bn_mean_i`` keeps its dimension, and ``b1`` stays in the forward.
    """
    v = forward_chunked(params, X, Y)
    W1, W2, bngain = params["W1"], params["W2"], params["bngain"]
    n, V = v["logits"].shape
    g = {}
    # Cross-entropy, atom by atom
    g["logprobs"] = jnp.zeros_like(v["logprobs"]).at[jnp.arange(n), Y].set(-1.0 / n)
    g["probs"] = (1.0 / v["probs"]) * g["logprobs"]
    g["counts_sum_inv"] = (v["counts"] * g["probs"]).sum(1, keepdims=True)
    g["counts_sum"] = (-1.0 / v["counts_sum"] ** 2) * g["counts_sum_inv"]
    # counts is used twice: probs = counts * counts_sum_inv and counts_sum = counts.sum(1)
    g["counts"] = g["probs"] * v["counts_sum_inv"] + jnp.ones_like(v["counts"]) * g["counts_sum"]
    g["norm_logits"] = v["counts"] * g["counts"]  # d exp(x) = exp(x) = counts
    g["logit_maxes"] = (-g["norm_logits"]).sum(1, keepdims=True)
    # logits is used twice: norm_logits = logits - logit_maxes, and logit_maxes = logits.max(1)
    g["logits"] = (
        g["norm_logits"] + jax.nn.one_hot(v["logits"].argmax(1), V, dtype=v["logits"].dtype) * g["logit_maxes"]
    )
    # Linear layer 2
    g["h"] = g["logits"] @ W2.T
    g["W2"] = v["h"].T @ g["logits"]
    g["b2"] = g["logits"].sum(0)
    # Non-linearity
    g["h_preact"] = (1.0 - v["h"] ** 2) * g["h"]
    # Batch norm
    g["bngain"] = (v["bn_raw"] * g["h_preact"]).sum(0, keepdims=True)
    g["bn_raw"] = bngain * g["h_preact"]
    g["bnbias"] = g["h_preact"].sum(0, keepdims=True)
    g["bn_var_inv"] = (v["bn_diff"] * g["bn_raw"]).sum(0, keepdims=True)
    g["bn_var"] = (-0.5 * (v["bn_var"] + BN_EPS) ** -1.5) * g["bn_var_inv"]
    g["bn_diff_sq"] = (1.0 / (n - 1)) * jnp.ones_like(v["bn_diff_sq"]) * g["bn_var"]
    # bn_diff is used twice: bn_raw = bn_diff * bn_var_inv and bn_diff_sq = bn_diff**2
    g["bn_diff"] = v["bn_var_inv"] * g["bn_raw"] + 2 * v["bn_diff"] * g["bn_diff_sq"]
    g["bn_mean_i"] = (-g["bn_diff"]).sum(0, keepdims=True)
    # h_pre_bn is used twice: bn_diff = h_pre_bn - bn_mean_i and bn_mean_i = mean(h_pre_bn)
    g["h_pre_bn"] = g["bn_diff"] + jnp.ones_like(v["h_pre_bn"]) * (1.0 / n) * g["bn_mean_i"]
    # Linear layer 1
    g["embcat"] = g["h_pre_bn"] @ W1.T
    g["W1"] = v["embcat"].T @ g["h_pre_bn"]
    g["b1"] = g["h_pre_bn"].sum(0)
    # Embedding: re-represent the shape, then the double loop as one scatter-add
    g["emb"] = g["embcat"].reshape(v["emb"].shape)
    g["C"] = jnp.zeros_like(params["C"]).at[X].add(g["emb"])
    return {k: g[k] for k in ATOMIC_NAMES}


def atomic_table(params, X, Y):
    """Exercise 1's table: :func:`atomic_grads` against :func:`atomic_oracle`, in the notebook's order
    (the backward's), a :class:`~bpjax.check.ChainTable` whose ``first_wrong`` names the first step
    that fails (every later one inherits its error)."""
    oracle = jax.jit(atomic_oracle)(params, X, Y)
    return chain_table(
        jax.jit(atomic_grads)(params, X, Y), oracle, ATOMIC_NAMES, table="atomic", title="atomic chain (exercise 1)"
    )


def gradient_tables(params, X, Y) -> list:
    """The notebook's checks on one batch, each against ``jax.grad``: the atomic chain of exercise 1,
    every hand-written layer on this batch's activations (exercises 2 and 3 among them: the fused
    cross-entropy and batch norm), and the whole model, one row per parameter."""
    return MODEL.tables(params, {}, X, Y)


def flops(batch: int, vocab_size: int, *, n_embd: int, n_hidden: int, block_size: int) -> int:
    """FLOPs of one training step's matmuls: 3 x forward (dX and dW in the backward).

    Forward: ``2·B·(T·E)·H`` (embcat @ W1) + ``2·B·H·V`` (h @ W2).
    """
    fwd = 2 * batch * n_embd * block_size * n_hidden + 2 * batch * n_hidden * vocab_size
    return 3 * fwd


MODEL = Model(
    name="mlp",
    sizes={"n_embd": 10, "n_hidden": 64, "block_size": 3},
    help={
        "": "the notebook's MLP: embedding, linear, batch norm, tanh, linear (4,137 parameters)",
        "n_embd": "embedding size",
        "n_hidden": "hidden units",
        "block_size": "context length",
    },
    init=init,
    forward=forward,
    eval_stats=lambda p, s, X_train: calibrate_bn(p, X_train),  # the notebook's calibration
    check_tables=lambda p, s, X, Y: [atomic_table(p, X, Y)],
    flops=flops,
    min_batch=2,
    probes=lambda name: name == "h",
)
