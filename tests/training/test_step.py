"""One training step: the gradient --grad swaps, each step's own minibatch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import Config, fit
from bpjax.check import compare
from bpjax.errors import ConfigError
from bpjax.models import mlp
from bpjax.training.step import gradient_fn, sample_batches


@pytest.mark.parametrize("at_step", [0, 1000])
def test_manual_gradients_equal_jax_grad_during_training(names_path, tmp_path, at_step):
    """The notebook's bug (stale bn_raw / bn_var_inv) would fail this after step 0."""
    run = fit(
        Config(steps=max(at_step, 1), chunk=500),
        data=names_path,
        out=False,
        stop_at=at_step,
        verbose=False,
        save_plot=False,
    )
    Xtr, Ytr = (jnp.asarray(a) for a in run_splits(names_path)["train"])
    # the very minibatch and gradient functions the training step uses at this step
    key = jax.random.wrap_key_data(jnp.asarray(run.key_data))
    X, Y = (a[0] for a in sample_batches(key, jnp.array([at_step], jnp.int32), Xtr, Ytr, 32))
    (l_m, _), g_m = gradient_fn("mlp", "manual")(run.params, run.state, X, Y)
    (l_a, _), g_a = gradient_fn("mlp", "autodiff")(run.params, run.state, X, Y)
    t = compare(g_m, g_a, mlp.PARAM_KEYS)
    assert t.ok, str(t)
    assert l_m == l_a and run.step == at_step


def run_splits(names_path):
    from bpjax.data import Vocab, load_words, make_splits

    w = load_words(names_path)
    return make_splits(w, Vocab.from_words(w))


def test_each_steps_minibatch_depends_on_its_step_only():
    """Step i draws from fold_in(key, i): the same rows whichever chunk the step falls in."""
    key = jax.random.key(3)
    Xtr, Ytr = jnp.arange(100).reshape(50, 2), jnp.arange(50)
    X_all, Y_all = sample_batches(key, jnp.arange(10), Xtr, Ytr, 4)
    X_late, _ = sample_batches(key, jnp.arange(6, 10), Xtr, Ytr, 4)
    np.testing.assert_array_equal(X_all[6:], X_late)
    assert X_all.shape == (10, 4, 2) and Y_all.shape == (10, 4) and not (X_all[0] == X_all[1]).all()


def test_a_gradient_that_is_neither_manual_nor_autodiff_is_refused():
    with pytest.raises(ConfigError, match="grad must be one of manual, autodiff"):
        gradient_fn("mlp", "numeric")


# --- a text's windows, dropout keys, accumulation -----------------------------------------------
def test_a_texts_windows_are_block_size_plus_one_characters_of_the_stream():
    from bpjax.training.step import sample_windows

    stream = jnp.arange(1000, dtype=jnp.int32)
    key = jax.random.key(0)
    X, Y = sample_windows(key, jnp.arange(3, 6), stream, 4, 8)
    assert X.shape == Y.shape == (3, 4, 8)
    assert (Y == X + 1).all() and (X[..., 1:] == X[..., :-1] + 1).all() and int(X.max()) < 1000 - 1
    again, _ = sample_windows(key, jnp.arange(5, 6), stream, 4, 8)  # step 5's windows, whatever the chunk
    np.testing.assert_array_equal(again[0], X[2])


def test_dropout_keys_are_a_stream_of_their_own_per_step():
    from bpjax.training.step import dropout_keys

    key = jax.random.key(1)
    a, b = dropout_keys(key, jnp.arange(4)), dropout_keys(key, jnp.arange(2, 4))
    np.testing.assert_array_equal(jax.random.key_data(a[2:]), jax.random.key_data(b))
    assert not (jax.random.key_data(a[0]) == jax.random.key_data(jax.random.fold_in(key, 0))).all()


def test_a_gpt_runs_batches_carry_a_dropout_key_only_with_dropout():
    from bpjax.training.step import batch_sampler

    stream = jnp.arange(500, dtype=jnp.int32)
    small = {"n_layer": 1, "n_embd": 8, "n_head": 2, "block_size": 8}
    plain = batch_sampler(Config("gpt", batch_size=3, grad_accum=2, **small))(
        jax.random.key(0), jnp.arange(2), stream, stream
    )
    dropped = batch_sampler(Config("gpt", dropout=0.1, **small))(jax.random.key(0), jnp.arange(2), stream, stream)
    assert len(plain) == 2 and plain[0].shape == (2, 6, 8)  # grad-accum 2 x batch 3 rows a step
    assert len(dropped) == 3 and dropped[2].shape == (2,)


def test_one_step_over_k_micro_batches_is_the_step_over_their_union():
    """``--grad-accum``: the mean of the micro-batches' losses and gradients is the full batch's (each
    loss a mean over its equal number of targets; the GPT has no batch statistics)."""
    from bpjax import models
    from bpjax.training.step import accumulated

    with jax.enable_x64(True):
        gpt = models.get("gpt")
        sizes = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0, "bias": True}
        params, state = gpt.init(jax.random.key(0), vocab_size=13, dtype=jnp.float64, **sizes)
        X = jax.random.randint(jax.random.key(1), (12, 8), 0, 13)
        Y = jax.random.randint(jax.random.key(2), (12, 8), 0, 13)
        whole = gradient_fn(gpt, "manual")
        (l1, _), g1 = whole(params, state, X, Y)
        for k in (2, 3, 4):
            (lk, _), gk = jax.jit(accumulated(whole, k))(params, state, X, Y)
            assert abs(float(lk - l1)) < 1e-14
            assert compare(
                dict(enumerate(jax.tree_util.tree_leaves(gk))), dict(enumerate(jax.tree_util.tree_leaves(g1)))
            ).ok
            diff = max(
                float(jnp.abs(a - b).max())
                for a, b in zip(jax.tree_util.tree_leaves(gk), jax.tree_util.tree_leaves(g1), strict=True)
            )
            assert diff < 1e-15
