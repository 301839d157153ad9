"""Names to arrays: the words checked, the vocabulary, the notebook's split, makemore's layout."""

import random

import numpy as np
import pytest

from bpjax.data import DataError, Vocab, build_dataset, load_words, make_sequences, make_splits
from conftest import write


def test_strips_bom_crlf_whitespace_and_blank_lines(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbfemma\r\n  olivia \r\n\r\n\n\tava\n")
    assert load_words(p) == ["emma", "olivia", "ava"]


def test_non_ascii_words_are_fine(tmp_path):
    p = write(tmp_path, "zoë\njosé\n".encode())
    assert load_words(p) == ["zoë", "josé"]


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"", "no words"),
        (b"\n  \r\n\n", "no words"),
        (b"emma\nol\xffivia\n", "line 2 is not valid UTF-8"),
        (b"emma\n\x00\x01\x02\x03\n", "line 2 contains the control character"),
        (b"emma\nmr.smith\n", "line 2"),
    ],
)
def test_bad_files(tmp_path, payload, needle):
    with pytest.raises(DataError, match=needle) as e:
        load_words(write(tmp_path, payload))
    assert "\n" not in str(e.value)


def test_dot_is_reserved(tmp_path):
    with pytest.raises(DataError, match="reserved"):
        load_words(write(tmp_path, b"a.b\n"))


def test_vocab_on_any_character_set():
    v = Vocab.from_words(["ba", "cab", "zoë"])
    assert v.itos == (".", "a", "b", "c", "o", "z", "ë")
    assert v.size == 7 and v.stoi["."] == 0 and v.stoi["a"] == 1
    assert v.decode(v.encode("zoë")) == "zoë"
    with pytest.raises(DataError, match="'q'"):
        v.encode("qa")
    with pytest.raises(DataError, match="outside"):
        v.decode([7])
    assert Vocab.from_json(v.to_json()) == v


def test_vocab_json_malformed():
    with pytest.raises(DataError, match="malformed"):
        Vocab.from_json({"itos": [".", "ab"]})


def test_splits_on_names(names_splits):
    words, vocab, s = names_splits
    assert vocab.size == 27 and vocab.itos[1] == "a" and vocab.itos[26] == "z"
    assert s["train"][0].shape == (182625, 3) and s["train"][1].shape == (182625,)
    assert s["val"][0].shape == (22655, 3) and s["test"][0].shape == (22866, 3)
    assert all(a.dtype == np.int32 for xy in s.values() for a in xy)


def test_splits_shuffle_as_the_notebook():
    words = [f"w{''.join(chr(97 + int(d)) for d in str(i))}" for i in range(100)]
    vocab = Vocab.from_words(words)
    expected = list(words)
    random.seed(42)
    random.shuffle(expected)
    s = make_splits(words, vocab, block_size=2)
    X, Y = build_dataset(expected[:80], vocab, 2)
    np.testing.assert_array_equal(s["train"][0], X)
    np.testing.assert_array_equal(s["train"][1], Y)
    assert words[0] == "wa"  # the caller's list is untouched


def test_build_dataset_contexts():
    v = Vocab.from_words(["ab"])
    X, Y = build_dataset(["ab"], v, block_size=3)
    assert X.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2]] and Y.tolist() == [1, 2, 0]


def test_sequences_layout():
    words = ["emma", "ava", "x", "olivia", "mia", "bo", "zoe", "ann", "li", "kai"]
    v = Vocab.from_words(words)
    s = make_sequences(words, v, seed=1)
    X, Y = s["train"]
    assert X.dtype == Y.dtype == np.int32 and X.shape[1] == Y.shape[1] == 7  # "olivia" + 1
    for x, y in zip(X, Y, strict=True):
        n = int((y >= 0).sum()) - 1  # the word's length
        word = v.decode(y[:n])
        assert x[0] == 0 and list(x[1 : n + 1]) == list(y[:n]) and (x[n + 1 :] == 0).all()
        assert y[n] == 0 and (y[n + 1 :] == -1).all() and word in words


def test_sequences_use_the_notebook_word_split(names_splits):
    words, vocab, windows = names_splits
    seqs = make_sequences(words, vocab)
    assert seqs["train"][0].shape == (25626, 16)
    for k in ("train", "val", "test"):
        # every split predicts the same characters: the windows' targets are the sequences' real ones
        X, Y = seqs[k]
        assert int((Y >= 0).sum()) == len(windows[k][1])
        assert np.array_equal(np.sort(Y[Y >= 0]), np.sort(windows[k][1]))


def test_windows_and_sequences_split_the_same_words(names_splits):
    words, vocab, _ = names_splits
    w = make_splits(words[:50], vocab, block_size=2)
    s = make_sequences(words[:50], vocab)
    assert len(w["val"][1]) == int((s["val"][1] >= 0).sum())


def test_a_tab_inside_a_name_is_called_a_tab(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text("anna\nbob\tby\n")
    with pytest.raises(DataError, match="line 2 .* contains a tab"):
        load_words(p)
