"""What the commands share: the parser class, the argument types, and the flags of every training
setting and model size, generated from their one declaration (:func:`bpjax.training.config.setting`,
``Model.sizes``)."""

from __future__ import annotations

import argparse
import difflib
import functools
import re
import sys

from .. import models
from ..errors import BpjaxError
from ..training.config import Config, settings, size_kind
from ..training.optim import OPTIMIZERS


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error here; a
    misspelled flag or choice names the nearest one (``did you mean --steps?``); and ``--help``
    after ``--model M`` shows M's defaults (an action with a ``describe(model)`` writes its help)."""

    help_model: str | None = None
    """The ``--model`` on the command line being parsed (None: not given): the model ``--help`` describes."""

    def __init__(self, *a, **kw):
        if sys.version_info >= (3, 14):  # argparse's own "maybe you meant" for choices and commands
            kw.setdefault("suggest_on_error", True)
        super().__init__(*a, **kw)

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        self.help_model = model_in(args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:  # here, not in the caller: a command's own flags are the ones to suggest from
            self.error(unrecognized(extras, [s for a in self._actions for s in a.option_strings]))
        return namespace, extras

    def format_help(self):
        described = [a for a in self._actions if callable(getattr(a, "describe", None))]
        for a in described:
            a.help = a.describe(self.help_model)
        if described:
            self.description = (
                f"Defaults shown are --model {self.help_model}'s."
                if known_model(self.help_model)
                else f"Defaults depend on --model (mlp unless given); {self.prog} --model M --help shows M's."
            )
        return super().format_help()

    def error(self, message):
        if "maybe you meant" not in message and (near := nearest_choice(message)):  # 3.14 suggests some itself
            message += f"; did you mean {near}?"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def model_in(args: list[str]) -> str | None:
    """The value of ``--model`` in ``args`` (``--model M`` or ``--model=M``), None if not there."""
    for i, a in enumerate(args):
        if a == "--":
            break
        if a == "--model" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--model="):
            return a.partition("=")[2]
    return None


def unrecognized(extras: list[str], flags: list[str]) -> str:
    """``unrecognized argument --stepz; did you mean --steps?``: the nearest flag (difflib), where one is near."""
    unknown = [a.partition("=")[0] for a in extras if a.startswith("-") and len(a) > 1]
    if not unknown:
        return f"unrecognized arguments: {' '.join(extras)}"
    near = difflib.get_close_matches(unknown[0], [f for f in flags if f.startswith("--")], n=1, cutoff=0.6)
    return f"unrecognized argument {unknown[0]}" + (f"; did you mean {near[0]}?" if near else "")


def nearest_choice(message: str) -> str | None:
    """The choice nearest to the one an ``invalid choice: 'X' (choose from ...)`` message refused."""
    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m is None:
        return None
    near = difflib.get_close_matches(m[1], re.findall(r"[\w.-]+", m[2].partition(", or ")[0]), n=1, cutoff=0.6)
    return near[0] if near else None


def known_model(name) -> bool:
    """Whether ``name`` is a model ``--help`` can describe (registered, or a file that loads)."""
    return name is not None and model_config(name) is not None


@functools.lru_cache(maxsize=16)
def model_config(name: str) -> Config | None:
    """``Config(name)``: the model's defaults (None for a name or file that is not a model; read only)."""
    try:
        return Config(name)
    except BpjaxError:
        return None


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
    """One flag per size of every registered model (``--n-hidden``), its type from its defaults; with
    ``--model M --help``, M's sizes only, at M's defaults."""
    g = p.add_argument_group("the model's sizes (default: the model's own; each applies to the models that have it)")
    for name, text in models.all_sizes().items():
        owners = [n for n in models.names() if name in models.get(n).sizes]
        kind = size_kind(
            next((models.get(n).sizes[name] for n in owners if models.get(n).sizes[name] is not None), None)
        )
        a = g.add_argument(
            flag(name),
            type={bool: on_off, float: float, int: integer}[kind],
            metavar={bool: "on|off", float: "X", int: None}[kind],
        )
        a.describe = functools.partial(_size_help, name, text, tuple(owners))
        a.help = a.describe(None)


def _size_help(name: str, text: str, owners: tuple, model) -> str:
    cfg = model_config(model) if model is not None else None
    if cfg is not None:
        if name not in cfg.sizes:
            return argparse.SUPPRESS  # not a size of this model
        return f"{text} (default {_size_shown(cfg.sizes[name])})"
    return f"{text} (default {per_model({n: _size_shown(models.get(n).sizes[name]) for n in owners})})"


def _size_shown(v) -> str:
    return "the data's" if v is None else _shown(v)


def per_model(shown: dict[str, str]) -> str:
    """``{model: default}`` as help says it: ``10,000`` if all agree, else ``200,000 for mlp, deep; 10,000 for ...``."""
    by_value: dict[str, list[str]] = {}
    for n, v in shown.items():
        by_value.setdefault(v, []).append(n)
    if len(by_value) == 1:
        return next(iter(by_value))
    return "; ".join(f"{v} for {', '.join(ns)}" for v, ns in by_value.items())


def add_setting_args(p) -> None:
    """One flag per training setting, from its declaration (type, help, default, choices); its
    default is the model's (``--model M --help``), or each model's where they differ."""
    for name, rule in settings().items():
        text = rule.help
        if name == "optimizer":
            text += ": " + ", ".join(f"{k} ({desc})" for k, (_, desc) in OPTIMIZERS.items())
        kw = {"choices": rule.choices} if rule.choices else {"type": {int: integer, float: float}[rule.kind]}
        a = p.add_argument(flag(name), metavar=rule.metavar, **kw)
        a.describe = functools.partial(_setting_help, name, text)
        a.help = a.describe(None)


def default_shown(name: str, model) -> str:
    """Setting ``name``'s default for ``model`` as help shows it (``200,000``, ``half the steps``)."""
    rule, v = settings()[name], getattr(model_config(model) or model_config("mlp"), name)
    return rule.none if v is None or (v == 0 and rule.none) else _shown(v)


def _setting_help(name: str, text: str, model) -> str:
    if known_model(model):
        return f"{text} (default {default_shown(name, model)})"
    return f"{text} (default {per_model({n: default_shown(name, n) for n in models.names()})})"


def train_flags() -> tuple[str, ...]:
    """Config's settings, ``model`` and every registered model's sizes: what ``bpjax train`` passes on."""
    return ("model", *settings(), *models.all_sizes())
