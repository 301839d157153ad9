"""Names: a names file -> words -> Vocab -> (X, Y) splits, the notebook's "Dataset Creation".

    words = load_words()                       # open('data/names.txt').read().splitlines()
    vocab = Vocab.from_words(words)            # stoi / itos, '.' = 0
    splits = make_splits(words, vocab)         # random.seed(42); random.shuffle; 80/10/10

Every way a file can be wrong raises :class:`bpjax.errors.DataError` with a one-line message.
"""

from __future__ import annotations

import os
import random
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .files import read_data

BOUNDARY = "."  # the reserved start/end token, index 0 (of names; a text has none)

def load_words(path: str | os.PathLike | None = None) -> list[str]:
    """Read one word per line (the notebook's ``open(...).read().splitlines()``).

    Surrounding whitespace, CRLF line ends, a UTF-8 byte-order mark and blank lines are dropped.
    Raises :class:`DataError` for a missing file, a directory, an empty file or one with no words,
    bytes that are not UTF-8 (naming the line), a control character (a binary file), or a word
    containing the reserved boundary token ``'.'``.
    """
    p, raw, _ = read_data(path)
    return parse_words(raw, p)


def parse_words(raw: bytes, p) -> list[str]:
    """The words of a names file's bytes (``p`` names it in errors); see :func:`load_words`."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    words = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(
                f"data file {str(p)!r}: line {lineno} is not valid UTF-8 (is this a text file of one word per line?)"
            ) from None
        word = text.strip()
        if not word:
            continue
        if "\t" in word:
            raise DataError(
                f"data file {str(p)!r}: line {lineno} ({word!r}) contains a tab; the file "
                "must hold one name per line, nothing else on it"
            )
        bad = next((c for c in word if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            raise DataError(
                f"data file {str(p)!r}: line {lineno} contains the control character {bad!r} (is this a binary file?)"
            )
        if BOUNDARY in word:
            raise DataError(
                f"data file {str(p)!r}: line {lineno} ({word!r}) contains '.', "
                "which is reserved for the start/end token"
            )
        words.append(word)
    if not words:
        raise DataError(f"data file {str(p)!r} holds no words; it needs one word per line")
    return words


@dataclass(frozen=True)
class Vocab:
    """Characters <-> integers. Names (``kind="names"``): ``'.'`` is 0, the boundary token that starts
    and ends every word, the other characters sorted from 1; on names.txt ``'.'`` = 0, ``'a'`` = 1 ...
    ``'z'`` = 26, ``size`` = 27. A text (``kind="text"``): its characters sorted from 0, no boundary;
    tiny Shakespeare has 65.
    """

    itos: tuple[str, ...]
    kind: str = "names"
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in ("names", "text"):
            raise DataError(f"a vocabulary is of names or of a text, got {self.kind!r}")
        if self.kind == "names" and (not self.itos or self.itos[0] != BOUNDARY):
            raise DataError("a vocabulary of names must start with the boundary token '.'")
        if not self.itos:
            raise DataError("a vocabulary needs at least one character")
        if len(set(self.itos)) != len(self.itos):
            raise DataError("a vocabulary must not repeat a character")
        object.__setattr__(self, "stoi", {c: i for i, c in enumerate(self.itos)})

    @classmethod
    def from_words(cls, words) -> Vocab:
        chars = sorted(set("".join(words)) - {BOUNDARY})
        return cls((BOUNDARY, *chars))

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The text's characters, sorted (nanoGPT's ``sorted(list(set(data)))``)."""
        return cls(tuple(sorted(set(text))), kind="text")

    @property
    def size(self) -> int:
        return len(self.itos)

    def encode(self, s: str) -> list[int]:
        try:
            return [self.stoi[c] for c in s]
        except KeyError as e:
            raise DataError(
                f"character {e.args[0]!r} in {s[:40]!r} is not in the vocabulary ({self.size} symbols)"
            ) from None

    def decode(self, ints) -> str:
        out = []
        for i in ints:
            i = int(i)
            if not 0 <= i < self.size:
                raise DataError(f"index {i} is outside the vocabulary (0..{self.size - 1})")
            out.append(self.itos[i])
        return "".join(out)

    def to_json(self) -> dict:
        return {"itos": list(self.itos)} if self.kind == "names" else {"itos": list(self.itos), "kind": self.kind}

    @classmethod
    def from_json(cls, obj) -> Vocab:
        try:
            itos = obj["itos"]
            kind = obj.get("kind", "names")
            if not isinstance(itos, list) or not all(isinstance(c, str) and len(c) == 1 for c in itos):
                raise TypeError
        except (KeyError, TypeError, AttributeError):
            raise DataError("vocab.json is malformed: expected {\"itos\": [one character per index]}") from None
        return cls(tuple(itos), kind=kind)


def build_dataset(words, vocab: Vocab, block_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's ``build_dataset``: every (context of ``block_size`` ids, next id) pair.

    Returns ``X`` int32 ``[N, block_size]`` and ``Y`` int32 ``[N]``, N = sum(len(w) + 1).
    """
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ix in vocab.encode(w) + [0]:
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return (np.asarray(X, dtype=np.int32).reshape(-1, block_size), np.asarray(Y, dtype=np.int32))


def _split_words(words, seed: int) -> dict:
    """The notebook's shuffle (``random.seed(seed); random.shuffle(words)``) and its 80/10/10 cut."""
    words = list(words)
    random.Random(seed).shuffle(words)  # the same Mersenne Twister stream as random.seed(seed)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return {"train": words[:n1], "val": words[n1:n2], "test": words[n2:]}


def build_sequences(words, vocab: Vocab, T: int) -> tuple[np.ndarray, np.ndarray]:
    """makemore's layout: one row per word. ``X`` int32 [N, T] is 0 (the start) then the word's
    indices, zero padded; ``Y`` int32 [N, T] is the word's indices, then 0 (the end), then -1 at
    every inactive position (masked out of the loss). ``T`` must be at least the longest word + 1."""
    X = np.zeros((len(words), T), np.int32)
    Y = np.full((len(words), T), -1, np.int32)
    for i, w in enumerate(words):
        ix = vocab.encode(w)
        if len(ix) + 1 > T:
            raise DataError(f"word {w!r} has {len(ix)} characters; sequences of length {T} hold at most {T - 1}")
        X[i, 1 : 1 + len(ix)] = ix
        Y[i, : len(ix)] = ix
        Y[i, len(ix)] = 0
    return X, Y


def make_sequences(words, vocab: Vocab, seed: int = 42) -> dict:
    """makemore's padded words (:func:`build_sequences`), from the same shuffled 80/10/10 word split
    as :func:`make_splits`: ``{"train", "val", "test"}`` of ``(X, Y)`` int32 [N, T], T = the longest
    word + 1 (16 on names.txt). A split's loss is the mean over its real (non -1) targets: the same
    per-character quantity as the notebook's split loss."""
    words = list(words)
    T = max(len(w) for w in words) + 1
    return {k: build_sequences(v, vocab, T) for k, v in _split_words(words, seed).items()}


def make_splits(words, vocab: Vocab, block_size: int = 3, seed: int = 42) -> dict:
    """Shuffle as the notebook does (``random.seed(seed); random.shuffle(words)``), split 80/10/10.

    Returns ``{"train": (X, Y), "val": (X, Y), "test": (X, Y)}`` of numpy int32 arrays. On
    names.txt with block_size 3: train (182625, 3), val (22655, 3), test (22866, 3). The caller's
    list is not modified, nor is the global ``random`` state.
    """
    if block_size < 1:
        raise DataError(f"block_size must be >= 1, got {block_size}")
    return {k: build_dataset(v, vocab, block_size) for k, v in _split_words(words, seed).items()}
