"""The model interface: the registry, model-generic configs, a user's own Model, the optimizers, and
run directories written by bpjax 0.1.0."""
import json
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpjax import Config, Model, fit, load_run, models
from bpjax.errors import CheckpointError, ConfigError
from bpjax.optim import adamw_step_decay, make_optimizer
from conftest import ROOT, batch, run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "run-0.1.0"


# --- the registry ---------------------------------------------------------------------------
def test_registry_names_and_models():
    assert models.names() == ("mlp", "wavenet", "bigram", "bengio", "rnn", "gru", "bow", "transformer", "deep")
    for name in models.names():
        m = models.get(name)
        assert isinstance(m, Model) and m.name == name
        assert models.get(m) is m  # a Model passes through
    with pytest.raises(ConfigError, match="model must be one of mlp, wavenet, bigram, bengio, rnn"):
        models.get("gpt")
    from bpjax.config import size_kind

    for size in models.all_sizes():  # one CLI flag per size: every model that has it agrees on its type
        kinds = {size_kind(models.get(n).sizes[size]) for n in models.names()
                 if models.get(n).sizes.get(size) is not None}
        assert len(kinds) == 1, (size, kinds)


@pytest.mark.parametrize("name", models.names())
def test_every_model_keeps_the_interface(name):
    """init -> (params, state); loss and loss_manual -> (the same loss, the same new state: bit for bit
    from loss_autodiff where a model has one, else from loss); eval logits."""
    m = models.get(name)
    cfg = Config(name).with_data({"block_size": 5})  # a sequence model's T comes from the data
    params, state = m.init(jax.random.key(0), vocab_size=27, **cfg.sizes)
    X, Y = batch(jax.random.key(1), 16, block=cfg.block_size)
    if m.data == "sequences":
        Y = jnp.tile(Y[:, None], (1, cfg.block_size)).at[:, -1].set(-1)
    plain = m.training_loss("autodiff")
    (l_plain, s_plain), (l_man, s_man) = plain(params, state, X, Y), m.loss_manual(params, state, X, Y)
    assert l_plain == l_man
    np.testing.assert_allclose(m.loss(params, state, X, Y)[0], l_man, rtol=1e-6)  # the oracle, however computed
    jax.tree_util.tree_map(np.testing.assert_array_equal, s_plain, s_man)
    stats = m.eval_stats(params, state, X)
    assert m.logits_eval(params, stats, X).shape == ((16, 27) if m.data == "windows" else (16, 5, 27))
    assert m.flops is None or m.flops(32, 27, **cfg.sizes) > 0
    if m.data == "windows":  # the sequence models' tables: tests/test_sequences.py, at small sizes
        assert all(t.ok for t in m.tables(params, state, X, Y))


def test_cli_choices_come_from_the_registry():
    for cmd in ("train", "check", "sweep"):
        out = run_cli(cmd, "--help").stdout
        assert re.search(r"--model \{" + ",".join(models.names()) + r"\}", out), (cmd, out)
    assert "--n-hidden" in run_cli("train", "--help").stdout


# --- model-generic configuration ------------------------------------------------------------
def test_config_takes_the_model_sizes_and_defaults():
    assert Config().sizes == {"n_embd": 10, "n_hidden": 64, "block_size": 3}
    c = Config("wavenet", n_hidden=64, steps=10)
    assert c.sizes == {"n_embd": 24, "n_hidden": 64, "block_size": 8} and c.n_hidden == 64
    assert c.lr_decay_step == 150_000 and c.steps == 10  # the model's training default, then the arguments
    assert Config.for_model("wavenet").to_json() == Config("wavenet").to_json()
    assert c.replace(seed=3, n_embd=8).sizes["n_embd"] == 8 and c.replace(seed=3).seed == 3
    with pytest.raises(ConfigError, match="no setting or size n_layer"):
        Config(n_layer=4)
    with pytest.raises(AttributeError):
        Config().n_layer  # noqa: B018


def test_a_size_is_set_like_a_setting():
    c = Config()
    c.n_hidden, c.lr = 200, 0.05
    assert c.sizes["n_hidden"] == 200 and c.to_json()["n_hidden"] == 200 and c.lr == 0.05
    assert "n_hidden" not in vars(c)  # no shadowing attribute beside the size


def test_replace_with_another_model_keeps_what_was_changed():
    c = Config(seed=3, n_hidden=7).replace(model="wavenet")
    assert c.seed == 3 and c.lr_decay_step == 150_000 and c.sizes == models.get("wavenet").sizes


def test_config_json_with_a_model_that_is_not_a_name():
    with pytest.raises(CheckpointError, match="malformed: model"):
        Config.from_json({"model": ["mlp"]})
    with pytest.raises(ConfigError, match="model must be one of"):
        Config(model=["mlp"])


def test_config_json_round_trip_is_flat_like_0_1_0():
    c = Config("wavenet", n_hidden=32, optimizer="adamw", lr=3e-4)
    j = c.to_json()
    assert j["model"] == "wavenet" and j["n_hidden"] == 32 and "sizes" not in j
    back = Config.from_json(json.loads(json.dumps(j)))
    assert back.to_json() == j
    old = json.loads((FIXTURES / "mlp" / "config.json").read_text())["config"]
    assert "optimizer" not in old and Config.from_json(old).optimizer == "sgd"


@pytest.mark.parametrize("kw, needle", [
    (dict(optimizer="lion"), "optimizer must be one of"),
    (dict(n_embd=0), "n-embd must be a positive integer"),
    (dict(weight_decay=0.1), "adamw only"),
    (dict(optimizer="adamw", weight_decay=-1.0), "weight-decay must be"),
])
def test_invalid_settings(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        Config(**kw).validate()


# --- optimizers -----------------------------------------------------------------------------
def test_adamw_is_optax_adamw_with_the_step_decay():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5])}
    grads = [jax.tree_util.tree_map(lambda p, i=i: jnp.sin(p * (i + 1)), params) for i in range(6)]
    ours, ref = adamw_step_decay(1e-2, 3, 0.1, 0.01), [optax.adamw(r, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.01)
                                                      for r in (1e-2, 1e-3)]
    s, p = ours.init(params), params
    s_ref, p_ref = [r.init(params) for r in ref], params
    for i, g in enumerate(grads):
        u, s = ours.update(g, s, p)
        p = optax.apply_updates(p, u)
        # optax.adamw with rate 1e-2 for steps 0..2, then 1e-3: its moments are shared, so run both
        u_r = [r.update(g, sr, p_ref) for r, sr in zip(ref, s_ref, strict=True)]
        s_ref = [x[1] for x in u_r]
        p_ref = optax.apply_updates(p_ref, u_r[0 if i < 3 else 1][0])
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, p_ref)
    assert make_optimizer(Config(optimizer="adamw")) is not None


def test_adamw_trains(names_path):
    run = fit(Config(n_hidden=32, steps=600, chunk=300, optimizer="adamw", lr=1e-2), data=names_path, out=False,
              verbose=False)
    assert run.metrics["val_loss"] < 2.7


# --- a model of your own --------------------------------------------------------------------
def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- user-model -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the README's user-model example is missing"
    return m.group(1)


def test_readme_user_model_example_trains_through_fit(names_path, monkeypatch):
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    run, model = ns["run"], ns["linear"]
    assert run.metrics["status"] == "complete" and run.metrics["model"] == "linear"
    assert run.metrics["val_loss"] < 2.6  # a bigram-like linear model: ~2.35 after 5,000 steps
    assert len(run.sample(n=3)) == 3
    # the default check table: the whole model, its manual gradient against jax.grad
    X, Y = batch(jax.random.key(0), 32)
    (table,) = model.tables(run.params, run.state, X, Y)
    assert table.ok and {r.name for r in table} == {"C", "W", "b"}


def test_a_user_model_run_directory_loads_with_its_model(names_path, tmp_path, monkeypatch):
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {}
    code = readme_example().replace("steps=5_000", "steps=200").replace("out=False", f"out={str(tmp_path / 'r')!r}")
    exec(compile(code, "README.md", "exec"), ns)
    with pytest.raises(CheckpointError, match="load_run\\(DIR, model=...\\)"):
        load_run(tmp_path / "r")
    back = load_run(tmp_path / "r", model=ns["linear"])
    assert back.step == 200 and back.metrics["val_loss"] == ns["run"].metrics["val_loss"]


def test_a_user_model_run_stops_and_resumes(names_path, tmp_path, monkeypatch):
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {}
    exec(compile(readme_example().replace("run = fit(", "straight = fit("), "README.md", "exec"), ns)
    linear, straight = ns["linear"], ns["straight"]
    cfg = Config(model=linear, steps=5_000, lr=0.1)
    fit(cfg, out=tmp_path / "r", stop_at=1_234, verbose=False, save_plot=False)
    with pytest.raises(ConfigError, match="model= is for resume"):
        fit(cfg, out=False, model=linear, verbose=False)
    resumed = fit(resume=tmp_path / "r", model=linear, verbose=False, save_plot=False)
    assert resumed.metrics["resumed_from"] == 1_234
    np.testing.assert_array_equal(resumed.history["lossi"], straight.history["lossi"])
    assert resumed.metrics["val_loss"] == straight.metrics["val_loss"]


# --- run directories of bpjax 0.1.0 ---------------------------------------------------------
@pytest.fixture
def old_runs(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "runs")
    return tmp_path / "runs", json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("model", ["mlp", "wavenet"])
def test_0_1_0_run_directory_samples_as_0_1_0_did(old_runs, model):
    runs, expected = old_runs
    r = run_cli("sample", "--run", str(runs / model), "-n", "5", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == expected[model]["sample_seed1_n5"]


@pytest.mark.parametrize("model", ["mlp", "wavenet"])
def test_0_1_0_run_directory_resumes_to_0_1_0s_result(old_runs, names_path, model):
    """The fixture was stopped at step 40 of 60 by bpjax 0.1.0; 0.1.0 resumed it to these losses: bit
    for bit under the JAX it was recorded with (both on a CPU). Another JAX's XLA may fuse and round
    float32 sums differently (jax 0.11.2 moved the WaveNet's losses by 6e-8 relative), so there the losses must
    agree to float32 rounding accumulated over 20 steps, not bit for bit."""
    runs, expected = old_runs
    recorded = json.loads((runs / model / "config.json").read_text())["environment"]
    import jaxlib
    same_jax = (jax.__version__, jaxlib.__version__) == (recorded["jax"], recorded["jaxlib"])  # run_cli: on a CPU
    r = run_cli("train", "--resume", str(runs / model), "--data", str(names_path), "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((runs / model / "metrics.json").read_text())
    assert m["resumed_from"] == 40 and m["steps"] == 60
    lossi = np.load(runs / model / "history.npz")["lossi"]
    got = [m["train_loss"], m["val_loss"], m["test_loss"], *lossi[-3:].tolist()]
    want = [expected[model][k] for k in ("train_loss", "val_loss", "test_loss")] + expected[model]["lossi_tail"]
    if same_jax:
        assert got == want  # bit for bit
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
