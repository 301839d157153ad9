"""makemore part 3's deeper network: where activation, gradient and update statistics tell a story.

    emb = C[X]                                   [B, T, E]
    x = emb.reshape(B, T·E)                      [B, T·E]
    n_blocks x:  x = tanh(batchnorm(x @ W))      [B, H]   (no bias: batch norm removes it)
    logits = batchnorm(x @ W_out)                [B, V]   (the lecture's last BatchNorm1d(vocab_size))
    loss = cross_entropy(logits, Y)

The lecture's sizes (n_embd 10, block_size 3, five blocks of 100): 47,024 parameters. Its init:
every weight ~ N(0, 1)/√fan_in times the ``gain`` (5/3, tanh's), the last batch norm's gain times
``last_scale`` (0.1: a less confident first prediction). Batch norm keeps running mean and (Bessel)
variance with momentum 0.1, as ``nn.BatchNorm1d``; eval mode uses them.

Without batch norm (``batchnorm=False``: the lecture's first experiments) every linear layer has a
bias (zeros at init), the gain applies to the hidden layers and ``last_scale`` to the last weight:

    n_blocks x:  x = tanh(x @ W + b);   logits = x @ W_out + b_out          (46,497 parameters)

So each of the lecture's experiments is one option: ``batchnorm=False``, ``gain=1.0`` (activations
shrink layer by layer without batch norm), ``last_scale=1.0`` (an over-confident first step).
Every layer is a ``custom_vjp`` layer of :mod:`bpjax.layers` in :func:`loss_manual`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import layers as L
from .check import NO_TAP
from .errors import ConfigError
from .models import Model
from .wavenet import MOMENTUM, batch_stats

SIZES = {"n_embd": 10, "n_hidden": 100, "block_size": 3, "n_blocks": 5, "batchnorm": True,
         "gain": 5 / 3, "last_scale": 0.1}
"""The lecture's network (47,024 parameters with a vocabulary of 27)."""


def init_params(key, *, vocab_size: int = 27, n_embd: int = 10, n_hidden: int = 100, block_size: int = 3,
                n_blocks: int = 5, batchnorm: bool = True, gain: float = 5 / 3, last_scale: float = 0.1,
                dtype=jnp.float32) -> dict:
    """The lecture's init. Returns ``{"C": [V, E], "layers": [layer, ...]}``: ``n_blocks`` hidden
    layers then the output layer, each ``{"W": [fan_in, fan_out], "bngain": [fan_out], "bnbias":
    [fan_out]}`` with batch norm (gain 1, bias 0; the last gain ``last_scale``), else ``{"W", "b"}``
    (b zeros; the last W times ``last_scale`` instead of the gain)."""
    keys = jax.random.split(key, n_blocks + 2)
    widths = [n_embd * block_size] + [n_hidden] * n_blocks + [vocab_size]
    layers = []
    for i in range(n_blocks + 1):
        fan_in, fan_out = widths[i], widths[i + 1]
        last = i == n_blocks
        W = jax.random.normal(keys[1 + i], (fan_in, fan_out), dtype) / fan_in**0.5
        if batchnorm:
            layers.append({"W": W * gain, "bngain": jnp.full((fan_out,), last_scale if last else 1.0, dtype),
                           "bnbias": jnp.zeros((fan_out,), dtype)})
        else:
            layers.append({"W": W * (last_scale if last else gain), "b": jnp.zeros((fan_out,), dtype)})
    return {"C": jax.random.normal(keys[0], (vocab_size, n_embd), dtype), "layers": layers}


def init_state(params) -> dict:
    """Running statistics of every batch norm: mean 0, variance 1 (``nn.BatchNorm1d``'s start)."""
    return {"layers": [{"running_mean": jnp.zeros_like(p["bngain"]), "running_var": jnp.ones_like(p["bngain"])}
                       for p in params["layers"] if "bngain" in p]}


def init(key, *, vocab_size: int, dtype=jnp.float32, **sizes):
    """``(params, state)``: :func:`init_params` and its :func:`init_state` (``{}`` without batch norm)."""
    params = init_params(key, vocab_size=vocab_size, dtype=dtype, **sizes)
    return params, (init_state(params) if sizes.get("batchnorm", True) else {})


def _logits(params, X, ly: L.Layers, norm, tap=NO_TAP):
    """The forward, written once: ``ly`` the layers, ``norm(i, x, bngain, bnbias)`` the i-th batch
    norm (training or eval mode), ``tap`` names the intermediates (``l{i}.h``: the tanh outputs)."""
    with jax.named_scope("embedding"):
        emb = tap("emb", ly.embedding(params["C"], X))
        x = tap("embcat", emb.reshape(emb.shape[0], -1))
    last = len(params["layers"]) - 1
    for i, p in enumerate(params["layers"]):
        with jax.named_scope(f"layer{i}"):
            x = tap(f"l{i}.lin", ly.linear(x, p["W"], p.get("b")))
            if "bngain" in p:
                x = tap(f"l{i}.bn", norm(i, x, p["bngain"], p["bnbias"]))
            if i < last:
                x = tap(f"l{i}.h", ly.tanh(x))
    return tap("logits", x)


def _loss(params, state, X, Y, ly: L.Layers, tap=NO_TAP):
    """Training mode: batch statistics, the running ones updated with momentum 0.1."""
    new = []

    def norm(i, x, bngain, bnbias):
        st = state["layers"][len(new)]
        mean, var = batch_stats(x)
        new.append({"running_mean": (1 - MOMENTUM) * st["running_mean"] + MOMENTUM * mean,
                    "running_var": (1 - MOMENTUM) * st["running_var"] + MOMENTUM * var})
        return ly.batchnorm(x, bngain, bnbias)

    logits = _logits(params, X, ly, norm, tap)
    with jax.named_scope("cross_entropy"):
        return ly.cross_entropy(logits, Y), ({"layers": new} if new else state)


def loss(params, state, X, Y):
    """Training-mode loss in plain ``jnp``: ``X`` [B, block_size] int, ``Y`` [B] -> (scalar, new_state)."""
    return _loss(params, state, X, Y, L.PLAIN)


def loss_manual(params, state, X, Y):
    """:func:`loss` from the custom_vjp layers: ``jax.grad`` runs every hand-written backward."""
    return _loss(params, state, X, Y, L.MANUAL)


def loss_tapped(params, state, X, Y, tap, manual: bool):
    """:func:`loss_manual` (``manual``) or :func:`loss` with every intermediate through ``tap``."""
    return _loss(params, state, X, Y, L.MANUAL if manual else L.PLAIN, tap)


def logits_eval(params, state, X):
    """Eval mode: batch norm with the running statistics. ``X`` [N, block_size] -> [N, V]."""
    def norm(i, x, bngain, bnbias):
        st = state["layers"][sum("bngain" in p for p in params["layers"][:i])]
        return L.batchnorm_eval(x, bngain, bnbias, st["running_mean"], st["running_var"])
    return _logits(params, X, L.PLAIN, norm)


def check_tables(params, state, X, Y) -> list:
    """``bpjax check --model deep``: every custom_vjp layer on this batch's activations, pulled back
    with the oracle's upstream gradient, against its plain twin; then the whole model."""
    from .check import model_table, tap_grads, vjp_table

    _, a, d, _ = tap_grads(lambda tap: _loss(params, state, X, Y, L.PLAIN, tap)[0])
    layers = params["layers"]
    last = len(layers) - 1
    checks = [(L.cross_entropy, L.cross_entropy_plain, (a["logits"], Y), ("logits", "Y"), None)]
    for i in reversed(range(len(layers))):
        p, pre = layers[i], f"l{i}."
        out = pre + ("h" if i < last else "bn" if "bngain" in p else "lin")
        d_out = d[out] if i < last else d["logits"]
        if i < last:
            before = pre + ("bn" if "bngain" in p else "lin")
            checks.append((L.tanh, L.tanh_plain, (a[before],), (before + "_out",), d_out))
            d_out = d[before]
        if "bngain" in p:
            checks.append((L.batchnorm, L.batchnorm_plain, (a[pre + "lin"], p["bngain"], p["bnbias"]),
                           (pre + "lin_out", pre + "bngain", pre + "bnbias"), d_out))
            d_out = d[pre + "lin"]
        x_in = a[f"l{i - 1}.h"] if i else a["embcat"]
        if "b" in p:
            checks.append((L.linear, L.linear_plain, (x_in, p["W"], p["b"]), (pre + "x", pre + "W", pre + "b"), d_out))
        else:
            checks.append((lambda x, W: L.linear(x, W, None), lambda x, W: L.linear_plain(x, W, None),
                           (x_in, p["W"]), (pre + "x", pre + "W"), d_out))
    checks.append((L.embedding, L.embedding_plain, (params["C"], X), ("C", "X"), d["emb"]))
    table = vjp_table("deep network layers: each custom_vjp against jax.grad of its plain twin", checks,
                      dtype=str(a["logits"].dtype))
    model = model_table(lambda p: loss_manual(p, state, X, Y)[0], lambda p: loss(p, state, X, Y)[0], params,
                        title="whole deep network: grad(loss_manual) vs grad(loss)")
    return [table, model]


def flops(batch: int, vocab_size: int, *, n_embd: int, n_hidden: int, block_size: int, n_blocks: int,
          **_) -> int:
    """FLOPs of one training step's matmuls, 3 x forward: ``2·B·fan_in·fan_out`` per layer."""
    widths = [n_embd * block_size] + [n_hidden] * n_blocks + [vocab_size]
    return 3 * sum(2 * batch * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def check_sizes(sizes) -> None:
    if not isinstance(sizes["batchnorm"], bool):
        raise ConfigError(f"batchnorm must be true or false, got {sizes['batchnorm']!r}")


MODEL = Model(
    name="deep",
    sizes=SIZES,
    help={"": "makemore part 3's deeper network: five linear, batch norm, tanh blocks of 100 and a linear, "
              "batch norm output (47,024 parameters); for --diagnose-every",
          "n_blocks": "hidden linear, batch norm, tanh blocks",
          "batchnorm": "batch norm after every linear layer: on or off",
          "gain": "init gain of the linear weights: 5/3 is tanh's, 1 lets activations shrink",
          "last_scale": "init scale of the last layer: its batch-norm gain, or its weight without "
                        "batch norm"},
    init=init,
    loss=loss,
    loss_manual=loss_manual,
    loss_tapped=loss_tapped,
    probes=lambda name: name.endswith(".h"),
    eval_stats=lambda p, s, X_train: s,  # the running statistics, as the lecture evaluates
    logits_eval=logits_eval,
    check_tables=check_tables,
    flops=flops,
    min_batch=2,
    check_sizes=check_sizes,
)
