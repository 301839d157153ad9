import hashlib
import random

import numpy as np
import pytest

from bpjax import data
from bpjax.data import DataError, Vocab, load_words, make_splits


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
@pytest.mark.parametrize("payload, needle", [
    (b"", "no words"),
    (b"\n  \r\n\n", "no words"),
    (b"emma\nol\xffivia\n", "line 2 is not valid UTF-8"),
    (b"emma\n\x00\x01\x02\x03\n", "line 2 contains the control character"),
    (b"emma\nmr.smith\n", "line 2"),
])
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
        def __init__(self, b): self.b = b
        def read(self): return self.b
        def __enter__(self): return self
        def __exit__(self, *a): return False

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
