"""A text: any UTF-8 file as one stream of characters (nanoGPT's ``shakespeare_char``).

    text = load_text("shakespeare")             # tiny Shakespeare, 1,115,394 characters
    vocab = Vocab.from_text(text)               # its sorted characters: 65
    splits = make_text_splits(text, vocab, block_size=64)

The first 90% of the characters trains and the last 10% validates (nanoGPT's ``prepare.py``; there is
no test split). Training draws random windows of ``block_size + 1`` characters from the train stream
(:func:`bpjax.training.step.sample_windows`); evaluation covers each split exactly once, as
consecutive windows of ``block_size`` targets (:func:`text_rows`): every character of the split is
predicted once, from a context of 1 to ``block_size`` characters, the same spread of contexts as
nanoGPT's estimate from ``eval_iters`` random windows, whose expectation it is; its value has no
sampling noise.
"""

from __future__ import annotations

import os
import unicodedata

import numpy as np

from ..errors import DataError
from .files import read_data
from .names import Vocab

ALLOWED_CONTROLS = "\n\r\t\f\v"
"""The control characters a text may hold; any other (a NUL, an escape) means a binary file."""


def parse_text(raw: bytes, p) -> str:
    """The characters of a text file's bytes (``p`` names it in errors): UTF-8, a leading byte-order
    mark dropped, nothing else changed. Empty, not UTF-8, or a binary file's control characters: a
    :class:`DataError` naming the line."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"data file {str(p)!r}: line {line} is not valid UTF-8 (is this a text file?)") from None
    if not text.strip():
        raise DataError(f"data file {str(p)!r} holds no text; it needs characters to model")
    bad = next((c for c in set(text) if unicodedata.category(c) == "Cc" and c not in ALLOWED_CONTROLS), None)
    if bad is not None:
        line = text[: text.index(bad)].count("\n") + 1
        raise DataError(f"data file {str(p)!r}: line {line} contains the control character {bad!r} "
                        "(is this a binary file?)")
    return text


def load_text(path: str | os.PathLike | None = None) -> str:
    """A text file's characters (default: tiny Shakespeare; ``"shakespeare"`` names it)."""
    p, raw, _ = read_data(path, dataset="shakespeare")
    return parse_text(raw, p)


def encode_text(text: str, vocab: Vocab) -> np.ndarray:
    """``text`` as int32 ids [len(text)], through a lookup table of code points (a million characters
    in a few milliseconds)."""
    cps = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    lut = np.full(max(max(ord(c) for c in vocab.itos), int(cps.max(initial=0))) + 1, -1, np.int32)
    lut[[ord(c) for c in vocab.itos]] = np.arange(vocab.size, dtype=np.int32)
    ids = lut[cps]
    if (ids < 0).any():
        c = chr(int(cps[np.argmax(ids < 0)]))
        raise DataError(f"character {c!r} of the text is not in the vocabulary ({vocab.size} symbols)")
    return ids


def text_rows(ids: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A split as consecutive windows for evaluation: ``X`` [M, T] the contexts and ``Y`` [M, T] the next
    characters, every character but the first a target exactly once; the last window's missing
    targets are ``-1`` (masked, as makemore's padding). M = ceil((len - 1) / T)."""
    T = block_size
    n = len(ids) - 1  # targets
    M = -(-n // T)
    X = np.zeros((M, T), np.int32)
    Y = np.full((M, T), -1, np.int32)
    X.reshape(-1)[:n] = ids[:-1]
    Y.reshape(-1)[:n] = ids[1:]
    return X, Y


def make_text_splits(text: str, vocab: Vocab, block_size: int, *, name: str = "the text") -> dict:
    """nanoGPT's split: the first 90% of the characters trains, the last 10% validates.

    Returns ``{"train": (X, Y), "val": (X, Y), "train_ids": ids}``: each split's evaluation rows
    (:func:`text_rows`) and the train stream (int32) that training windows are drawn from. A split
    shorter than one window of ``block_size + 1`` characters is a :class:`DataError`.
    """
    ids = encode_text(text, vocab)
    n = len(ids)
    parts = {"train": ids[: int(n * 0.9)], "val": ids[int(n * 0.9) :]}
    for k, part in parts.items():
        if len(part) < block_size + 1:
            raise DataError(f"the {k} split of {name} has {len(part):,} characters, fewer than one window of "
                            f"block-size + 1 = {block_size + 1:,}; use a smaller --block-size or a longer text")
    return {**{k: text_rows(v, block_size) for k, v in parts.items()}, "train_ids": parts["train"]}
