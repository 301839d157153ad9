"""The WaveNet (makemore part 5): its layers against jax.grad and finite differences, its state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import conftest
from bpjax import Config, fit, load_run, mlp, wavenet
from bpjax import layers as L
from bpjax.check import check_vjp, compare
from bpjax.errors import ConfigError


def batch(key, n, block=8, vocab=27):
    return conftest.batch(key, n, block=block, vocab=vocab)


def test_parameter_count_and_shapes():
    p = wavenet.init_params(jax.random.key(0))
    assert mlp.n_params(p) == 76_579
    assert [s["W"].shape for s in p["stages"]] == [(48, 128), (256, 128), (256, 128)]
    np.testing.assert_allclose(jnp.std(p["Wout"]) * 128**0.5, 0.1, rtol=0.1)  # scaled by 0.1


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B, T, C, n", [(2, 4, 3, 2), (5, 8, 7, 2), (3, 6, 5, 3), (4, 2, 9, 2)])
def test_flatten_consecutive(dtype, B, T, C, n):
    with jax.enable_x64(dtype == jnp.float64):
        x = jax.random.normal(jax.random.key(B * T), (B, T, C), dtype)
        y = L.flatten_consecutive(x, n)
        assert y.shape == ((B, n * C) if T == n else (B, T // n, n * C))
        np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))
        t = check_vjp(lambda x: L.flatten_consecutive(x, n), lambda x: L.flatten_consecutive_plain(x, n),
                      (x,), argnames=["x"])
        assert t.ok and t["x"].exact


def test_flatten_consecutive_refuses_indivisible_time():
    with pytest.raises(ConfigError, match="divisible by 2"):
        L.flatten_consecutive(jnp.ones((2, 3, 4)), 2)


@pytest.mark.parametrize("block", [3, 6, 1, 12])
def test_model_refuses_block_size_its_stages_cannot_reduce(block):
    with pytest.raises(ConfigError, match="power of 2"):
        wavenet.init_params(jax.random.key(0), block_size=block)
    with pytest.raises(ConfigError, match="power of 2"):
        Config.for_model("wavenet", block_size=block).validate()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B, T, H", [(2, 4, 5), (3, 2, 17), (32, 4, 128)])
def test_linear_and_batchnorm_on_3d(dtype, B, T, H):
    """Linear without bias and batch norm over (batch, time): n = B·T rows."""
    with jax.enable_x64(dtype == jnp.float64):
        k = jax.random.split(jax.random.key(H), 4)
        x = jax.random.normal(k[0], (B, T, 2 * H), dtype)
        W = jax.random.normal(k[1], (2 * H, H), dtype) / H
        t = check_vjp(lambda x, W: L.linear(x, W, None), lambda x, W: L.linear_plain(x, W, None), (x, W),
                      argnames=["x", "W"], key=k[2])
        assert t.ok, str(t)
        h = x[..., :H] * 3 + 1
        g, b = jnp.ones((H,), dtype) * 1.1, jnp.ones((H,), dtype) * 0.1
        t = check_vjp(L.batchnorm, L.batchnorm_plain, (h, g, b), argnames=["x", "bngain", "bnbias"], key=k[3])
        assert t.ok and t["bngain"].shape == (H,), str(t)


def test_finite_differences_float64():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (3, 4, 5), jnp.float64)
        check_grads(lambda x: L.flatten_consecutive(x, 2), (x,), order=1, modes=["rev"])
        W = jax.random.normal(jax.random.key(1), (5, 6), jnp.float64)
        check_grads(lambda x, W: L.linear(x, W, None), (x, W), order=1, modes=["rev"])
        g, b = jnp.ones((5,)) * 1.1, jnp.ones((5,)) * 0.1
        check_grads(L.batchnorm, (x, g, b), order=1, modes=["rev"])
        p = wavenet.init_params(jax.random.key(2), n_embd=3, n_hidden=5, block_size=4, dtype=jnp.float64)
        s = wavenet.init_state(p)
        X, Y = batch(jax.random.key(3), 6, block=4)
        check_grads(lambda p: wavenet.loss_manual(p, s, X, Y)[0], (p,), order=1, modes=["rev"])


@pytest.mark.parametrize("x64", [False, True], ids=["f32", "f64"])
def test_check_tables(x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        p = wavenet.init_params(jax.random.key(0), dtype=dtype)
        s = wavenet.init_state(p)
        X, Y = batch(jax.random.key(1), 32)
        assert wavenet.loss_manual(p, s, X, Y)[0] == wavenet.loss(p, s, X, Y)[0]
        layers, model = wavenet.layer_tables(p, s, X, Y)
        assert layers.ok and model.ok, f"{layers}\n{model}"
        if x64:
            assert max(r.maxdiff for r in [*layers, *model]) <= 1e-12


def test_running_statistics_update_as_the_lecture():
    p = wavenet.init_params(jax.random.key(0), n_embd=4, n_hidden=6, block_size=4)
    s = wavenet.init_state(p)
    X, Y = batch(jax.random.key(1), 16, block=4)
    _, s1 = wavenet.loss_manual(p, s, X, Y)
    # stage 0's pre-batch-norm activation, by hand: mean and Bessel variance over (batch, time)
    x = L.flatten_consecutive_plain(p["C"][X], 2) @ p["stages"][0]["W"]
    np.testing.assert_allclose(s1["stages"][0]["running_mean"], 0.9 * 0 + 0.1 * x.mean((0, 1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s1["stages"][0]["running_var"], 0.9 * 1 + 0.1 * x.var((0, 1), ddof=1), rtol=1e-5)
    _, s1_plain = wavenet.loss(p, s, X, Y)
    jax.tree_util.tree_map(np.testing.assert_array_equal, s1, s1_plain)
    # eval mode uses them: with the batch's own statistics as "running" ones, eval == training mode
    own = {"stages": []}
    h = p["C"][X]
    for st in p["stages"]:
        h = L.flatten_consecutive_plain(h, 2) @ st["W"]
        own["stages"].append({"running_mean": h.mean(tuple(range(h.ndim - 1))),
                              "running_var": h.var(tuple(range(h.ndim - 1)), ddof=1)})
        h = jnp.tanh(L.batchnorm_plain(h, st["bngain"], st["bnbias"]))
    np.testing.assert_allclose(wavenet.loss_eval(p, own, X, Y), wavenet.loss(p, s, X, Y)[0], rtol=1e-5)
    assert abs(float(wavenet.loss_eval(p, s, X, Y)) - float(wavenet.loss_eval(p, s1, X, Y))) > 1e-6


def test_grad_with_has_aux():
    p = wavenet.init_params(jax.random.key(0))
    s = wavenet.init_state(p)
    X, Y = batch(jax.random.key(1), 32)
    (l1, s1), g1 = jax.value_and_grad(wavenet.loss_manual, has_aux=True)(p, s, X, Y)
    (l2, s2), g2 = jax.value_and_grad(wavenet.loss, has_aux=True)(p, s, X, Y)
    flat = lambda g: {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(g)[0]}
    assert compare(flat(g1), flat(g2)).ok


def test_short_training_resume_and_sample(names_path, tmp_path):
    cfg = Config.for_model("wavenet", n_embd=8, n_hidden=32, steps=400, chunk=150)
    straight = fit(cfg, data=names_path, out=tmp_path / "a", verbose=False, save_plot=False)
    lossi = straight.history["lossi"]
    assert 10 ** lossi[:50].mean() > 10 ** lossi[-50:].mean() + 0.2
    assert straight.metrics["val_loss"] < 3.0 and straight.metrics["model"] == "wavenet"
    fit(Config.for_model("wavenet", n_embd=8, n_hidden=32, steps=400, chunk=150), data=names_path,
        out=tmp_path / "b", stop_at=201, verbose=False, save_plot=False)
    resumed = fit(resume=tmp_path / "b", verbose=False, save_plot=False)
    np.testing.assert_array_equal(resumed.history["lossi"], lossi)
    assert resumed.metrics["val_loss"] == straight.metrics["val_loss"]
    back = load_run(tmp_path / "b")
    jax.tree_util.tree_map(np.testing.assert_array_equal, back.state, straight.state)
    assert len(back.sample(n=4)) == 4
