"""Files that are never half-written: a temp file beside the target, then a rename."""

import errno
import json
import os

import pytest

from bpjax import io
from bpjax.errors import ConfigError


def test_atomic_writes_replace_the_file_whole(tmp_path):
    p = tmp_path / "sub" / "f.json"
    io.atomic_write_json(p, {"a": 1})
    io.atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2} and os.listdir(p.parent) == ["f.json"]
    io.atomic_savez(tmp_path / "a.npz", x=[1, 2])
    assert (tmp_path / "a.npz").stat().st_size > 0


def test_a_failed_write_leaves_the_old_file_and_no_temp_file_and_names_the_target(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    io.atomic_write_text(p, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as e:
        io.atomic_write_text(p, "new")
    assert e.value.filename == str(p) and p.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_a_name_at_the_file_systems_limit_still_gets_a_temp_file(tmp_path):
    p = tmp_path / ("r" * 250 + ".json")
    io.atomic_write_json(p, [1])
    assert json.loads(p.read_text()) == [1]


def test_an_output_directory_that_cannot_be_one_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    for path, needle in (
        ("", "is empty"),
        (tmp_path / "file", "is a file"),
        (tmp_path / "file" / "run", "under the file"),
    ):
        with pytest.raises(ConfigError, match=needle):
            io.check_output_dir(path)
    io.check_output_dir(tmp_path / "new" / "run")  # not there yet: fine
    assert io.host_memory_available() is None or io.host_memory_available() > 0
