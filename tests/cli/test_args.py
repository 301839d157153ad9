"""The flags every command shares: one per training setting and model size, from their one declaration."""

import argparse
import re

import pytest

from bpjax import models
from bpjax.cli import build_parser
from bpjax.cli.args import integer, on_off, positive_int, seed, train_flags
from bpjax.training.config import settings
from conftest import run_cli


def test_cli_choices_come_from_the_registry():
    for cmd in ("train", "check", "sweep"):
        out = run_cli(cmd, "--help").stdout
        assert re.search(r"--model \{" + ",".join(models.names()) + r"\}", out), (cmd, out)
    assert "--n-hidden" in run_cli("train", "--help").stdout


def test_the_lectures_experiments_are_one_flag_each():
    args = build_parser().parse_args(
        ["train", "--model", "deep", "--batchnorm", "off", "--gain", "1", "--last-scale", "1", "--n-blocks", "3"]
    )
    assert (args.batchnorm, args.gain, args.last_scale, args.n_blocks) == (False, 1.0, 1.0, 3)


def test_every_setting_is_a_flag_of_its_type_with_its_help_and_default():
    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "cmd").choices["train"]
    flags = {a.dest: a for a in train._actions}
    for name, rule in settings().items():
        action = flags[name]
        assert action.option_strings == ["--" + name.replace("_", "-")] and action.default is None
        assert rule.help in action.help and "(default " in action.help
        if rule.choices:
            assert tuple(action.choices) == rule.choices
        else:
            assert action.type is {int: integer, float: float}[rule.kind]
    assert (
        "sgd (the notebook's plain SGD)" in flags["optimizer"].help and "half the steps" in flags["lr_decay_step"].help
    )
    assert set(train_flags()) == {"model", *settings(), *models.all_sizes()}
    args = parser.parse_args(["train", "--lr", "0.05", "--optimizer", "adamw", "--n-hidden", "7"])
    assert (args.lr, args.optimizer, args.n_hidden, args.steps) == (0.05, "adamw", 7, None)


def test_argument_types_say_what_they_expected():
    assert positive_int("3") == 3 and seed("0") == 0 and on_off(" ON ") is True and on_off("no") is False
    for f, bad, needle in (
        (positive_int, "0", "positive"),
        (positive_int, "x", "integer"),
        (seed, "-1", "seed"),
        (on_off, "maybe", "on or off"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=needle):
            f(bad)


def test_integer_options_take_integers_as_people_write_them():
    assert integer("10000") == integer("10_000") == integer("1e4") == integer("1E4") == 10_000
    for bad in ("1.5", "1e-1", "ten", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer"):
            integer(bad)
    args = build_parser().parse_args(["train", "--steps", "1e4", "--batch-size", "1_024", "--stop-at", "5e3"])
    assert (args.steps, args.batch_size, args.stop_at) == (10_000, 1_024, 5_000)
    assert build_parser().parse_args(["sample", "--run", "r", "-n", "2e3"]).n == 2_000


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(list(argv))
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's wrapping undone


def test_help_after_a_model_shows_that_models_defaults(capsys):
    gru = _help(capsys, "train", "--model", "gru", "--help")
    assert "Defaults shown are --model gru's." in gru
    for text in ("training steps (default 10,000)", "initial learning rate (default 0.0005)", "(default adamw)"):
        assert text in gru, text
    assert "--n-embd2" in gru and "--n-hidden" not in gru  # the gru's sizes only, at its defaults
    gpt = _help(capsys, "train", "--model=gpt", "--help")
    assert "training steps (default 2,000)" in gpt and "(default cosine)" in gpt and "(default 0.001)" in gpt
    plain = _help(capsys, "train", "--help")
    assert "Defaults depend on --model" in plain
    assert "(default 200,000 for mlp, wavenet, deep; 10,000 for bigram, bengio, rnn, gru, bow, transformer" in plain
    bow = _help(capsys, "sweep", "--model", "bow", "--help")
    assert "steps per model (default 10,000)" in bow and "comma-separated (default 0.0005)" in bow
    assert "(default 200,000)" in _help(capsys, "sweep", "--help")  # sweep's --model defaults to mlp
    assert "embedding size (default 64)" in _help(capsys, "check", "--model", "bengio", "--help")


@pytest.mark.parametrize("cmd", ["check", "train", "sample", "diagnose", "bench", "sweep"])
def test_a_misspelled_flag_names_the_nearest_one(capsys, cmd):
    flag = {"sample": "--seed", "diagnose": "--run", "bench": "--repeats", "check": "--float64"}.get(cmd, "--steps")
    required = {"sample": ["--run", "r"], "diagnose": ["--run", "r"]}.get(cmd, [])
    typo = flag[:-1] + "z" + flag[-1:]  # --stepzs, --seezd, ...
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([cmd, *required, typo + "=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert f"unrecognized argument {typo}; did you mean {flag}?" in err[0] and f"bpjax {cmd}: error:" in err[0]


def test_a_misspelled_command_or_choice_names_the_nearest_one(capsys):
    for argv, near in ((["trian"], "train"), (["train", "--model", "gruu"], "gru")):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(f"(did you|maybe you) mean '?{near}'?", err[0]), err
