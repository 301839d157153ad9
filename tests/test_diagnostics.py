"""Issue 12: the lecture's deeper network, diagnostics recorded inside the jitted loop, and the
hand-written backward checked against jax.grad while the model trains."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import diagnostics as D
from bpjax import layers as L
from bpjax import mlp, models
from bpjax.cli import build_parser
from bpjax.config import Config
from bpjax.errors import CheckpointError, ConfigError, VerificationFailed
from bpjax.models import Model, n_params
from bpjax.rundir import load_run as bpjax_load_run
from bpjax.train import fit
from conftest import assert_one_line_error, batch, run_cli


# --- the deep network -----------------------------------------------------------------------
def test_deep_network_has_the_lecture_sizes_and_init():
    m = models.get("deep")
    params, state = m.init(jax.random.key(0), vocab_size=27, **m.sizes)
    assert n_params(params) == 47_024  # the lecture's count
    assert len(params["layers"]) == 6 and len(state["layers"]) == 6
    last = params["layers"][-1]
    np.testing.assert_allclose(last["bngain"], 0.1)  # the last gamma scaled by 0.1
    W1 = params["layers"][1]["W"]  # N(0, 1) / sqrt(100) x 5/3
    assert abs(float(W1.std()) - (5 / 3) / 10) < 0.01
    bare, none = m.init(jax.random.key(0), vocab_size=27, **{**m.sizes, "batchnorm": False})
    assert n_params(bare) == 46_497 and none == {}
    assert abs(float(bare["layers"][-1]["W"].std()) - 0.1 / 10) < 0.002  # the last weight scaled instead


def test_the_lectures_experiments_are_one_flag_each():
    args = build_parser().parse_args(["train", "--model", "deep", "--batchnorm", "off", "--gain", "1",
                                      "--last-scale", "1", "--n-blocks", "3"])
    assert (args.batchnorm, args.gain, args.last_scale, args.n_blocks) == (False, 1.0, 1.0, 3)
    cfg = Config("deep", batchnorm=False, gain=1.0).validate()
    assert Config.from_json(cfg.to_json()).sizes == cfg.sizes
    for bad, needle in (({"gain": -1.0}, "gain must be a positive number"),
                        ({"batchnorm": 1}, "batchnorm must be true or false"),
                        ({"n_blocks": 0}, "n-blocks must be a positive integer")):
        with pytest.raises(ConfigError, match=needle):
            Config("deep", **bad).validate()
    with pytest.raises(CheckpointError, match="malformed: batchnorm"):
        Config.from_json({**cfg.to_json(), "batchnorm": 1})


@pytest.mark.parametrize("batchnorm", [True, False], ids=["bn", "no-bn"])
def test_deep_network_gradients_in_float64(batchnorm):
    """``bpjax check --model deep --float64``: every layer and the whole model at the float64 rule."""
    with jax.enable_x64(True):
        m = models.get("deep")
        sizes = {**m.sizes, "n_hidden": 24, "n_blocks": 3, "batchnorm": batchnorm}
        params, state = m.init(jax.random.key(0), vocab_size=27, dtype=jnp.float64, **sizes)
        X, Y = batch(jax.random.key(1), 32)
        tables = m.tables(params, state, X, Y)
        assert all(t.ok for t in tables) and tables[0].dtype == "float64", "\n".join(map(str, tables))
        assert len(tables[1]) == 1 + 4 * (3 if batchnorm else 2)  # C, and every layer's W and gain and bias, or b


# --- diagnostics ----------------------------------------------------------------------------
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
    flat = fit(Config("deep", steps=1, batchnorm=False, gain=1.0, diagnose_every=1), data=names_path, out=False,
               verbose=False).diagnostics
    std_bn, std_flat = bn["act_std"][0], flat["act_std"][0]
    assert std_bn.min() > 0.5 and std_bn.max() - std_bn.min() < 0.1
    assert (np.diff(std_flat) < 0).all() and std_flat[-1] < 0.6 * std_flat[0]
    pidx = [bn["param_names"].tolist().index(n) for n in bn["weight_names"]]
    ud = bn["update_data"][-1, pidx]
    assert -4 < np.median(ud) < -2, ud


def test_a_stopped_run_resumes_its_records(names_path, tmp_path):
    cfg = Config(steps=400, chunk=200, diagnose_every=50, verify_every=100)
    straight = fit(cfg, data=names_path, out=tmp_path / "a", verbose=False).diagnostics
    fit(cfg, data=names_path, out=tmp_path / "b", stop_at=250, verbose=False)
    resumed = fit(resume=tmp_path / "b", data=names_path, verbose=False)
    for k in D.KEYS:
        np.testing.assert_array_equal(resumed.diagnostics[k], straight[k], err_msg=k)
    assert (tmp_path / "b" / D.FIGURE).is_file()


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
        return (*L._batchnorm_bwd(res, d), jnp.zeros_like(bn_raw), jnp.zeros_like(bn_var_inv))

    bn.defvjp(fwd, bwd)

    def tensors(p, X):
        _, bn_raw, bn_var_inv = L._batchnorm_parts(jax.lax.stop_gradient(mlp.hidden_pre_bn(p, X)), p["bngain"],
                                                   p["bnbias"])
        return {"bn_raw": bn_raw, "bn_var_inv": bn_var_inv}

    def init(key, *, vocab_size, **sizes):
        k, kx = jax.random.split(key)
        p = mlp.init_params(k, vocab_size=vocab_size, **sizes)
        return p, tensors(p, jax.random.randint(kx, (32, sizes["block_size"]), 0, vocab_size))

    def loss_manual(p, s, X, Y):
        fresh = tensors(p, X)
        used = s if stale else fresh
        ly = L.MANUAL._replace(batchnorm=lambda x, g, b: bn(x, g, b, used["bn_raw"], used["bn_var_inv"]))
        return mlp._loss(p, X, Y, ly), fresh

    return Model(name="stale_bn" if stale else "fresh_bn", sizes=dict(mlp.MODEL.sizes), init=init,
                 loss=lambda p, s, X, Y: (mlp.loss(p, X, Y), tensors(p, X)), loss_manual=loss_manual,
                 logits_eval=lambda p, s, X: mlp.logits_eval(p, mlp.calibrate_bn(p, X), X),
                 eval_stats=lambda p, s, X: p, min_batch=2)


def test_the_notebooks_stale_tensor_bug_stops_the_run_at_its_first_check(names_path, tmp_path):
    cfg = Config(_stale_bn_model(stale=True), steps=300, verify_every=100, diagnose_every=50)
    with pytest.raises(VerificationFailed, match=r"^at step 0 the hand-written gradient of (C|W1|b1|bngain|bnbias) "
                                                 r"disagrees with jax.grad: maxdiff .* \(the pass rule: 0.0001 x "
                                                 r"max\|oracle\| \+ 1e-07\); stopped \(the last good checkpoint "
                                                 r"\(step 0, where this chunk began\) is in"):
        fit(cfg, data=names_path, out=tmp_path / "run", verbose=False)
    a = D.load(tmp_path / "run")
    assert a["verify_step"].tolist() == [0] and not a["verify_ok"].all()
    assert a["diag_step"].tolist() == [0]  # the records up to the failing check, for bpjax diagnose
    assert (tmp_path / "run" / "checkpoint.npz").is_file()
    # the same model with this step's tensors passes every check
    ok = fit(cfg.replace(model=_stale_bn_model(stale=False)), data=names_path, out=False, verbose=False)
    assert ok.diagnostics["verify_step"].tolist() == [0, 100, 200] and ok.diagnostics["verify_ok"].all()


def test_verification_settings_are_checked():
    with pytest.raises(ConfigError, match="verify-every must be a multiple of diagnose-every"):
        Config(diagnose_every=100, verify_every=150).validate()
    with pytest.raises(ConfigError, match="diagnose-every must be an integer between 0"):
        Config(diagnose_every=-1).validate()
    from bpjax.sweep import sweep

    with pytest.raises(ConfigError, match="a sweep records no diagnostics"):
        sweep(Config(steps=10, diagnose_every=5), seeds=[0], lrs=[0.1])


def test_segments_hold_their_checks():
    segs = D.verified_segments([(0, 2500), (2500, 5000), (5000, 5230)], 1000)
    assert segs == [(0, 2000), (2000, 2500), (2500, 3000), (3000, 5000), (5000, 5230)]
    assert [D.static_args(a, b, 100, 1000)[2] for a, b in segs] == [1000, -1, 0, 1000, -1]
    assert D.static_args(2500, 3000, 100, 1000)[1] == 0 and D.static_args(2550, 3000, 100, 1000)[1] == 50


# --- the command line ---------------------------------------------------------------------------
def test_train_diagnose_and_redraw(names_path, tmp_path):
    out = tmp_path / "run"
    res = run_cli("train", "--model", "deep", "--data", str(names_path), "--steps", "200", "--n-blocks", "2",
                  "--diagnose-every", "50", "--verify-every", "100", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert {"diagnostics.npz", "diagnostics.png"} <= {p.name for p in out.iterdir()}
    (out / "diagnostics.png").unlink()
    res = run_cli("diagnose", "--run", str(out), "--step", "120")
    assert res.returncode == 0, res.stderr
    assert "diagnostics at step 100 (4 records)" in res.stdout and "l1.h: mean" in res.stdout
    assert "verification: 2/2 checks passed" in res.stdout and (out / "diagnostics.png").stat().st_size > 10_000
    assert_one_line_error(run_cli("diagnose", "--run", str(tmp_path)), "has no diagnostics.npz: train with "
                                                                        "--diagnose-every")
    (out / "diagnostics.npz").write_bytes(b"not an archive")
    assert_one_line_error(run_cli("diagnose", "--run", str(out)), "is not a bpjax diagnostics file")
    assert_one_line_error(run_cli("train", "--model", "deep", "--batchnorm", "maybe"), "expected on or off")


def test_each_panel_draws_its_own_records(names_path, require):
    """The figure's panels, each from its own records (a slip once drew the checks on the first)."""
    require("matplotlib")
    a = fit(Config(steps=300, diagnose_every=100, verify_every=100), data=names_path, out=False,
            verbose=False).diagnostics
    fig = D.figure(a)
    axes = {ax.get_title(): ax for ax in fig.axes}
    act = axes["activation distribution"]
    assert len(act.lines) == 1 and act.get_yscale() == "linear"
    x = act.lines[0].get_xdata()
    assert -1 <= x.min() and x.max() <= 1  # tanh outputs, not steps
    check = axes["hand-written vs jax.grad: maxdiff / bound"]
    np.testing.assert_array_equal(check.lines[0].get_xdata(), [0, 100, 200])
    assert check.get_yscale() == "log"
    ud = axes["update:data ratio (log10)"]
    assert [ln.get_label() for ln in ud.lines] == ["C", "W1", "W2", "1e-3"]


def test_a_run_that_diverges_is_reported_as_diverging_not_as_a_failed_check(names_path, tmp_path):
    """After a NaN both gradients are NaN: the checks after it are not failures of the backward."""
    from bpjax.errors import TrainingDiverged

    cfg = Config(steps=400, lr=1e6, diagnose_every=10, verify_every=20)
    with pytest.raises(TrainingDiverged, match="loss became (nan|inf) at step 1;"):
        fit(cfg, data=names_path, out=tmp_path / "run", verbose=False)
    a = D.load(tmp_path / "run")  # one chunk, checks at 0, 20, ...: only the one before the divergence kept
    assert a["verify_step"].tolist() == [0] and a["verify_ok"].all()
    assert a["diag_step"].tolist() == [0]  # the records up to the divergence


def test_a_damaged_diagnostics_file_is_one_line_on_resume(names_path, tmp_path):
    cfg = Config(steps=200, diagnose_every=50, verify_every=100)
    fit(cfg, data=names_path, out=tmp_path / "run", stop_at=100, verbose=False, save_plot=False)
    f = tmp_path / "run" / D.FILE
    arrays = dict(np.load(f))
    arrays["act_std"] = arrays["act_std"][:, :0]  # readable, the wrong shape
    np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match=r"is malformed: act_std has shape \(2, 0\), expected \(2, 1\)"):
        fit(resume=tmp_path / "run", data=names_path, verbose=False)
    arrays["diag_step"] = np.array("0")
    np.savez(f, **{**arrays, "act_std": arrays["act_mean"]})
    with pytest.raises(CheckpointError, match="diag_step is <U1 of shape \\(\\), expected a list"):
        D.load(tmp_path / "run")
    with pytest.warns(UserWarning, match="is malformed"):  # sampling a run needs no diagnostics
        assert bpjax_load_run(tmp_path / "run").diagnostics is None


def test_the_new_settings_leave_older_runs_identity_alone():
    """A run written before diagnose_every/verify_every existed recorded the hash of a config without
    them: at their defaults they stay out of the hash, so its checkpoint still belongs to it."""
    import hashlib
    import json

    from bpjax.data import Vocab
    from bpjax.rundir import run_identity

    cfg, vocab = Config(), Vocab.from_words(["emma", "ava"])
    before = {k: v for k, v in cfg.to_json().items() if k not in ("diagnose_every", "verify_every")}
    blob = json.dumps({"config": before, "vocab": vocab.to_json(), "data_sha256": "x"}, sort_keys=True)
    assert run_identity(cfg, vocab, "x") == hashlib.sha256(blob.encode()).hexdigest()
    assert run_identity(cfg.replace(diagnose_every=100), vocab, "x") != run_identity(cfg, vocab, "x")


def test_the_live_verification_runs_at_the_checks_precision_and_training_at_the_default(names_path):
    """The verification's gradients are traced at float32 matrix products (a GPU's TF32 would fail
    float32 rows); the training step keeps JAX's default precision, and its speed."""
    import dataclasses

    seen = set()

    def loss_manual(*a):
        seen.add(jax.config.jax_default_matmul_precision)
        return mlp.MODEL.loss_manual(*a)

    cfg = Config(dataclasses.replace(mlp.MODEL, name="recording", loss_manual=loss_manual), steps=100,
                 diagnose_every=50, verify_every=50)
    run = fit(cfg, data=names_path, out=False, verbose=False)
    assert seen == {None, "highest"} and run.diagnostics["verify_ok"].all()
