"""A run's data: the file read once, its vocabulary and its splits in the model's layout.

Three layouts (``Model.data``):

* ``"windows"``: the notebook's context windows of names (``X`` [N, block_size], ``Y`` [N]);
* ``"sequences"``: makemore's padded names (``X``, ``Y`` [N, T], ``-1`` targets masked), T the data's;
* ``"text"``: a character stream (nanoGPT's): training draws windows from the train stream,
  evaluation covers each split's consecutive windows (:mod:`bpjax.data.text`).
"""

from __future__ import annotations

from ..errors import CheckpointError, DataError
from ..io import host_memory_available
from .files import read_data
from .names import Vocab, make_sequences, make_splits, parse_words
from .text import make_text_splits, parse_text

LAYOUTS = ("windows", "sequences", "text")


def make_dataset(words, vocab: Vocab, *, layout: str = "windows", block_size: int | None = None,
                 seed: int = 42) -> dict:
    """The splits of a names layout: ``"windows"`` (:func:`make_splits` with ``block_size``) or
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
    raise DataError(f"unknown data layout {layout!r}; one of {', '.join(LAYOUTS)}")


def training_arrays(splits: dict):
    """What a run's training batches are drawn from: the train split's rows ``(X, Y)``, or a text's
    train stream twice (its windows give both the contexts and the next characters)."""
    if "train_ids" in splits:
        return splits["train_ids"], splits["train_ids"]
    return splits["train"]


def split_names(splits: dict) -> tuple[str, ...]:
    """The splits a run evaluates: train, val and test (names); train and val (a text)."""
    return tuple(k for k in ("train", "val", "test") if k in splits)


def load_dataset(path=None, *, block_size: int | None, split_seed: int = 42, layout: str = "windows",
                 expect_sha: str | None = None, source: str = "--data"):
    """The data file, its vocabulary and its splits, as a run trains on them.

    ``layout``: the model's data layout (:data:`LAYOUTS`); a text's default file is tiny Shakespeare,
    the others' names.txt. ``expect_sha``: the SHA-256 a resumed run trained on; another file is an
    error. Returns ``(vocab, splits, info)``, ``info = {"path", "sha256", "words" or "characters",
    "block_size"}`` (the rows' context length: ``block_size`` for windows and text, the data's T for
    sequences).
    """
    dataset = "shakespeare" if layout == "text" else "names"
    p, raw, sha = read_data(path, dataset=dataset, source=source)
    if expect_sha is not None and sha != expect_sha:  # checked before a line of it is parsed or echoed
        raise CheckpointError(
            f"data file {str(p)!r} is not the one this run trained on "
            f"(SHA-256 {sha[:12]}…, the run's {expect_sha[:12]}…); pass the original with --data"
        )
    info = {"path": str(p), "sha256": sha}
    if layout == "text":
        text = parse_text(raw, p)
        vocab = Vocab.from_text(text)
        splits = make_text_splits(text, vocab, block_size, name=repr(str(p)))
        return vocab, splits, {**info, "characters": len(text), "block_size": int(block_size)}
    words = parse_words(raw, p)
    if len(words) < 10:
        raise DataError(f"{str(p)!r} has {len(words):,} words; the 80/10/10 split needs at least 10")
    vocab = Vocab.from_words(words)
    splits = make_dataset(words, vocab, layout=layout, block_size=block_size, seed=split_seed)
    return vocab, splits, {**info, "words": len(words), "block_size": int(splits["train"][0].shape[1])}


def describe(info: dict) -> str:
    """``"32,033 words"`` or ``"1,115,394 characters"``: a data file's size, for banners."""
    return f"{info['words']:,} words" if "words" in info else f"{info['characters']:,} characters"
