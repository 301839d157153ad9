"""Sampling names from a trained model (eval-mode batch norm), as the lecture's sampling cell.

All ``n`` names are drawn at once: one ``lax.scan`` over positions, each step a batch of ``n``
contexts. A name ends at the first ``'.'``; ``max_len`` caps a model that never says ``'.'``.
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
