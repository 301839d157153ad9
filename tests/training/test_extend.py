"""Extending a run (--resume DIR --steps N): where the schedule allows, the extended run is the run
of N steps from the start, bit for bit; where it does not, one line says why and what to pass."""

import json

import jax
import numpy as np
import pytest

from bpjax import Config, fit, load_run
from bpjax.errors import CheckpointError, ConfigError
from bpjax.training import extend

SMALL = dict(n_hidden=16, chunk=30)  # 40 steps: chunks 30 + 10; extended to 80: 30 + 10 | 30 + 10 + ...


def small(**kw):
    return Config(**{**SMALL, **kw})


def assert_same_run(a, b):
    """Parameters, optimizer state and every training loss equal, bit for bit; the same final losses."""
    np.testing.assert_array_equal(a.history["lossi"], b.history["lossi"])
    for x, y in zip(
        jax.tree_util.tree_leaves((a.params, a.opt_state)),
        jax.tree_util.tree_leaves((b.params, b.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for k in ("train_loss", "val_loss", "test_loss"):
        assert a.metrics[k] == b.metrics[k], k


@pytest.mark.parametrize(
    "settings, extend_with",
    [
        (dict(lr_decay_factor=1.0), {}),  # a constant rate (makemore's AdamW defaults are one too)
        (dict(), dict(lr_decay_step=20)),  # a decay at half of 40: fixed where it was
    ],
    ids=["constant", "decay-fixed"],
)
def test_an_extended_run_is_the_longer_run_bit_for_bit(names_path, tmp_path, settings, extend_with):
    straight = fit(small(steps=80, **settings, **extend_with), data=names_path, out=tmp_path / "a", verbose=False)
    first = fit(small(steps=40, **settings), data=names_path, out=tmp_path / "b", verbose=False)
    assert first.metrics["status"] == "complete"
    longer = fit(resume=tmp_path / "b", steps=80, verbose=False, **extend_with)
    assert longer.step == 80 and longer.metrics["status"] == "complete" and longer.config.steps == 80
    assert_same_run(longer, straight)
    ext = {"at_step": 40, "before": {"steps": 40}, "after": {"steps": 80}}
    if extend_with:
        ext["before"]["lr_decay_step"], ext["after"]["lr_decay_step"] = None, 20
    assert longer.metrics["extensions"] == [ext]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["extensions"] == [ext]
    back = load_run(tmp_path / "b")
    assert back.config == longer.config and back.step == 80
    assert list(back.history["eval_steps"]) == [40, 80]  # the history keeps the first end's evaluation


def test_a_stopped_run_extends_and_its_record_survives_a_later_resume(names_path, tmp_path):
    straight = fit(small(steps=90, lr_decay_factor=1.0), data=names_path, out=False, verbose=False)
    fit(small(steps=60, lr_decay_factor=1.0), data=names_path, out=tmp_path / "r", stop_at=25, verbose=False)
    tr_dir = tmp_path / "r"
    cfg = load_run(tr_dir).config
    meta = json.loads((tr_dir / "config.json").read_text())
    mid = extend.extended(cfg, 25, tr_dir, steps=75)
    meta = {**meta, "extensions": extend.record(tr_dir, meta, cfg, mid, 25)}  # as --steps 75, then kill -9
    meta["config"] = mid.to_json()
    extend.record(tr_dir, meta, mid, extend.extended(mid, 25, tr_dir, steps=90), 25)  # --steps 90, killed again
    assert load_run(tr_dir).config.steps == 90  # the step-25 checkpoint still belongs to the run, twice extended
    done = fit(resume=tr_dir, verbose=False)  # a plain resume goes on to the recorded 90
    assert done.metrics["extensions"] == [
        {"at_step": 25, "before": {"steps": 60}, "after": {"steps": 75}},
        {"at_step": 25, "before": {"steps": 75}, "after": {"steps": 90}},
    ]
    assert_same_run(done, straight)


def test_a_checkpoint_from_before_another_extension_is_refused(names_path, tmp_path):
    fit(small(steps=40, lr_decay_factor=1.0), data=names_path, out=tmp_path / "r", verbose=False)
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg = load_run(tmp_path / "r").config
    extend.record(tmp_path / "r", meta, cfg.replace(steps=41), cfg.replace(steps=80), 40)  # a forged "before"
    with pytest.raises(CheckpointError, match="does not belong"):
        load_run(tmp_path / "r")


def test_where_the_schedule_is_not_defined_past_its_end_one_line_says_what_to_pass():
    half = Config(n_hidden=16, steps=40)  # the notebook's: lr 0.1, then 0.01 from half the steps
    with pytest.raises(ConfigError, match="decays at half its steps .step 20.*pass --lr-decay-step 20 to keep"):
        extend.extended(half, 40, "runs/x", steps=80)
    with pytest.raises(ConfigError, match="--lr-decay-step 30 moves the decay .at step 20. within the 40 steps"):
        extend.extended(half, 40, "runs/x", steps=80, lr_decay_step=30)
    assert extend.extended(half, 15, "runs/x", steps=80).decay_step == 40  # not reached yet: moves with the steps
    cosine = Config(model="gpt", steps=40, warmup_steps=10)
    with pytest.raises(ConfigError, match="cosine schedule ends at its last step .40.*new run with --steps 80"):
        extend.extended(cosine, 20, "runs/x", steps=80)
    assert extend.extended(cosine, 10, "runs/x", steps=80).steps == 80  # only its warmup run so far
    wavenet = Config(model="wavenet", steps=200_000)  # a fixed decay at 150,000
    assert extend.extended(wavenet, 200_000, "runs/x", steps=300_000).decay_step == 150_000
    with pytest.raises(ConfigError, match="below the 40 of runs/x: a run is extended, not shortened"):
        extend.extended(half, 40, "runs/x", steps=30)
    with pytest.raises(ConfigError, match="--lr-decay-step goes with --steps"):
        extend.extended(half, 40, "runs/x", lr_decay_step=20)
    assert extend.extended(half, 40, "runs/x", steps=40) is half  # its own steps: a plain resume
