"""Sampling names from a trained model: a window model's contexts, a sequence model's positions, big n in batches."""

import jax.numpy as jnp
import pytest

from bpjax import Config, fit
from bpjax.data import Vocab
from bpjax.errors import ConfigError
from bpjax.training.sample import SAMPLE_CHUNK, sample_names


def test_sequence_sampling_reads_each_position_once():
    """A bigram table that always predicts the next letter (and '.' after 'e') samples 'abcde.'; with
    max_len 3 the name is cut and marked."""
    v = Vocab.from_words(["abcdefg"])
    table = jnp.full((v.size, v.size), -1e9).at[jnp.arange(5), jnp.arange(1, 6)].set(0.0).at[5, 0].set(0.0)
    logits = lambda params, stats, X: params[X]
    assert sample_names(logits, table, {}, v, 8, n=3, layout="sequences") == ["abcde."] * 3
    assert sample_names(logits, table, {}, v, 8, n=1, max_len=3, layout="sequences") == ["abc…"]


def test_a_window_model_that_never_ends_a_name_is_cut_at_max_len():
    v = Vocab.from_words(["ab"])
    always_a = lambda params, stats, X: jnp.zeros((X.shape[0], v.size)).at[:, 1].set(100.0)
    assert sample_names(always_a, {}, {}, v, 3, n=2, max_len=4) == ["aaaa…", "aaaa…"]
    with pytest.raises(ConfigError, match="max-len must be between 1 and 10,000"):
        list(__import__("bpjax.training.sample", fromlist=["x"]).iter_sample_names(always_a, {}, {}, v, 3, max_len=0))


def _short(**kw):
    return Config(n_hidden=16, steps=300, chunk=100, **kw)


def test_many_names_are_drawn_in_batches(names_path, tmp_path):
    run = fit(_short(), data=names_path, out=False, verbose=False)
    names = run.sample(n=SAMPLE_CHUNK + 5, seed=1)
    assert len(names) == SAMPLE_CHUNK + 5 and names[:20] == run.sample(n=20, seed=1)
    assert names[SAMPLE_CHUNK:] != names[:5]  # the next batch has its own key
