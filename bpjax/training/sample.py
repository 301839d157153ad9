"""Sampling from a trained model: names (eval-mode batch norm), as the lecture's sampling cell, and
text from a GPT, as nanoGPT's ``sample.py``.

All ``n`` names are drawn at once: one ``lax.scan`` over positions, each step a batch of ``n``
contexts. A name ends at the first ``'.'``; ``max_len`` caps a model that never says ``'.'``.
Text is drawn one character per compiled call (:func:`generate_text`), so it streams.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..data import Vocab
from ..errors import ConfigError

SAMPLE_CHUNK = 4096
"""Names drawn per compiled call: ``-n`` is bounded by time, not by memory. The first batch uses the
key itself (so the first 4,096 names are those of one call), batch ``i`` uses ``fold_in(key, i)``."""
MAX_LEN_LIMIT = 10_000


@partial(jax.jit, static_argnames=("logits_eval", "n", "block_size", "max_len"))
def _sample_ids(logits_eval, params, bn_stats, key, *, n: int, block_size: int, max_len: int):
    """Token ids ``[n, max_len]``: each row is a name followed by ``0`` ('.') and anything after."""

    def step(context, k):
        logits = logits_eval(params, bn_stats, context)
        ix = jax.random.categorical(k, logits, axis=-1).astype(jnp.int32)
        return jnp.concatenate([context[:, 1:], ix[:, None]], axis=1), ix

    context = jnp.zeros((n, block_size), jnp.int32)
    _, ids = jax.lax.scan(step, context, jax.random.split(key, max_len))
    return ids.T


@partial(jax.jit, static_argnames=("logits_eval", "n", "T"))
def _sample_sequence_ids(logits_eval, params, stats, key, *, n: int, T: int):
    """Token ids ``[n, T]`` from a sequence model (``logits_eval``: ``X`` [n, T] -> [n, T, V]):
    ``X`` starts as the start token 0; step ``t`` samples from position ``t``'s logits and writes
    the token at ``t + 1``. Causal models see only positions ``<= t``, so the zeros ahead do not matter."""

    def step(X, tk):
        t, k = tk
        logits = jax.lax.dynamic_index_in_dim(logits_eval(params, stats, X), t, axis=1, keepdims=False)
        ix = jax.random.categorical(k, logits, axis=-1).astype(jnp.int32)
        X = jax.lax.dynamic_update_index_in_dim(X, ix, jnp.minimum(t + 1, T - 1), axis=1)
        return X, ix

    X = jnp.zeros((n, T), jnp.int32)
    _, ids = jax.lax.scan(step, X, (jnp.arange(T), jax.random.split(key, T)))
    return ids.T


def iter_sample_names(
    logits_eval,
    params,
    bn_stats,
    vocab: Vocab,
    block_size: int,
    *,
    n: int = 20,
    key=None,
    max_len: int = 50,
    layout: str = "windows",
):
    """:func:`sample_names` in batches of :data:`SAMPLE_CHUNK`, yielding names as each is drawn."""
    if not 1 <= max_len <= MAX_LEN_LIMIT:
        raise ConfigError(f"max-len must be between 1 and {MAX_LEN_LIMIT:,}, got {max_len}")
    key = jax.random.key(0) if key is None else key
    for i, start in enumerate(range(0, n, SAMPLE_CHUNK)):
        yield from sample_names(
            logits_eval,
            params,
            bn_stats,
            vocab,
            block_size,
            n=min(SAMPLE_CHUNK, n - start),
            key=key if i == 0 else jax.random.fold_in(key, i),
            max_len=max_len,
            layout=layout,
        )


def sample_names(
    logits_eval,
    params,
    bn_stats,
    vocab: Vocab,
    block_size: int,
    *,
    n: int = 20,
    key=None,
    max_len: int = 50,
    layout: str = "windows",
) -> list[str]:
    """``n`` names, each ending in ``'.'`` (or cut at ``max_len`` characters, marked ``'…'``).

    ``logits_eval(params, bn_stats, X)``: the model's eval-mode logits (``mlp.logits_eval``).
    ``layout``: the model's data layout; a sequence model writes at most ``block_size`` characters
    (its T: the longest word + 1).
    """
    key = jax.random.key(0) if key is None else key
    if layout == "sequences":
        ids = np.asarray(_sample_sequence_ids(logits_eval, params, bn_stats, key, n=n, T=block_size))[:, :max_len]
    else:
        ids = np.asarray(_sample_ids(logits_eval, params, bn_stats, key, n=n, block_size=block_size, max_len=max_len))
    names = []
    for row in ids:
        end = np.flatnonzero(row == 0)
        names.append(vocab.decode(row[: end[0]]) + "." if len(end) else vocab.decode(row) + "…")
    return names


# --------------------------------------------------------------------------------------------
# Text (a GPT): one character at a time, the context the last block_size characters
# --------------------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("logits_eval", "top_k"))
def _next_char(logits_eval, params, stats, window, length, key, temperature, *, top_k: int | None):
    """The next id after ``window[:length]`` (``window`` [block_size] int32, ``length`` >= 1): the
    logits at position ``length - 1`` (causal: the ids after it are not seen), divided by
    ``temperature``, kept to the ``top_k`` largest, sampled."""
    logits = logits_eval(params, stats, window[None])[0, length - 1] / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][-1]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def generate_text(
    logits_eval,
    params,
    stats,
    vocab: Vocab,
    block_size: int,
    *,
    prompt: str = "\n",
    chars: int = 500,
    key=None,
    temperature: float = 1.0,
    top_k: int | None = None,
):
    """Yield ``chars`` characters that follow ``prompt``, one at a time (nanoGPT's ``generate``): each
    drawn from the model's next-character distribution given the last ``block_size`` characters,
    at ``temperature`` (> 0; below 1 sharper), among the ``top_k`` likeliest (None: all). Character
    ``i``'s key is ``fold_in(key, i)``. A prompt character outside the vocabulary is a :class:`ConfigError`."""
    if not prompt:
        raise ConfigError("the prompt is empty; give at least one character (nanoGPT's default is a newline)")
    if not (isinstance(temperature, (int, float)) and temperature > 0 and np.isfinite(temperature)):
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}")
    if top_k is not None and not 1 <= top_k <= vocab.size:
        raise ConfigError(f"top-k must be between 1 and the vocabulary's {vocab.size}, got {top_k}")
    if chars < 0:
        raise ConfigError(f"chars must be >= 0, got {chars}")
    unknown = sorted(set(prompt) - set(vocab.itos))
    if unknown:
        raise ConfigError(f"the prompt's character {unknown[0]!r} is not in the run's vocabulary of {vocab.size}")
    key = jax.random.key(0) if key is None else key
    ids = [vocab.stoi[c] for c in prompt][-block_size:]
    window = np.zeros(block_size, np.int32)
    window[: len(ids)] = ids
    length = len(ids)
    t = jnp.float32(temperature)
    for i in range(chars):
        ix = int(
            _next_char(
                logits_eval, params, stats, jnp.asarray(window), length, jax.random.fold_in(key, i), t, top_k=top_k
            )
        )
        if length == block_size:
            window[:-1] = window[1:]
            window[-1] = ix
        else:
            window[length] = ix
            length += 1
        yield vocab.itos[ix]
