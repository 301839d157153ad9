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


def test_text_follows_the_prompt_one_character_at_a_time():
    """generate_text: nanoGPT's generate (the context the last block_size characters, temperature,
    top-k); each character's key fold_in(key, i), so a prefix of a longer sample is a shorter one."""
    import jax

    from bpjax import models
    from bpjax.training.sample import generate_text

    gpt = models.get("gpt")
    vocab = Vocab.from_text("abcdefgh \n")
    params, state = gpt.init(jax.random.key(0), vocab_size=vocab.size, n_layer=1, n_head=2, n_embd=8, block_size=4)

    def draw(**kw):
        return "".join(generate_text(gpt.logits_eval, params, state, vocab, 4, key=jax.random.key(1), **kw))

    long, short = draw(prompt="abcdef", chars=12), draw(prompt="abcdef", chars=5)
    assert len(long) == 12 and long.startswith(short) and set(long) <= set(vocab.itos)
    greedy = draw(prompt="a", chars=10, top_k=1)
    assert greedy == draw(prompt="a", chars=10, temperature=1e-6)  # top-1 is the zero-temperature limit
    for bad, needle in [
        ({"prompt": "z"}, "'z' is not in the run's vocabulary"),
        ({"prompt": ""}, "empty"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_k": 11}, "top-k must be between 1 and"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            draw(**bad)
