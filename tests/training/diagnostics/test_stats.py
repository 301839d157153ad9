"""The diagnostics' statistics on device: one pass per array, one scatter for every histogram."""

import jax
import jax.numpy as jnp
import numpy as np

from bpjax.training import diagnostics as D


def test_histograms_and_moments_on_device():
    x = jax.random.normal(jax.random.key(0), (64, 50)) * 3 + 1
    mean, std, lo, hi, sat = D.summarize(x)
    np.testing.assert_allclose([mean, std], [np.mean(x), np.std(x, ddof=1)], rtol=1e-5)
    assert (lo, hi) == (x.min(), x.max()) and sat == np.mean(np.abs(x) > 0.97)
    counts, rng = D.histogram(x)
    expect, _ = np.histogram(np.asarray(x), bins=D.BINS, range=(float(x.min()), float(x.max())))
    np.testing.assert_array_equal(counts, expect)  # numpy's bins, the last one closed
    gain = jnp.full((100,), 1.0) + jnp.linspace(-1e-3, 1e-3, 100)  # far from 0: no cancellation
    np.testing.assert_allclose(D.summarize(gain)[1], np.std(np.asarray(gain, np.float64), ddof=1), rtol=1e-3)


def test_update_data_and_grad_data_of_one_record():
    """The lecture's ratios: grad:data std(dW)/std(W) for 2-D weights, update:data log10(std(u)/std(W))
    for every parameter, NaN where a parameter has no spread."""
    params = {"W": jnp.arange(12.0).reshape(3, 4), "g": jnp.ones((1, 4))}
    grads = jax.tree_util.tree_map(lambda p: p * 0.5, params)
    updates = jax.tree_util.tree_map(lambda p: p * 1e-3, params)
    r = D.record({}, {}, params, grads, updates)
    np.testing.assert_allclose(r["grad_data"], [0.5], rtol=1e-6)
    assert r["update_data"][0] == -3.0 or abs(float(r["update_data"][0]) + 3.0) < 1e-6
    assert np.isnan(r["update_data"][1]) and D.names_of(params) == (["W"], ["W", "g"])
