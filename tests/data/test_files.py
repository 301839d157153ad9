"""Data files: where each is found (a path, $BPJAX_DATA, data/, the cache, a download checked by
SHA-256, a data set's name) and reading one exactly once, hashed as read."""

import hashlib
import json
import os

import pytest

from bpjax.data import DataError, files, load_text, load_words, resolve_data_path
from conftest import assert_one_line_error, run_cli, write


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_words(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        load_words(tmp_path)


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
    monkeypatch.setattr(files, "_REPO_ROOT", tmp_path / "no-repo")
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

    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: Resp(payload))
    with pytest.raises(DataError, match="SHA-256"):
        load_words()
    assert not (tmp_path / "cache" / "bpjax" / "names.txt").exists()
    monkeypatch.setitem(files.DATASETS, "names", ("names.txt", files.NAMES_URL, hashlib.sha256(payload).hexdigest()))
    assert load_words() == ["emma", "olivia"]
    assert (tmp_path / "cache" / "bpjax" / "names.txt").read_bytes() == payload
    # and the cache is found next time without the network
    monkeypatch.setattr(files.urllib.request, "urlopen", None)
    assert load_words() == ["emma", "olivia"]


def test_download_failure_says_how_to_get_the_file(tmp_path, monkeypatch):
    _no_local_copies(tmp_path, monkeypatch)

    def offline(url, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(files.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="data/names.txt"):
        load_words()


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


def test_a_data_set_is_named_and_found_like_names_txt(tmp_path, monkeypatch):
    """``--data shakespeare`` names tiny Shakespeare: found in data/, else downloaded into the cache
    (checked against its SHA-256); a file of that name in the working directory wins."""
    _no_local_copies(tmp_path, monkeypatch)
    payload = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"

    class Resp:
        def read(self):
            return payload

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: Resp())
    with pytest.raises(DataError, match="tinyshakespeare.txt has SHA-256"):
        load_text("shakespeare")
    sha = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(files.DATASETS, "shakespeare", ("tinyshakespeare.txt", files.SHAKESPEARE_URL, sha))
    assert load_text("shakespeare") == payload.decode()
    assert (tmp_path / "cache" / "bpjax" / "tinyshakespeare.txt").read_bytes() == payload
    (tmp_path / "data").mkdir()
    write(tmp_path / "data", b"local\n", "tinyshakespeare.txt")
    assert resolve_data_path("shakespeare") == tmp_path / "data" / "tinyshakespeare.txt"
    write(tmp_path, b"mine\n", "shakespeare")  # a file called shakespeare is that file
    assert resolve_data_path("shakespeare").name == "shakespeare" and load_text("shakespeare") == "mine\n"


def test_the_shipped_checksums_are_the_files(names_path, shakespeare_path):
    assert files.sha256_of(names_path) == files.NAMES_SHA256
    assert files.sha256_of(shakespeare_path) == files.SHAKESPEARE_SHA256
    assert shakespeare_path.stat().st_size == 1_115_394
