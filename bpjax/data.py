"""Data: names file -> words -> Vocab -> (X, Y) splits.

The notebook's "Dataset Creation" section, as pure functions::

    words = load_words()                       # open('data/names.txt').read().splitlines()
    vocab = Vocab.from_words(words)            # stoi / itos, '.' = 0
    splits = make_splits(words, vocab)         # random.seed(42); random.shuffle; 80/10/10

Every way a file can be wrong raises :class:`bpjax.errors.DataError` with a one-line message.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import stat
import unicodedata
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .io import atomic_write_bytes, host_memory_available

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
BOUNDARY = "."  # the reserved start/end token, index 0

_REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bpjax`` or ``~/.cache/bpjax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpjax"


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_data_path(path: str | os.PathLike | None = None, *, download: bool = True, source: str = "--data") -> Path:
    """Find the names file.

    Order: ``path`` (the CLI's ``--data``), else ``$BPJAX_DATA``; a path given either way must
    exist. With neither: ``data/names.txt`` in the working directory, then in the repository root
    of an editable install, then ``~/.cache/bpjax/names.txt``, else download it into the cache
    (checking its SHA-256).
    """
    given, source = (path, source) if path is not None else (os.environ.get("BPJAX_DATA"), "BPJAX_DATA")
    if given:
        p = Path(given).expanduser()
        if p.is_symlink() and not p.exists():
            try:
                p.resolve(strict=True)
            except RuntimeError:  # Python < 3.13
                raise DataError(f"data file {str(p)!r} (from {source}) is a symlink loop") from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise DataError(f"data file {str(p)!r} (from {source}) is a symlink loop") from None
                raise DataError(
                    f"data file {str(p)!r} (from {source}) is a broken symlink (to {os.readlink(p)!r})"
                ) from None
        if not p.exists():
            raise DataError(
                f"data file {str(p)!r} (from {source}) does not exist; pass the path of a names file, one word per line"
            )
        return p
    candidates = [Path.cwd() / "data" / "names.txt", _REPO_ROOT / "data" / "names.txt", cache_dir() / "names.txt"]
    for p in candidates:
        if p.is_file():
            return p
    if download:
        return download_names(cache_dir() / "names.txt")
    raise DataError("names.txt not found; put it in data/names.txt, or pass --data PATH, or set BPJAX_DATA")


def download_names(dest: Path, url: str = NAMES_URL, sha256: str = NAMES_SHA256) -> Path:
    """Download names.txt to ``dest`` atomically, checking its SHA-256."""
    how = f"download {url} yourself and save it as data/names.txt, or pass --data PATH"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            payload = r.read()
    except Exception as e:  # no network, DNS, HTTP error: all say the same thing to the user
        raise DataError(
            f"names.txt not found locally and the download failed ({e.__class__.__name__}: {e}); {how}"
        ) from None
    got = hashlib.sha256(payload).hexdigest()
    if got != sha256:
        raise DataError(f"downloaded names.txt has SHA-256 {got}, expected {sha256}; {how}")
    atomic_write_bytes(dest, payload)
    return dest


MAX_DATA_BYTES = 256 * 2**20
"""The largest names file read (256 MiB; names.txt is 228 kB): a device such as /dev/zero, or a
wrong path to a huge file, is refused rather than read without end."""


def read_data(path: str | os.PathLike | None = None) -> tuple[Path, bytes, str]:
    """``(path, bytes, sha256)``: the names file read once, hashed as read. Pipes, FIFOs and
    /dev/stdin work (their bytes are what is hashed and parsed); a directory, an unreadable file or
    one over :data:`MAX_DATA_BYTES` is a :class:`DataError`."""
    p = resolve_data_path(path)
    if p.is_dir():
        raise DataError(f"data path {str(p)!r} is a directory; pass the names file inside it")
    try:
        if stat.S_ISFIFO(os.stat(p).st_mode):  # a FIFO or a pipe (/dev/stdin): no writer is EOF, not a hang
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb")
        else:
            f = open(p, "rb")
        with f:
            raw = f.read(MAX_DATA_BYTES + 1)
    except OSError as e:
        raise DataError(f"cannot read data file {str(p)!r}: {e.strerror}") from None
    if len(raw) > MAX_DATA_BYTES:
        raise DataError(
            f"data file {str(p)!r} is larger than {MAX_DATA_BYTES // 2**20} MiB; "
            "a names file is one short word per line"
        )
    return p, raw, hashlib.sha256(raw).hexdigest()


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
    """Characters <-> integers: ``'.'`` is 0, the other characters sorted from 1.

    On names.txt: ``'.'`` = 0, ``'a'`` = 1 ... ``'z'`` = 26, ``size`` = 27.
    """

    itos: tuple[str, ...]
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.itos or self.itos[0] != BOUNDARY:
            raise DataError("a vocabulary must start with the boundary token '.'")
        if len(set(self.itos)) != len(self.itos):
            raise DataError("a vocabulary must not repeat a character")
        object.__setattr__(self, "stoi", {c: i for i, c in enumerate(self.itos)})

    @classmethod
    def from_words(cls, words) -> Vocab:
        chars = sorted(set("".join(words)) - {BOUNDARY})
        return cls((BOUNDARY, *chars))

    @property
    def size(self) -> int:
        return len(self.itos)

    def encode(self, s: str) -> list[int]:
        try:
            return [self.stoi[c] for c in s]
        except KeyError as e:
            raise DataError(
                f"character {e.args[0]!r} in {s!r} is not in the vocabulary ({self.size} symbols)"
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
        return {"itos": list(self.itos)}

    @classmethod
    def from_json(cls, obj) -> Vocab:
        try:
            itos = obj["itos"]
            if not isinstance(itos, list) or not all(isinstance(c, str) and len(c) == 1 for c in itos):
                raise TypeError
        except (KeyError, TypeError):
            raise DataError('vocab.json is malformed: expected {"itos": [one character per index]}') from None
        return cls(tuple(itos))


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


def make_dataset(
    words, vocab: Vocab, *, layout: str = "windows", block_size: int | None = None, seed: int = 42
) -> dict:
    """The splits of a data layout: ``"windows"`` (:func:`make_splits` with ``block_size``) or
    ``"sequences"`` (:func:`make_sequences`; their length is the data's)."""
    if layout == "windows":
        rows, have = sum(len(w) + 1 for w in words), host_memory_available()
        need = rows * block_size * 12  # the windows as Python lists (8-byte slots), then int32
        if have is not None and need > have:
            raise DataError(
                f"--block-size {block_size:,} makes {rows:,} windows of {block_size:,} ids "
                f"({need / 2**30:,.1f} GiB), more than the {have / 2**30:,.1f} GiB available; "
                "use a smaller --block-size"
            )
        return make_splits(words, vocab, block_size=block_size, seed=seed)
    if layout == "sequences":
        return make_sequences(words, vocab, seed=seed)
    raise DataError(f"unknown data layout {layout!r}")


def load_dataset(
    path=None,
    *,
    block_size: int | None,
    split_seed: int = 42,
    layout: str = "windows",
    expect_sha: str | None = None,
    source: str = "--data",
):
    """The names file, its vocabulary and its splits, as a run trains on them.

    ``layout``: the model's data layout (see :func:`make_dataset`).
    ``expect_sha``: the SHA-256 a resumed run trained on; another file is an error.
    Returns ``(vocab, splits, info)``, ``info = {"path", "sha256", "words", "block_size"}`` (the
    rows' context length: ``block_size`` for windows, the data's T for sequences).
    """
    p, raw, sha = read_data(resolve_data_path(path, source=source))  # one read: hashed and parsed bytes
    if expect_sha is not None and sha != expect_sha:  # checked before a line of it is parsed or echoed
        from .errors import CheckpointError

        raise CheckpointError(
            f"data file {str(p)!r} is not the one this run trained on "
            f"(SHA-256 {sha[:12]}…, the run's {expect_sha[:12]}…); pass the original with --data"
        )
    words = parse_words(raw, p)
    if len(words) < 10:
        raise DataError(f"{str(p)!r} has {len(words)} words; the 80/10/10 split needs at least 10")
    vocab = Vocab.from_words(words)
    splits = make_dataset(words, vocab, layout=layout, block_size=block_size, seed=split_seed)
    info = {"path": str(p), "sha256": sha, "words": len(words), "block_size": int(splits["train"][0].shape[1])}
    return vocab, splits, info
