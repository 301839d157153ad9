"""The README's code, run as written: its own layer checked as printed, and the model of your own it
links to (docs/models.md): a layer of its own, trained through fit, checked, stopped and resumed,
loaded back."""

import re

import jax
import numpy as np
import pytest

from bpjax import Config, fit, load_run
from bpjax.errors import CheckpointError, ConfigError
from conftest import ROOT, batch


def readme_example() -> str:
    """The model of your own, from the documentation's models page (the README links to it)."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- user-model -->\s*```python\n(.*?)```", text, re.S)
    assert m, "docs/models.md's user-model example is missing"
    return m.group(1)


def test_readme_user_model_example_trains_through_fit(names_path, monkeypatch):
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 30
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {"__name__": "__main__"}  # run as a script: its training runs
    exec(compile(code, "README.md", "exec"), ns)
    run, model = ns["run"], ns["swish_mlp"]
    assert run.metrics["status"] == "complete" and run.metrics["model"] == "swish_mlp"
    assert run.metrics["val_loss"] < 2.45  # an MLP of 64 swish units: ~2.3 after 5,000 steps
    assert len(run.sample(n=3)) == 3
    # its tables: every hand-written layer, its own swish among them, and the whole model
    X, Y = batch(jax.random.key(0), 32)
    layers, whole = model.tables(run.params, run.state, X, Y)
    assert layers.ok and whole.ok and "swish.x" in {r.name for r in layers}
    assert {r.name for r in whole} == {"C", "W1", "b1", "W2", "b2"}


def test_a_wrong_backward_in_the_users_layer_is_caught(names_path, monkeypatch):
    code = readme_example().replace("s + x * s * (1 - s)", "s + x * s * (1 + s)").replace("steps=5_000", "steps=2")
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {"__name__": "__main__"}  # run as a script: its training runs
    exec(compile(code, "README.md", "exec"), ns)
    X, Y = batch(jax.random.key(0), 32)
    layers, whole = ns["swish_mlp"].tables(ns["run"].params, ns["run"].state, X, Y)
    assert not layers["swish.x"].ok and not whole.ok
    assert all(r.ok for r in layers if r.name != "swish.x")


def test_a_user_model_run_directory_loads_with_its_model(names_path, tmp_path, monkeypatch):
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {"__name__": "__main__"}  # run as a script: its training runs
    code = readme_example().replace("steps=5_000", "steps=200").replace("out=False", f"out={str(tmp_path / 'r')!r}")
    exec(compile(code, "README.md", "exec"), ns)
    with pytest.raises(CheckpointError, match="load_run\\(DIR, model=...\\)"):
        load_run(tmp_path / "r")
    back = load_run(tmp_path / "r", model=ns["swish_mlp"])
    assert back.step == 200 and back.metrics["val_loss"] == ns["run"].metrics["val_loss"]


def test_a_user_model_run_stops_and_resumes(names_path, tmp_path, monkeypatch):
    monkeypatch.setenv("BPJAX_DATA", str(names_path))
    ns = {"__name__": "__main__"}  # run as a script: its training runs
    exec(compile(readme_example().replace("run = fit(", "straight = fit("), "README.md", "exec"), ns)
    model, straight = ns["swish_mlp"], ns["straight"]
    cfg = Config(model=model, steps=5_000, lr=0.1)
    fit(cfg, out=tmp_path / "r", stop_at=1_234, verbose=False, save_plot=False)
    with pytest.raises(ConfigError, match="model= is for resume"):
        fit(cfg, out=False, model=model, verbose=False)
    resumed = fit(resume=tmp_path / "r", model=model, verbose=False, save_plot=False)
    assert resumed.metrics["resumed_from"] == 1_234
    np.testing.assert_array_equal(resumed.history["lossi"], straight.history["lossi"])
    assert resumed.metrics["val_loss"] == straight.metrics["val_loss"]


def own_layer_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Check your own layer", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readmes_own_layer_is_checked_as_printed_and_its_planted_slips_fail(capsys):
    layer, chain = own_layer_blocks()
    ns = {}
    exec(compile(layer, "README.md", "exec"), ns)
    printed = capsys.readouterr().out
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = text.split("## Check your own layer", 1)[1].split("```\n== ", 1)[1].split("```", 1)[0]
    names = lambda t: [line.split("|")[0].strip() for line in t.strip().splitlines()[1:-1]]
    assert names(printed) == names("== " + shown) == ["forward", "x", "g"] and printed.strip().endswith("3/3 ok")
    # the slips the README describes, planted in its own code
    for old, new, verdict in [
        ("* jnp.mean(dxh * xh", "* jnp.sum(dxh * xh", "2/3 ok; first failing: x, float64"),
        ("xh, r, g = res\n", "xh, r, g = res\n    r = r ** 1.0001\n", "first failing: x, float64"),
    ]:
        planted = layer.replace(old, new)
        assert planted != layer
        bad = {}
        exec(compile(planted, "README.md", "exec"), bad)
        out = capsys.readouterr().out
        assert verdict in out, out
        table = bad["check_layer"](bad["rmsnorm"], bad["x"], bad["g"], argnames=["x", "g"])
        by = {c.what: c.ok for c in table["x"].checks}
        assert by == {"float32": "1.0001" in new, "float64": False, "finite diff": False}
    assert ns["check_layer"](ns["rmsnorm"], ns["x"], ns["g"]).ok  # the README's own: still passes
    exec(compile(chain, "README.md", "exec"), ns)
    assert capsys.readouterr().out.strip().endswith("3/3 ok")
    table = ns["check_chain"](ns["forward"], ns["backward"], jax.numpy.ones((64, 5)), ns["x"])
    assert table.ok and table.first_wrong is None and [r.name for r in table] == ["loss", "a", "h"]
