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


def test_categorical_draws_the_softmax_distribution():
    """The inverse-CDF draw: each category's count within 5 standard deviations of n·softmax(logits),
    a category of probability 0 never drawn, and a batch's first rows are a smaller batch's draws."""
    import jax
    import numpy as np

    from bpjax.training.sample import categorical

    logits = jnp.array([0.3, -1.0, 2.0, -jnp.inf, 0.0])
    n = 200_000
    ids = np.asarray(categorical(jax.random.key(3), jnp.broadcast_to(logits, (n, 5))))
    p = np.asarray(jax.nn.softmax(logits))
    counts = np.bincount(ids, minlength=5)
    assert counts[3] == 0
    np.testing.assert_array_less(np.abs(counts - n * p), 5 * np.sqrt(n * p * (1 - p)) + 1e-9)
    small = categorical(jax.random.key(3), jnp.broadcast_to(logits, (100, 5)))
    np.testing.assert_array_equal(np.asarray(small), ids[:100])


def test_decoding_is_the_loop_over_rows_in_one_pass():
    """decode_names' vectorised path (one-byte characters) and its loop (any others) give the names
    the rows spell: up to the first 0 as '.', or all of them and '…'."""
    import numpy as np

    from bpjax.training.sample import decode_names

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, size=(500, 7))
    ids[rng.random(500) < 0.1] = rng.integers(1, 4, size=7)  # some rows never end
    for words in (["abc"], ["abé"]):  # 'é' takes the loop
        v = Vocab.from_words(words)
        want = []
        for row in ids:
            end = np.flatnonzero(row == 0)
            want.append(v.decode(row[: end[0]]) + "." if len(end) else v.decode(row) + "…")
        assert decode_names(ids, v) == want


def test_a_batch_stops_at_its_longest_name_with_the_names_of_a_full_loop():
    """Stopping once every row has ended changes no name: the same draws as a scan over all max_len
    positions with the same keys."""
    import jax
    import numpy as np

    from bpjax.training.sample import categorical, decode_names

    v = Vocab.from_words(["abcd"])
    W = jax.random.normal(jax.random.key(0), (3 * v.size, v.size))
    W = W.at[:, 0].add(-1.0)  # names of a few characters, some long
    logits = lambda params, stats, X: jax.nn.one_hot(X, v.size).reshape(X.shape[0], -1) @ params
    key, n, max_len = jax.random.key(5), 300, 40

    def full(context, k):
        ix = categorical(k, logits(W, {}, context))
        return jnp.concatenate([context[:, 1:], ix[:, None]], axis=1), ix

    _, ids = jax.lax.scan(full, jnp.zeros((n, 3), jnp.int32), jax.random.split(key, max_len))
    got = sample_names(logits, W, {}, v, 3, n=n, key=key, max_len=max_len)
    assert got == decode_names(np.asarray(ids.T), v)
    assert max(map(len, got)) > 8 and len(set(got)) > 50  # not a degenerate model
