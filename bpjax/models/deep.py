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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from ..errors import ConfigError
from ..layers import running_batchnorm, running_stats
from . import Model

SIZES = {
    "n_embd": 10,
    "n_hidden": 100,
    "block_size": 3,
    "n_blocks": 5,
    "batchnorm": True,
    "gain": 5 / 3,
    "last_scale": 0.1,
}
"""The lecture's network (47,024 parameters with a vocabulary of 27)."""


def init_params(
    key,
    *,
    vocab_size: int = 27,
    n_embd: int = 10,
    n_hidden: int = 100,
    block_size: int = 3,
    n_blocks: int = 5,
    batchnorm: bool = True,
    gain: float = 5 / 3,
    last_scale: float = 0.1,
    dtype=jnp.float32,
) -> dict:
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
            layers.append(
                {
                    "W": W * gain,
                    "bngain": jnp.full((fan_out,), last_scale if last else 1.0, dtype),
                    "bnbias": jnp.zeros((fan_out,), dtype),
                }
            )
        else:
            layers.append({"W": W * (last_scale if last else gain), "b": jnp.zeros((fan_out,), dtype)})
    return {"C": jax.random.normal(keys[0], (vocab_size, n_embd), dtype), "layers": layers}


def init_state(params) -> dict:
    """Running statistics of every batch norm: mean 0, variance 1 (``nn.BatchNorm1d``'s start)."""
    return {"layers": [running_stats(p["bngain"]) for p in params["layers"] if "bngain" in p]}


def init(key, *, vocab_size: int, dtype=jnp.float32, **sizes):
    """``(params, state)``: :func:`init_params` and its :func:`init_state` (``{}`` without batch norm)."""
    params = init_params(key, vocab_size=vocab_size, dtype=dtype, **sizes)
    return params, (init_state(params) if sizes.get("batchnorm", True) else {})


def forward(ly, params, state, X, tap=NO_TAP):
    """``X`` [B, T] -> ``(logits [B, V], state)``; the intermediates tapped as ``l{i}.lin``,
    ``l{i}.bn`` and ``l{i}.h`` (the tanh outputs)."""
    with jax.named_scope("embedding"):
        emb = tap("emb", ly.embedding(params["C"], X))
        x = tap("embcat", emb.reshape(emb.shape[0], -1))
    last = len(params["layers"]) - 1
    running = []
    for i, p in enumerate(params["layers"]):
        with jax.named_scope(f"layer{i}"):
            x = tap(f"l{i}.lin", ly.linear(x, p["W"], p.get("b")))
            if "bngain" in p:
                x, st = running_batchnorm(ly, x, p["bngain"], p["bnbias"], state["layers"][len(running)])
                running.append(st)
                x = tap(f"l{i}.bn", x)
            if i < last:
                x = tap(f"l{i}.h", ly.tanh(x))
    return tap("logits", x), ({"layers": running} if running else state)


def flops(batch: int, vocab_size: int, *, n_embd: int, n_hidden: int, block_size: int, n_blocks: int, **_) -> int:
    """FLOPs of one training step's matmuls, 3 x forward: ``2·B·fan_in·fan_out`` per layer."""
    widths = [n_embd * block_size] + [n_hidden] * n_blocks + [vocab_size]
    return 3 * sum(2 * batch * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def check_sizes(sizes) -> None:
    if not isinstance(sizes["batchnorm"], bool):
        raise ConfigError(f"batchnorm must be true or false, got {sizes['batchnorm']!r}")


MODEL = Model(
    name="deep",
    sizes=SIZES,
    help={
        "": "makemore part 3's deeper network: five linear, batch norm, tanh blocks of 100 and a linear, "
        "batch norm output (47,024 parameters); for --diagnose-every",
        "n_blocks": "hidden linear, batch norm, tanh blocks",
        "batchnorm": "batch norm after every linear layer: on or off",
        "gain": "init gain of the linear weights: 5/3 is tanh's, 1 lets activations shrink",
        "last_scale": "init scale of the last layer: its batch-norm gain, or its weight without batch norm",
    },
    init=init,
    forward=forward,
    probes=lambda name: name.endswith(".h"),
    flops=flops,
    min_batch=2,
    check_sizes=check_sizes,
)
