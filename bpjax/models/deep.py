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
shrink layer by layer without batch norm), ``last_scale=1.0`` (an over-confident first step),
``bias_scale=0.01`` (the hidden biases ~ N(0, 1)·0.01, the lecture's first MLP's ``b1``).

The lecture's first half, its BatchNorm MLP (12,097 parameters: batch norm on the hidden layer only,
running statistics with momentum 0.001, ``W2 * 0.01``, ``b2 * 0``; SGD 0.1, 0.01 from step 100,000):

    bpjax train --model deep --n-blocks 1 --n-hidden 200 --output-batchnorm false --momentum 0.001 \
        --last-scale 0.01 --lr-decay-step 100000

(the lecture divides by the batch's standard deviation without an epsilon and averages it, where
``nn.BatchNorm1d`` and bpjax add 1e-5 to the variance and average the variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..check import NO_TAP
from ..errors import ConfigError
from ..layers import MOMENTUM, running_batchnorm, running_stats
from . import Model

SIZES = {
    "n_embd": 10,
    "n_hidden": 100,
    "block_size": 3,
    "n_blocks": 5,
    "batchnorm": True,
    "gain": 5 / 3,
    "last_scale": 0.1,
    "output_batchnorm": True,
    "momentum": 0.1,
    "bias_scale": 0.0,
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
    output_batchnorm: bool = True,
    bias_scale: float = 0.0,
    dtype=jnp.float32,
    **_,
) -> dict:
    """The lecture's init. Returns ``{"C": [V, E], "layers": [layer, ...]}``: ``n_blocks`` hidden
    layers then the output layer, each ``{"W": [fan_in, fan_out], "bngain": [fan_out], "bnbias":
    [fan_out]}`` with batch norm (gain 1, bias 0; the last gain ``last_scale``), else ``{"W", "b"}``
    (b zeros; the last W times ``last_scale`` instead of the gain). ``output_batchnorm=False``: the
    output layer is ``{"W", "b"}`` (W times ``last_scale``, b zeros) after batch-normed hidden layers.
    ``bias_scale`` above 0: the hidden layers' biases ~ N(0, 1)·bias_scale (drawn from keys of their
    own, so every other parameter is the same as with zeros)."""
    keys = jax.random.split(key, n_blocks + 2)
    widths = [n_embd * block_size] + [n_hidden] * n_blocks + [vocab_size]
    layers = []
    for i in range(n_blocks + 1):
        fan_in, fan_out = widths[i], widths[i + 1]
        last = i == n_blocks
        W = jax.random.normal(keys[1 + i], (fan_in, fan_out), dtype) / fan_in**0.5
        if batchnorm and (output_batchnorm or not last):
            layers.append(
                {
                    "W": W * gain,
                    "bngain": jnp.full((fan_out,), last_scale if last else 1.0, dtype),
                    "bnbias": jnp.zeros((fan_out,), dtype),
                }
            )
        else:
            b = jnp.zeros((fan_out,), dtype)
            if bias_scale and not last:
                b = jax.random.normal(jax.random.fold_in(keys[1 + i], 1), (fan_out,), dtype) * bias_scale
            layers.append({"W": W * (last_scale if last else gain), "b": b})
    return {"C": jax.random.normal(keys[0], (vocab_size, n_embd), dtype), "layers": layers}


def init_state(params) -> dict:
    """Running statistics of every batch norm: mean 0, variance 1 (``nn.BatchNorm1d``'s start)."""
    return {"layers": [running_stats(p["bngain"]) for p in params["layers"] if "bngain" in p]}


def init(key, *, vocab_size: int, dtype=jnp.float32, **sizes):
    """``(params, state)``: :func:`init_params` and its :func:`init_state` (``{}`` without batch norm)."""
    params = init_params(key, vocab_size=vocab_size, dtype=dtype, **sizes)
    if not sizes.get("batchnorm", True):
        return params, {}
    state, momentum = init_state(params), sizes.get("momentum", MOMENTUM)
    return params, (state if momentum == MOMENTUM else {**state, "momentum": Momentum(momentum)})


@jax.tree_util.register_static
@dataclass(frozen=True)
class Momentum:
    """The running statistics' momentum where it is not ``nn.BatchNorm1d``'s 0.1: a static pytree
    node in the state (no leaves: checkpoints and the default state are unchanged)."""

    value: float


def _momentum(state) -> float:
    m = state.get("momentum") if isinstance(state, dict) else None
    return m.value if isinstance(m, Momentum) else MOMENTUM


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
                bn_state = state["layers"][len(running)]
                x, st = running_batchnorm(ly, x, p["bngain"], p["bnbias"], bn_state, _momentum(state))
                running.append(st)
                x = tap(f"l{i}.bn", x)
            if i < last:
                x = tap(f"l{i}.h", ly.tanh(x))
    return tap("logits", x), ({**state, "layers": running} if running else state)


def flops(batch: int, vocab_size: int, *, n_embd: int, n_hidden: int, block_size: int, n_blocks: int, **_) -> int:
    """FLOPs of one training step's matmuls, 3 x forward: ``2·B·fan_in·fan_out`` per layer."""
    widths = [n_embd * block_size] + [n_hidden] * n_blocks + [vocab_size]
    return 3 * sum(2 * batch * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def check_sizes(sizes) -> None:
    for k in ("batchnorm", "output_batchnorm"):
        if not isinstance(sizes[k], bool):
            raise ConfigError(f"{k.replace('_', '-')} must be true or false, got {sizes[k]!r}")


MODEL = Model(
    name="deep",
    sizes=SIZES,
    defaults={"lr_decay_step": 150_000},  # the lecture's `lr = 0.1 if i < 150000 else 0.01`, of 200,000 steps
    help={
        "": "makemore part 3's deeper network: five linear, batch norm, tanh blocks of 100 and a linear, "
        "batch norm output (47,024 parameters); for --diagnose-every",
        "n_blocks": "hidden linear, batch norm, tanh blocks",
        "batchnorm": "batch norm after every linear layer: on or off",
        "gain": "init gain of the linear weights: 5/3 is tanh's, 1 lets activations shrink",
        "last_scale": "init scale of the last layer: its batch-norm gain, or its weight without batch norm",
        "output_batchnorm": "batch norm on the output layer too (off: an output bias, the lecture's BatchNorm MLP)",
        "momentum": "the running statistics' momentum (nn.BatchNorm1d's 0.1; the lecture's BatchNorm MLP 0.001)",
        "bias_scale": "init scale of the hidden biases without batch norm, N(0, 1)·s (0: zeros; lecture's b1 0.01)",
    },
    size_ranges={"momentum": (0.0, 1.0), "bias_scale": (0.0, 1e6)},
    init=init,
    forward=forward,
    probes=lambda name: name.endswith(".h"),
    flops=flops,
    min_batch=2,
    check_sizes=check_sizes,
)
