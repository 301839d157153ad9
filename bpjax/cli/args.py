"""What the commands share: the parser class, the argument types, and the flags of every training
setting and model size, generated from their one declaration (:func:`bpjax.training.config.setting`,
``Model.sizes``)."""

from __future__ import annotations

import argparse

from .. import models
from ..training.config import Config, settings, size_kind
from ..training.optim import OPTIMIZERS


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer(s: str) -> int:
    """An integer as people write them: ``10000``, ``10_000`` or ``1e4`` (a float that is a whole
    number); ``1.5`` or ``ten`` is refused."""
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s.replace("_", ""))
    except ValueError:
        f = None
    if f is None or not f.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}")
    return int(f)


def positive_int(s: str) -> int:
    v = integer(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def on_off(s: str) -> bool:
    v = s.strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {s!r}")


def seed(s: str) -> int:
    v = integer(s)
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed between 0 and 2**32 - 1, got {v}")
    return v


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_data_arg(p) -> None:
    p.add_argument(
        "--data",
        help="a names file, a UTF-8 text (text models), or a data set's name: names, shakespeare "
        "(default: the model's, from data/, $BPJAX_DATA or the cache)",
    )


def model_choice(s: str) -> str:
    """A registered model's name, or ``PATH.py:NAME`` (a file defining a ``bpjax.Model``, loaded by
    the command: its errors are one line)."""
    if s in models.names() or models.is_model_file(s):
        return s
    raise argparse.ArgumentTypeError(
        f"invalid choice: {s!r} (choose from {', '.join(models.names())}, or PATH.py:NAME for a "
        "file defining a bpjax.Model)"
    )


def add_model_arg(p, default: str | None = "mlp") -> None:
    described = "; ".join(f"{n}: {models.get(n).help.get('', n)}" for n in models.names())
    p.add_argument(
        "--model",
        type=model_choice,
        default=default,
        metavar="{" + ",".join(models.names()) + "} or PATH.py:NAME",
        help=("which model (default mlp)" if default else f"{described} (default mlp)")
        + "; PATH.py:NAME: the bpjax.Model named NAME in that file (a model of your own)",
    )


def _shown(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return f"{v:.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def add_size_args(p) -> None:
    """One flag per size of every registered model (``--n-hidden``), its type from its defaults."""
    g = p.add_argument_group("the model's sizes (default: the model's own; each applies to the models that have it)")
    for name, text in models.all_sizes().items():
        owners = [n for n in models.names() if name in models.get(n).sizes]
        kind = size_kind(
            next((models.get(n).sizes[name] for n in owners if models.get(n).sizes[name] is not None), None)
        )
        defaults = ", ".join(f"{n} {_shown(models.get(n).sizes[name])}" for n in owners)
        g.add_argument(
            flag(name),
            type={bool: on_off, float: float, int: integer}[kind],
            metavar={bool: "on|off", float: "X", int: None}[kind],
            help=f"{text} (default: {defaults})",
        )


def add_setting_args(p) -> None:
    """One flag per training setting, from its declaration (type, help, default, choices)."""
    d = Config()
    for name, rule in settings().items():
        default = getattr(d, name)
        shown = rule.none if default is None or (default == 0 and rule.none) else _shown(default)
        text = rule.help
        if name == "optimizer":
            text += ": " + ", ".join(f"{k} ({desc})" for k, (_, desc) in OPTIMIZERS.items())
        kw = {"choices": rule.choices} if rule.choices else {"type": {int: integer, float: float}[rule.kind]}
        p.add_argument(flag(name), metavar=rule.metavar, help=f"{text} (default {shown})", **kw)


def train_flags() -> tuple[str, ...]:
    """Config's settings, ``model`` and every registered model's sizes: what ``bpjax train`` passes on."""
    return ("model", *settings(), *models.all_sizes())
