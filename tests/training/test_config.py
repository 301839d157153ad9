"""The configuration: each setting declared once, a model's sizes and defaults, config.json both ways."""

import json
import re
from pathlib import Path

import pytest

from bpjax import Config, models
from bpjax.errors import CheckpointError, ConfigError
from bpjax.training.config import Setting, settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "run-0.1.0"


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


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(optimizer="lion"), "optimizer must be one of"),
        (dict(n_embd=0), "n-embd must be a positive integer"),
        (dict(weight_decay=0.1), "adamw only"),
        (dict(optimizer="adamw", weight_decay=-1.0), "weight-decay must be"),
        (dict(batch_size=1), "batch-size must be >= 2"),
        (dict(steps=-1), "steps must be an integer between 0"),
        (dict(n_hidden=0), "n-hidden must be a positive integer"),
        (dict(lr=0.0), "lr must be a positive"),
        (dict(lr=float("nan")), "lr must be a positive"),
        (dict(grad="magic"), "grad must be one of"),
        (dict(seed=2**32), "seed must be an integer between 0 and 2**32 - 1"),
        (dict(chunk=0), "chunk must be a positive integer"),
        (dict(eval_every=1.5), "eval-every must be an integer between 0"),
    ],
)
def test_invalid_settings(kw, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        Config(**kw).validate()


def test_a_decayed_rate_that_float32_rounds_to_zero_is_refused():
    with pytest.raises(ConfigError, match="round to 0"):
        Config(lr_decay_factor=1e-50).validate()
    Config(lr_decay_factor=1e-30).validate()  # 1e-31 is a float32 number: fine


def test_verification_settings_are_checked():
    with pytest.raises(ConfigError, match="verify-every must be a multiple of diagnose-every"):
        Config(diagnose_every=100, verify_every=150).validate()
    with pytest.raises(ConfigError, match="diagnose-every must be an integer between 0"):
        Config(diagnose_every=-1).validate()


def test_stop_at_is_within_the_steps():
    with pytest.raises(ConfigError, match="stop-at must be between 0 and the steps"):
        Config(steps=600).validate(stop_at=601)


def test_each_setting_is_declared_once_with_its_type_default_help_and_range():
    """Config's fields are the settings: each carries its rule, which validation, config.json and the
    command line read (the flags: tests/cli/test_args.py)."""
    rules = settings()
    assert list(rules) == [
        "batch_size",
        "steps",
        "optimizer",
        "lr",
        "lr_decay_step",
        "lr_decay_factor",
        "weight_decay",
        "seed",
        "split_seed",
        "grad",
        "eval_every",
        "chunk",
        "diagnose_every",
        "verify_every",
        "schedule",
        "warmup_steps",
        "min_lr",
        "grad_clip",
        "grad_accum",
        "weight_decay_on",
        "compute_dtype",
    ]
    assert all(isinstance(r, Setting) and r.help for r in rules.values())
    assert rules["optimizer"].choices == ("sgd", "adamw") and rules["grad"].choices == ("manual", "autodiff")
    assert rules["lr_decay_step"].optional and not rules["steps"].optional
    d = Config()
    for name, rule in rules.items():
        assert rule.valid(getattr(d, name)), name  # every default is valid
        assert rule.json_ok(getattr(d, name)), name
    assert not rules["steps"].valid(True) and not rules["steps"].json_ok(True)  # a bool is not a count
    assert rules["lr"].json_ok(1) and not rules["optimizer"].valid("lion")


def test_config_json_checks_each_type_from_its_setting():
    j = Config().to_json()
    for key, bad in (
        ("steps", "100"),
        ("lr", "0.1"),
        ("grad", 1),
        ("weight_decay", "x"),
        ("n_hidden", 1.5),
        ("eval_every", None),
    ):
        with pytest.raises(CheckpointError, match=f"malformed: {key} ="):
            Config.from_json({**j, key: bad})
    assert Config.from_json({**j, "weight_decay": None, "optimizer": "adamw"}).weight_decay is None
    with pytest.raises(CheckpointError, match="unknown keys"):
        Config.from_json({**j, "momentum": 0.9})


def test_with_data_fills_a_sequence_models_block_size_and_leaves_the_callers_config_alone():
    cfg = Config("bigram", steps=4)
    filled = cfg.with_data({"block_size": 16})
    assert filled.block_size == 16 and cfg.block_size is None
    with pytest.raises(ConfigError, match="block-size is the data's"):
        Config("bigram", block_size=5).with_data({"block_size": 16})
    assert Config().with_data({"block_size": 99}).block_size == 3  # a window model's is its own


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"schedule": "linear"}, "schedule must be one of step, cosine"),
        ({"warmup_steps": 5}, "warmup-steps and min-lr apply to --schedule cosine only"),
        ({"grad_clip": -1.0}, "grad-clip must be a number >= 0"),
        ({"grad_accum": 0}, "grad-accum must be a positive integer"),
        ({"weight_decay_on": "biases"}, "weight-decay-on must be one of all, matrices"),
        ({"compute_dtype": "float16"}, "compute-dtype must be one of float32, bfloat16"),
        ({"model": "gpt", "min_lr": 0.0}, "min-lr must be a positive number"),
    ],
)
def test_nanogpts_settings_are_checked(kw, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        Config(**kw).validate()
