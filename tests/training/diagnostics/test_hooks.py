"""The diagnostics' and the check's hooks in the one training chunk: records and checks change nothing,
say what the lecture shows, and stop the notebook's stale-tensor bug at its first check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import layers as L
from bpjax.errors import TrainingDiverged, VerificationFailed
from bpjax.layers.norm import batchnorm_backward, batchnorm_parts
from bpjax.models import Model, forward_loss, mlp
from bpjax.training import Config, fit
from bpjax.training import diagnostics as D


def test_recorded_training_is_the_same_training(names_path):
    """Records and checks change nothing: the losses are bit for bit those of a plain run, over
    chunks, evals and checks that do not line up; records land at every multiple of K."""
    base = Config(steps=500, chunk=250)
    plain = fit(base, data=names_path, out=False, verbose=False)
    rec = fit(base.replace(diagnose_every=50, verify_every=150), data=names_path, out=False, verbose=False)
    np.testing.assert_array_equal(plain.history["lossi"], rec.history["lossi"])
    assert plain.metrics["val_loss"] == rec.metrics["val_loss"]
    a = rec.diagnostics
    np.testing.assert_array_equal(a["diag_step"], np.arange(0, 500, 50))
    np.testing.assert_array_equal(a["verify_step"], np.arange(0, 500, 150))
    assert a["verify_ok"].all() and (a["verify_maxdiff"] <= a["verify_bound"]).all()
    assert a["probe_names"].tolist() == ["h"] and a["weight_names"].tolist() == ["C", "W1", "W2"]
    assert a["act_hist"].shape == (10, 1, D.BINS) and (a["act_hist"].sum(-1) == 32 * 64).all()
    assert (a["grad_hist"].sum(-1) == [27 * 10, 30 * 64, 64 * 27]).all()
    assert np.isfinite(a["grad_data"]).all()
    flat = [a["param_names"].tolist().index(n) for n in ("bngain", "bnbias")]  # 1.1 and 0.1 everywhere at init
    assert np.isnan(a["update_data"][0, flat]).all() and np.isfinite(a["update_data"][1:]).all()
    assert np.isfinite(np.delete(a["update_data"][0], flat)).all()
    assert ((a["act_saturated"] >= 0) & (a["act_saturated"] <= 1)).all()


def test_records_say_what_the_lecture_shows(names_path):
    """Batch norm keeps every layer's activations alike; without it and with gain 1 they shrink
    layer by layer. A healthy run's update:data sits near 1e-3."""
    bn = fit(Config("deep", steps=300, diagnose_every=100), data=names_path, out=False, verbose=False).diagnostics
    flat = fit(
        Config("deep", steps=1, batchnorm=False, gain=1.0, diagnose_every=1), data=names_path, out=False, verbose=False
    ).diagnostics
    std_bn, std_flat = bn["act_std"][0], flat["act_std"][0]
    assert std_bn.min() > 0.5 and std_bn.max() - std_bn.min() < 0.1
    assert (np.diff(std_flat) < 0).all() and std_flat[-1] < 0.6 * std_flat[0]
    pidx = [bn["param_names"].tolist().index(n) for n in bn["weight_names"]]
    ud = bn["update_data"][-1, pidx]
    assert -4 < np.median(ud) < -2, ud


# --- live verification: the notebook's bug ------------------------------------------------------
def _stale_bn_model(stale: bool) -> Model:
    """The notebook's MLP whose batch-norm backward reuses ``bn_raw`` and ``bn_var_inv`` of the
    previous step (``stale``), as its last training loop did with the tensors of an earlier cell;
    or of this step. The state carries the tensors; it starts from a forward on another batch."""

    @jax.custom_vjp
    def bn(x, g, b, bn_raw, bn_var_inv):
        return L.batchnorm_plain(x, g, b)

    def fwd(x, g, b, bn_raw, bn_var_inv):
        return L.batchnorm_plain(x, g, b), (bn_raw, bn_var_inv, g, b)

    def bwd(res, d):
        bn_raw, bn_var_inv = res[:2]
        return (*batchnorm_backward(res, d), jnp.zeros_like(bn_raw), jnp.zeros_like(bn_var_inv))

    bn.defvjp(fwd, bwd)

    def tensors(p, X):
        _, bn_raw, bn_var_inv = batchnorm_parts(
            jax.lax.stop_gradient(mlp.hidden_pre_bn(p, X)), p["bngain"], p["bnbias"]
        )
        return {"bn_raw": bn_raw, "bn_var_inv": bn_var_inv}

    def init(key, *, vocab_size, **sizes):
        k, kx = jax.random.split(key)
        p = mlp.init_params(k, vocab_size=vocab_size, **sizes)
        return p, tensors(p, jax.random.randint(kx, (32, sizes["block_size"]), 0, vocab_size))

    def loss_manual(p, s, X, Y):
        fresh = tensors(p, X)
        used = s if stale else fresh
        ly = L.MANUAL.replace(batchnorm=lambda x, g, b: bn(x, g, b, used["bn_raw"], used["bn_var_inv"]))
        return forward_loss(mlp.forward, ly)(p, {}, X, Y)[0], fresh

    return Model(
        name="stale_bn" if stale else "fresh_bn",
        sizes=dict(mlp.MODEL.sizes),
        init=init,
        loss=lambda p, s, X, Y: (mlp.loss(p, X, Y), tensors(p, X)),
        loss_manual=loss_manual,
        logits_eval=lambda p, s, X: mlp.logits_eval(p, mlp.calibrate_bn(p, X), X),
        eval_stats=lambda p, s, X: p,
        min_batch=2,
    )


def test_the_notebooks_stale_tensor_bug_stops_the_run_at_its_first_check(names_path, tmp_path):
    cfg = Config(_stale_bn_model(stale=True), steps=300, verify_every=100, diagnose_every=50)
    with pytest.raises(
        VerificationFailed,
        match=r"^at step 0 the hand-written gradient of 3 of 7 parameters disagrees with jax.grad: "
        r".*; worst \w+ \(maxdiff > bound; the pass rule: 0.0001 x "
        r"max\|oracle\| \+ 1e-07\); stopped \(the last good checkpoint "
        r"\(step 0, where this chunk began\) is in",
    ) as e:
        fit(cfg, data=names_path, out=tmp_path / "run", verbose=False)
    # every failing parameter is listed, and they point at the batch norm: its gain (from the stale
    # bn_raw) and everything before it; not bnbias (no stale tensor in its gradient), b1 (its true
    # gradient is 0 under batch norm, both sides rounding noise) or the layer after it (W2, b2)
    listed = [part.split()[0] for part in str(e.value).split(": ", 1)[1].split("; worst")[0].split(", ")]
    assert sorted(listed) == ["C", "W1", "bngain"], str(e.value)
    a = D.load(tmp_path / "run")
    assert a["verify_step"].tolist() == [0] and not a["verify_ok"].all()
    assert a["diag_step"].tolist() == [0]  # the records up to the failing check, for bpjax diagnose
    assert (tmp_path / "run" / "checkpoint.npz").is_file()
    # the same model with this step's tensors passes every check
    ok = fit(cfg.replace(model=_stale_bn_model(stale=False)), data=names_path, out=False, verbose=False)
    assert ok.diagnostics["verify_step"].tolist() == [0, 100, 200] and ok.diagnostics["verify_ok"].all()


def test_a_run_that_diverges_is_reported_as_diverging_not_as_a_failed_check(names_path, tmp_path):
    """After a NaN both gradients are NaN: the checks after it are not failures of the backward. (lr 1e30:
    the first update overflows the parameters; a smaller absurd rate leaves the loss finite, log-softmax.)"""
    cfg = Config(steps=400, lr=1e30, diagnose_every=10, verify_every=20)
    with pytest.raises(TrainingDiverged, match="loss became (nan|inf) at step 1;"):
        fit(cfg, data=names_path, out=tmp_path / "run", verbose=False)
    a = D.load(tmp_path / "run")  # one chunk, checks at 0, 20, ...: only the one before the divergence kept
    assert a["verify_step"].tolist() == [0] and a["verify_ok"].all()
    assert a["diag_step"].tolist() == [0]  # the records up to the divergence


def test_the_live_verification_runs_at_the_checks_precision_and_training_at_the_default(names_path):
    """The verification's gradients are traced at float32 matrix products (a GPU's TF32 would fail
    float32 rows); the training step keeps JAX's default precision, and its speed."""
    import dataclasses

    seen = set()

    def loss_manual(*a):
        seen.add(jax.config.jax_default_matmul_precision)
        return mlp.MODEL.loss_manual(*a)

    cfg = Config(
        dataclasses.replace(mlp.MODEL, name="recording", loss_manual=loss_manual),
        steps=100,
        diagnose_every=50,
        verify_every=50,
    )
    run = fit(cfg, data=names_path, out=False, verbose=False)
    assert seen == {None, "highest"} and run.diagnostics["verify_ok"].all()
