"""A text as one character stream: its vocabulary, nanoGPT's 90/10 split, the evaluation windows,
and every bad input as one line."""

import numpy as np
import pytest

from bpjax.data import DataError, Vocab, encode_text, load_text, make_text_splits, text_rows
from conftest import assert_one_line_error, run_cli, write


def test_tiny_shakespeare_is_nanogpts_shakespeare_char(shakespeare_path):
    """The numbers nanoGPT's prepare.py prints: 1,115,394 characters, 65 of them, 1,003,854 train ids
    and 111,540 val ids."""
    text = load_text(shakespeare_path)
    vocab = Vocab.from_text(text)
    assert len(text) == 1_115_394 and vocab.size == 65 and vocab.kind == "text"
    assert "".join(vocab.itos) == "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    s = make_text_splits(text, vocab, block_size=64)
    assert s["train_ids"].shape == (1_003_854,) and s["train_ids"].dtype == np.int32
    Xv, Yv = s["val"]
    assert int((Yv >= 0).sum()) == 111_540 - 1  # every val character but the first is a target once
    assert vocab.decode(s["train_ids"][:14]) == "First Citizen:"


def test_encoding_is_the_vocabulary_and_a_stranger_is_named():
    v = Vocab.from_text("hello, wörld\n")
    ids = encode_text("wörld", v)
    assert ids.dtype == np.int32 and v.decode(ids) == "wörld"
    with pytest.raises(DataError, match="'z'"):
        encode_text("zoo", v)
    assert Vocab.from_json(v.to_json()) == v and v.to_json()["kind"] == "text"


def test_eval_rows_predict_each_character_once_from_its_window():
    ids = np.arange(1, 12, dtype=np.int32)  # 11 characters: 10 targets
    X, Y = text_rows(ids, block_size=4)
    assert X.shape == Y.shape == (3, 4)
    assert Y.ravel()[:10].tolist() == list(range(2, 12)) and (Y.ravel()[10:] == -1).all()
    assert X.ravel()[:10].tolist() == list(range(1, 11))
    # a window's position t sees the t + 1 characters before its target, from the window's start
    assert X[1, 0] == Y[0, -1] and X[2, :2].tolist() == [9, 10]


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"", "holds no text"),
        (b"\n \n\t", "holds no text"),
        (b"to be\nor not \xff\xfe", "line 2 is not valid UTF-8"),
        (b"PK\x03\x04\x00\x00binary", "control character"),
    ],
)
def test_bad_texts(tmp_path, payload, needle):
    with pytest.raises(DataError, match=needle) as e:
        load_text(write(tmp_path, payload, "t.txt"))
    assert "\n" not in str(e.value)


def test_a_split_shorter_than_a_window_says_what_to_change():
    text = "abcdefghij" * 10  # 100 characters: val is 10
    v = Vocab.from_text(text)
    assert make_text_splits(text, v, block_size=8)["val"][0].shape == (2, 8)
    with pytest.raises(DataError, match="val split .* 10 characters, fewer than one window of block-size \\+ 1 = 11"):
        make_text_splits(text, v, block_size=10)


def test_the_cli_says_it_in_one_line(tmp_path):
    short = write(tmp_path, b"to be or not to be\n" * 5, "short.txt")
    res = run_cli("train", "--model", "gpt", "--data", str(short), "--steps", "1", "--out", str(tmp_path / "r"))
    assert_one_line_error(res, "fewer than one window")
    empty = write(tmp_path, b"", "empty.txt")
    assert_one_line_error(run_cli("check", "--model", "gpt", "--data", str(empty)), "holds no text")
    assert not (tmp_path / "r").exists()
