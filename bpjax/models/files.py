"""A model of your own on the command line: ``--model PATH.py:NAME``, a file defining a ``Model``.

    bpjax train --model my_models.py:swish_mlp --steps 5000
    bpjax check --model my_models.py:swish_mlp
    bpjax sample --run runs/<dir>          # loads my_models.py again, if it has not changed

The file is imported as a module of its own (its directory first on ``sys.path`` while it runs,
so it can import its neighbours); ``NAME`` must be a :class:`~bpjax.models.Model`. A run directory
records the file's absolute path, ``NAME`` and SHA-256 (:func:`model_file_record`), so ``sample
--run`` and ``--resume`` load it again and refuse, in one line, a file that is gone or has changed.
Only that file is hashed: a neighbour it imports (``import helpers``) is imported as Python imports
it, once a process, and its changes are not detected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import weakref
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from .model import Model

_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a loaded Model -> its file's record
_LOADED: dict = {}  # (path, sha256, name) -> Model: one import per file version


def is_model_file(spec) -> bool:
    """Whether ``spec`` reads ``PATH.py:NAME``."""
    return isinstance(spec, str) and ":" in spec and spec.rsplit(":", 1)[0].endswith(".py")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model_file(spec: str, *, expect_sha: str | None = None, error=ConfigError) -> Model:
    """The :class:`Model` named ``NAME`` in the file ``PATH.py`` (``spec`` = ``"PATH.py:NAME"``).

    Every way it can go wrong is one line (``error``, :class:`ConfigError` by default): no such
    file, a file that raises on import (its exception's type and message), no ``NAME`` in it, a
    ``NAME`` that is not a ``Model``; with ``expect_sha``, a file that has changed since.
    """
    if not is_model_file(spec):
        raise error(f"a model file is given as PATH.py:NAME, got {spec!r}")
    path_text, name = spec.rsplit(":", 1)
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise error(
            f"model file {path_text!r} does not exist"
            if expect_sha is None
            else f"this run's model file {str(path)!r} is gone; put it back (SHA-256 {expect_sha[:12]}…)"
        )
    sha = _sha256(path)
    if expect_sha is not None and sha != expect_sha:
        raise error(
            f"this run's model file {str(path)!r} has changed since it trained (SHA-256 {sha[:12]}…, the "
            f"run's {expect_sha[:12]}…); restore it, or load the run in Python with load_run(DIR, model=...)"
        )
    if (path, sha, name) in _LOADED:
        return _LOADED[(path, sha, name)]
    module_name = f"bpjax_user_model_{hashlib.sha256(f'{path}:{sha}'.encode()).hexdigest()[:16]}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None:
        raise error(f"model file {path_text!r} cannot be imported as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module  # as an import does: dataclasses, pickle and typing look it up
    sys.path.insert(0, str(path.parent))
    try:
        loader.loader.exec_module(module)
    except Exception as e:  # the user's code: whatever it raises is one line, with where it came from
        sys.modules.pop(module_name, None)
        raise error(f"importing model file {path_text!r} raised {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, Model))
        where = f"its Models: {', '.join(found)}" if found else "it defines no bpjax.Model"
        raise error(f"model file {path_text!r} has no {name!r} ({where})")
    model = getattr(module, name)
    if not isinstance(model, Model):
        raise error(f"{path_text}:{name} is a {type(model).__name__}, not a bpjax.Model")
    _SOURCES[model] = {"path": str(path), "name": name, "sha256": sha}
    _LOADED[(path, sha, name)] = model
    return model


def model_file_record(model) -> dict | None:
    """``{"path", "name", "sha256"}`` of a model loaded by :func:`load_model_file`; None otherwise."""
    try:
        return _SOURCES.get(model)
    except TypeError:  # a name, not a Model
        return None


def load_recorded(record: dict) -> Model:
    """A run directory's model file again (:func:`model_file_record`'s record), checked against
    its SHA-256: :class:`CheckpointError` in one line if it is gone or has changed."""
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("path", "name", "sha256")):
        raise CheckpointError("config.json's model_file is malformed; the run directory is damaged")
    return load_model_file(f"{record['path']}:{record['name']}", expect_sha=record["sha256"], error=CheckpointError)
