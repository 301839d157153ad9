"""The WaveNet (makemore part 5): its init, its running statistics, its block sizes, a short training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import conftest
from bpjax import Config, fit, load_run, models
from bpjax import layers as L
from bpjax.check import compare
from bpjax.errors import ConfigError
from bpjax.models import wavenet


def batch(key, n, block=8, vocab=27):
    return conftest.batch(key, n, block=block, vocab=vocab)


def test_parameter_count_and_shapes():
    p = wavenet.init_params(jax.random.key(0))
    assert models.n_params(p) == 76_579
    assert [s["W"].shape for s in p["stages"]] == [(48, 128), (256, 128), (256, 128)]
    np.testing.assert_allclose(jnp.std(p["Wout"]) * 128**0.5, 0.1, rtol=0.1)  # scaled by 0.1


@pytest.mark.parametrize("block", [3, 6, 1, 12])
def test_model_refuses_block_size_its_stages_cannot_reduce(block):
    with pytest.raises(ConfigError, match="power of 2"):
        wavenet.init_params(jax.random.key(0), block_size=block)
    with pytest.raises(ConfigError, match="power of 2"):
        Config.for_model("wavenet", block_size=block).validate()


def test_finite_differences_of_the_whole_model_float64():
    with jax.enable_x64(True):
        p = wavenet.init_params(jax.random.key(2), n_embd=3, n_hidden=5, block_size=4, dtype=jnp.float64)
        s = wavenet.init_state(p)
        X, Y = batch(jax.random.key(3), 6, block=4)
        check_grads(lambda p: wavenet.MODEL.loss_manual(p, s, X, Y)[0], (p,), order=1, modes=["rev"])


def test_running_statistics_update_as_the_lecture():
    p = wavenet.init_params(jax.random.key(0), n_embd=4, n_hidden=6, block_size=4)
    s = wavenet.init_state(p)
    X, Y = batch(jax.random.key(1), 16, block=4)
    _, s1 = wavenet.MODEL.loss_manual(p, s, X, Y)
    # stage 0's pre-batch-norm activation, by hand: mean and Bessel variance over (batch, time)
    x = L.flatten_consecutive_plain(p["C"][X], 2) @ p["stages"][0]["W"]
    np.testing.assert_allclose(s1["stages"][0]["running_mean"], 0.9 * 0 + 0.1 * x.mean((0, 1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s1["stages"][0]["running_var"], 0.9 * 1 + 0.1 * x.var((0, 1), ddof=1), rtol=1e-5)
    _, s1_plain = wavenet.MODEL.loss(p, s, X, Y)
    jax.tree_util.tree_map(np.testing.assert_array_equal, s1, s1_plain)
    # eval mode uses them: with the batch's own statistics as "running" ones, eval == training mode
    own = {"stages": []}
    h = p["C"][X]
    for st in p["stages"]:
        h = L.flatten_consecutive_plain(h, 2) @ st["W"]
        own["stages"].append(
            {"running_mean": h.mean(tuple(range(h.ndim - 1))), "running_var": h.var(tuple(range(h.ndim - 1)), ddof=1)}
        )
        h = jnp.tanh(L.batchnorm_plain(h, st["bngain"], st["bnbias"]))
    np.testing.assert_allclose(
        L.cross_entropy_plain(wavenet.MODEL.logits_eval(p, own, X), Y), wavenet.MODEL.loss(p, s, X, Y)[0], rtol=1e-5
    )
    assert (
        abs(
            float(L.cross_entropy_plain(wavenet.MODEL.logits_eval(p, s, X), Y))
            - float(L.cross_entropy_plain(wavenet.MODEL.logits_eval(p, s1, X), Y))
        )
        > 1e-6
    )


def test_grad_with_has_aux():
    p = wavenet.init_params(jax.random.key(0))
    s = wavenet.init_state(p)
    X, Y = batch(jax.random.key(1), 32)
    (l1, s1), g1 = jax.value_and_grad(wavenet.MODEL.loss_manual, has_aux=True)(p, s, X, Y)
    (l2, s2), g2 = jax.value_and_grad(wavenet.MODEL.loss, has_aux=True)(p, s, X, Y)
    flat = lambda g: {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(g)[0]}
    assert compare(flat(g1), flat(g2)).ok


def test_short_training_resume_and_sample(names_path, tmp_path):
    cfg = Config.for_model("wavenet", n_embd=8, n_hidden=32, steps=400, chunk=150)
    straight = fit(cfg, data=names_path, out=tmp_path / "a", verbose=False, save_plot=False)
    lossi = straight.history["lossi"]
    assert 10 ** lossi[:50].mean() > 10 ** lossi[-50:].mean() + 0.2
    assert straight.metrics["val_loss"] < 3.0 and straight.metrics["model"] == "wavenet"
    fit(
        Config.for_model("wavenet", n_embd=8, n_hidden=32, steps=400, chunk=150),
        data=names_path,
        out=tmp_path / "b",
        stop_at=201,
        verbose=False,
        save_plot=False,
    )
    resumed = fit(resume=tmp_path / "b", verbose=False, save_plot=False)
    np.testing.assert_array_equal(resumed.history["lossi"], lossi)
    assert resumed.metrics["val_loss"] == straight.metrics["val_loss"]
    back = load_run(tmp_path / "b")
    jax.tree_util.tree_map(np.testing.assert_array_equal, back.state, straight.state)
    assert len(back.sample(n=4)) == 4
