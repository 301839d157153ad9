"""Sampling from a trained model: names (eval-mode batch norm), as the lecture's sampling cell, and
text from a GPT, as nanoGPT's ``sample.py``.

Names are drawn a batch of contexts at a time: one ``lax.while_loop`` over positions that stops when
every name of the batch has ended, each step one uniform per name (:func:`categorical`). A name ends
at the first ``'.'``; ``max_len`` caps a model that never says ``'.'``.
Text is drawn one character per compiled call (:func:`generate_text`), so it streams.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..data import Vocab
from ..errors import ConfigError

SAMPLE_CHUNK = 16384
"""Names drawn per compiled call: ``-n`` is bounded by time, not by memory (16,384 names of at most
``max_len`` ids each). The first batch uses the key itself (so the first 16,384 names are those of one
call), batch ``i`` uses ``fold_in(key, i)``. Larger batches pay little more: ~196k names/s at 16,384,
~172k at 4,096 (the notebook's MLP, this 2-core CPU)."""
MAX_LEN_LIMIT = 10_000
GUMBEL_CHUNK = 4096
"""The batch of ``draw="gumbel"``: bpjax 0.1.0's, so a seed gives 0.1.0's names beyond the first 4,096 too."""
DRAWS = ("inverse-cdf", "gumbel")
"""How a character is drawn from its distribution: ``inverse-cdf`` (:func:`categorical`, one uniform
per name and step; the default) or ``gumbel`` (``jax.random.categorical``, a Gumbel per vocabulary
entry: bpjax 0.1.0's draws, the same names for a seed, at about a third of the speed)."""


def categorical(key, logits) -> jax.Array:
    """One draw per row of ``logits`` [n, V] -> ids [n] int32: the first ``i`` whose cumulative
    probability ``c_i = Σ_{j<=i} softmax(logits)_j`` exceeds ``u ~ U[0, 1)`` (the inverse of the CDF).
    The same distribution as ``jax.random.categorical``, from one uniform per row where it draws one
    Gumbel per entry (``V`` times the random bits: four times the forward of the notebook's MLP).
    A draw depends only on its row's number, so the first rows of a larger batch are a smaller one's."""
    c = jnp.cumsum(jnp.exp(logits - logits.max(axis=-1, keepdims=True)), axis=-1)
    u = jax.random.uniform(key, (logits.shape[0], 1), dtype=c.dtype)
    return jnp.sum(c < u * c[:, -1:], axis=-1).astype(jnp.int32)


def _until_every_row_ends(draw, first, n: int, steps: int):
    """Run ``draw(t, carry) -> (carry, ids [n])`` for ``t = 0, 1, ...`` until every row has drawn
    the end token 0 or ``steps`` draws are made: ids ``[n, steps]``, zeros past the last draw (a row
    ends at its first 0, so what follows does not matter). A batch costs its longest name, not ``steps``."""

    def cond(c):
        t, _, _, done = c
        return (t < steps) & ~jnp.all(done)

    def body(c):
        t, carry, ids, done = c
        carry, ix = draw(t, carry)
        return t + 1, carry, jax.lax.dynamic_update_index_in_dim(ids, ix, t, axis=0), done | (ix == 0)

    start = (jnp.int32(0), first, jnp.zeros((steps, n), jnp.int32), jnp.zeros((n,), bool))
    return jax.lax.while_loop(cond, body, start)[2].T


def _drawer(draw: str):
    if draw == "gumbel":
        return lambda key, logits: jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
    return categorical


@partial(jax.jit, static_argnames=("logits_eval", "n", "block_size", "max_len", "draw"))
def _sample_ids(logits_eval, params, bn_stats, key, *, n: int, block_size: int, max_len: int, draw: str):
    """Token ids ``[n, max_len]``: each row is a name followed by ``0`` ('.') and anything after.
    Draw ``t``'s key is ``split(key, max_len)[t]``."""
    keys = jax.random.split(key, max_len)

    def step(t, context):
        ix = _drawer(draw)(keys[t], logits_eval(params, bn_stats, context))
        return jnp.concatenate([context[:, 1:], ix[:, None]], axis=1), ix

    return _until_every_row_ends(step, jnp.zeros((n, block_size), jnp.int32), n, max_len)


@partial(jax.jit, static_argnames=("logits_eval", "n", "T", "draw"))
def _sample_sequence_ids(logits_eval, params, stats, key, *, n: int, T: int, draw: str):
    """Token ids ``[n, T]`` from a sequence model (``logits_eval``: ``X`` [n, T] -> [n, T, V]):
    ``X`` starts as the start token 0; step ``t`` samples from position ``t``'s logits and writes
    the token at ``t + 1``. Causal models see only positions ``<= t``, so the zeros ahead do not matter."""
    keys = jax.random.split(key, T)

    def step(t, X):
        logits = jax.lax.dynamic_index_in_dim(logits_eval(params, stats, X), t, axis=1, keepdims=False)
        ix = _drawer(draw)(keys[t], logits)
        return jax.lax.dynamic_update_index_in_dim(X, ix, jnp.minimum(t + 1, T - 1), axis=1), ix

    return _until_every_row_ends(step, jnp.zeros((n, T), jnp.int32), n, T)


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
    draw: str = "inverse-cdf",
):
    """:func:`sample_names` in batches of :data:`SAMPLE_CHUNK` (:data:`GUMBEL_CHUNK` for
    ``draw="gumbel"``), yielding names as each batch is drawn. The next batch is drawn on the device
    while this one is decoded and written (JAX's asynchronous dispatch), so a huge ``n`` streams at
    the sampler's speed, one batch ahead and no more in memory."""
    if not 1 <= max_len <= MAX_LEN_LIMIT:
        raise ConfigError(f"max-len must be between 1 and {MAX_LEN_LIMIT:,}, got {max_len}")
    key = jax.random.key(0) if key is None else key
    starts = range(0, n, GUMBEL_CHUNK if draw == "gumbel" else SAMPLE_CHUNK)

    def dispatch(i):
        k = key if i == 0 else jax.random.fold_in(key, i)
        size = min(starts.step, n - starts[i])
        return _draw_ids(logits_eval, params, bn_stats, block_size, size, k, max_len, layout, draw)

    ahead = dispatch(0) if starts else None
    for i in range(len(starts)):
        ids, ahead = ahead, dispatch(i + 1) if i + 1 < len(starts) else None
        yield from decode_names(np.asarray(ids), vocab)


def _draw_ids(logits_eval, params, bn_stats, block_size, n, key, max_len, layout, draw) -> jax.Array:
    """One batch's ids on the device: ``[n, <= max_len]`` (not yet waited for)."""
    if draw not in DRAWS:
        raise ConfigError(f"draw must be one of {', '.join(DRAWS)}, got {draw!r}")
    if layout == "sequences":
        return _sample_sequence_ids(logits_eval, params, bn_stats, key, n=n, T=block_size, draw=draw)[:, :max_len]
    return _sample_ids(logits_eval, params, bn_stats, key, n=n, block_size=block_size, max_len=max_len, draw=draw)


def decode_names(ids: np.ndarray, vocab: Vocab) -> list[str]:
    """Rows of ids ``[n, m]`` -> ``n`` names: each row up to its first ``0`` as ``'.'``, or all ``m``
    characters and ``'…'`` where it has none. One vectorised pass where every character is one byte
    (names.txt's), a loop over the rows otherwise."""
    n, m = ids.shape
    hit = ids == 0
    ended = hit.any(axis=1)
    end = np.where(ended, hit.argmax(axis=1), m)  # a name's length, its '.' not counted
    chars = "".join(vocab.itos)
    if not chars.isascii() or len(chars) != vocab.size or "\n" in chars or "\0" in chars:
        return [vocab.decode(r[:e]) + ("." if d else "…") for r, e, d in zip(ids, end, ended, strict=True)]
    table = np.frombuffer(("." + chars[1:]).encode("ascii"), np.uint8)  # the end token written as '.'
    out = np.empty((n, m + 2), np.uint8)
    out[:, :m] = table[ids]
    out[:, m] = 0  # the mark of a cut name, '…' below
    out[:, m + 1] = ord("\n")
    j = np.arange(m + 2)
    keep = (j <= end[:, None]) & (j < m)  # the name and its '.'
    keep |= (j == m) & ~ended[:, None]
    keep[:, m + 1] = True
    text = out[keep].tobytes().decode("ascii").replace("\0", "…")
    return text.split("\n")[:-1]


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
    draw: str = "inverse-cdf",
) -> list[str]:
    """``n`` names, each ending in ``'.'`` (or cut at ``max_len`` characters, marked ``'…'``).

    ``logits_eval(params, bn_stats, X)``: the model's eval-mode logits (``mlp.logits_eval``).
    ``layout``: the model's data layout; a sequence model writes at most ``block_size`` characters
    (its T: the longest word + 1). ``draw``: one of :data:`DRAWS`.
    """
    key = jax.random.key(0) if key is None else key
    return decode_names(
        np.asarray(_draw_ids(logits_eval, params, bn_stats, block_size, n, key, max_len, layout, draw)), vocab
    )


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
