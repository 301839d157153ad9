"""Names to arrays: the file read once and checked, the vocabulary, the notebook's split, makemore's layout."""

import hashlib
import json
import os
import random

import numpy as np
import pytest

from bpjax import data
from bpjax.data import DataError, Vocab, load_words, make_sequences, make_splits
from conftest import assert_one_line_error, run_cli


def write(tmp_path, payload: bytes, name="words.txt"):
    p = tmp_path / name
    p.write_bytes(payload)
    return p


# --- load_words: what is dropped -------------------------------------------------------------
def test_strips_bom_crlf_whitespace_and_blank_lines(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbfemma\r\n  olivia \r\n\r\n\n\tava\n")
    assert load_words(p) == ["emma", "olivia", "ava"]


def test_non_ascii_words_are_fine(tmp_path):
    p = write(tmp_path, "zoë\njosé\n".encode())
    assert load_words(p) == ["zoë", "josé"]


# --- load_words: every bad input is one DataError with a one-line message -------------------
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


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_words(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        load_words(tmp_path)


# --- path resolution ------------------------------------------------------------------------
def test_env_var_is_used_and_a_missing_one_is_an_error(tmp_path, monkeypatch):
    p = write(tmp_path, b"anna\n")
    monkeypatch.setenv("BPJAX_DATA", str(p))
    assert load_words() == ["anna"]
    monkeypatch.setenv("BPJAX_DATA", str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="BPJAX_DATA"):
        load_words()


def test_argument_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BPJAX_DATA", str(write(tmp_path, b"env\n", "env.txt")))
    assert load_words(write(tmp_path, b"arg\n", "arg.txt")) == ["arg"]


def test_working_directory_comes_first(tmp_path, monkeypatch):
    monkeypatch.delenv("BPJAX_DATA", raising=False)
    (tmp_path / "data").mkdir()
    write(tmp_path / "data", b"cwd\n", "names.txt")
    monkeypatch.chdir(tmp_path)
    assert load_words() == ["cwd"]


def _no_local_copies(tmp_path, monkeypatch):
    monkeypatch.delenv("BPJAX_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "_REPO_ROOT", tmp_path / "no-repo")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_download_checks_sha256(tmp_path, monkeypatch):
    _no_local_copies(tmp_path, monkeypatch)
    payload = b"emma\nolivia\n"

    class Resp:
        def __init__(self, b):
            self.b = b

        def read(self):
            return self.b

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Resp(payload))
    with pytest.raises(DataError, match="SHA-256"):
        load_words()
    assert not (tmp_path / "cache" / "bpjax" / "names.txt").exists()
    monkeypatch.setattr(data, "NAMES_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(data.download_names, "__defaults__", (data.NAMES_URL, data.NAMES_SHA256))
    assert load_words() == ["emma", "olivia"]
    assert (tmp_path / "cache" / "bpjax" / "names.txt").read_bytes() == payload
    # and the cache is found next time without the network
    monkeypatch.setattr(data.urllib.request, "urlopen", None)
    assert load_words() == ["emma", "olivia"]


def test_download_failure_says_how_to_get_the_file(tmp_path, monkeypatch):
    _no_local_copies(tmp_path, monkeypatch)

    def offline(url, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="data/names.txt"):
        load_words()


# --- Vocab ----------------------------------------------------------------------------------
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


# --- splits ---------------------------------------------------------------------------------
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
    X, Y = data.build_dataset(expected[:80], vocab, 2)
    np.testing.assert_array_equal(s["train"][0], X)
    np.testing.assert_array_equal(s["train"][1], Y)
    assert words[0] == "wa"  # the caller's list is untouched


def test_build_dataset_contexts():
    v = Vocab.from_words(["ab"])
    X, Y = data.build_dataset(["ab"], v, block_size=3)
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


def test_a_symlink_loop_is_called_a_loop(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(DataError, match="symlink loop"):
        load_words(a)
    dangling = tmp_path / "d"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match="broken symlink"):
        load_words(dangling)


def test_data_from_stdin_is_hashed_as_read_and_a_resume_on_other_words_is_refused(names_path, tmp_path):
    import hashlib

    raw = names_path.read_bytes()
    run = tmp_path / "r"
    res = run_cli(
        "train",
        "--data",
        "/dev/stdin",
        "--n-hidden",
        "8",
        "--steps",
        "200",
        "--stop-at",
        "100",
        "--no-progress",
        "--out",
        str(run),
        input=raw.decode(),
    )
    assert res.returncode == 0, res.stderr
    info = json.loads((run / "config.json").read_text())["data"]
    assert info["sha256"] == hashlib.sha256(raw).hexdigest() and info["words"] == len(raw.decode().split())
    other = run_cli("train", "--resume", str(run), input="anna\nbob\n" * 20)
    assert_one_line_error(other, "not the one this run trained on")


def test_a_fifo_without_a_writer_and_an_endless_device_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(run_cli("check", "--data", str(fifo), timeout=60), "holds no words")
    assert_one_line_error(run_cli("check", "--data", "/dev/zero", timeout=60), "larger than")
