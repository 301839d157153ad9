"""The bench's groups of rows: the rows of each data layout made once, --only checked before any work."""

import pytest

from bpjax.bench import SECTIONS, Bench, run_bench
from bpjax.errors import ConfigError


def test_only_takes_groups_of_the_bench(names_path):
    for bad in (set(), {"speed"}, {"models", "x"}):
        with pytest.raises(ConfigError, match="--only takes some of models, gpt, scaling, vmap, diagnostics"):
            run_bench(data=names_path, only=bad)
    assert SECTIONS == ("models", "gpt", "scaling", "vmap", "diagnostics")


def test_the_rows_of_a_layout_are_made_once_and_a_row_carries_its_keys(names_path):
    b = Bench(data=names_path, steps=50, repeats=1, torch_steps=10, log=lambda *a: None)
    assert b.train_rows("rnn") is b.train_rows("gru")  # one layout: the padded words
    assert b.train_rows("mlp")[0].shape[1] == 3 and b.train_rows("rnn")[0].shape[1] == 16
    b.bpjax("grad", "bpjax manual, n_hidden 8", n_hidden=8)
    (r,) = b.rows
    assert (r["impl"], r["model"], r["grad"], r["variant"], r["K"], r["n_hidden"], r["batch"]) == (
        "bpjax",
        "mlp",
        "manual",
        "train",
        1,
        8,
        32,
    )
    assert r["fraction_of_peak"] > 0 and r["steps_per_second"] > 0
