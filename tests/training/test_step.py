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
