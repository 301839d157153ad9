"""A run's data in its model's layout: windows, sequences or a text's stream; what trains and what
is evaluated."""

import pytest

from bpjax.data import DataError, describe, load_dataset, make_dataset, split_names, training_arrays
from bpjax.errors import CheckpointError
from conftest import write


def test_each_layout_from_one_call(names_path, shakespeare_path):
    v, s, info = load_dataset(names_path, block_size=3)
    assert split_names(s) == ("train", "val", "test") and training_arrays(s) is s["train"]
    assert info["words"] == 32_033 and info["block_size"] == 3 and describe(info) == "32,033 words"
    v, s, info = load_dataset(names_path, block_size=None, layout="sequences")
    assert info["block_size"] == 16 and s["train"][0].shape[1] == 16
    v, s, info = load_dataset(shakespeare_path, block_size=64, layout="text")
    assert split_names(s) == ("train", "val") and v.size == 65  # nanoGPT's split has no test part
    X, Y = training_arrays(s)
    assert X is Y is s["train_ids"] and X.ndim == 1
    assert info["characters"] == 1_115_394 and describe(info) == "1,115,394 characters"


def test_a_text_layout_defaults_to_tiny_shakespeare(shakespeare_path, monkeypatch):
    monkeypatch.delenv("BPJAX_DATA", raising=False)
    monkeypatch.chdir(shakespeare_path.parent.parent)
    assert load_dataset(block_size=8, layout="text")[2]["path"].endswith("tinyshakespeare.txt")


def test_another_file_than_the_runs_is_refused_before_it_is_parsed(tmp_path, names_path):
    sha = load_dataset(names_path, block_size=3)[2]["sha256"]
    other = write(tmp_path, b"\x00not even text", "other.txt")
    with pytest.raises(CheckpointError, match="not the one this run trained on"):
        load_dataset(other, block_size=3, expect_sha=sha)


def test_unknown_layout_and_too_few_words(tmp_path):
    with pytest.raises(DataError, match="unknown data layout 'pixels'"):
        make_dataset(["ab"], None, layout="pixels")
    with pytest.raises(DataError, match="at least 10"):
        load_dataset(write(tmp_path, b"anna\nbob\n"), block_size=3)
