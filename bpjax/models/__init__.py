"""The models bpjax ships, one module each, and the :class:`Model` interface they share.

=================  ===========================================================================
``mlp``            the notebook's MLP (makemore part 4): embedding, linear, batch norm, tanh, linear
``wavenet``        makemore part 5's hierarchical WaveNet
``deep``           makemore part 3's deeper network (its experiments one setting each)
``bigram``         makemore's six: the bigram table, Bengio's MLP, RNN, GRU, bag of words and the
``bengio``         Transformer, on makemore's padded words
``rnn``, ``gru``
``bow``
``transformer``
``gpt``            nanoGPT's character-level GPT (a text's characters; tied head, dropout)
=================  ===========================================================================

Each module is its forward and its init, and exports one ``MODEL``; :func:`get` and :func:`names`
read the registry below. Adding a model is one new module plus one line in :data:`REGISTRY`. A
model of your own needs no registration: pass it as ``Config(model=my_model)``.
:mod:`bpjax.models.makemore` converts makemore.py's state dicts, :mod:`bpjax.models.nanogpt` nanoGPT's.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .files import is_model_file, load_model_file, model_file_record
from .forward import LOSS_LAYERS, forward_loss, losses_from_forward
from .model import DATA_LAYOUTS, Model

REGISTRY = {  # name -> module exporting MODEL; adding a model is one line here
    "mlp": "bpjax.models.mlp",
    "wavenet": "bpjax.models.wavenet",
    "bigram": "bpjax.models.bigram",
    "bengio": "bpjax.models.bengio",
    "rnn": "bpjax.models.rnn",
    "gru": "bpjax.models.gru",
    "bow": "bpjax.models.bow",
    "transformer": "bpjax.models.transformer",
    "deep": "bpjax.models.deep",
    "gpt": "bpjax.models.gpt",
}

MAKEMORE_TRAINING = {"optimizer": "adamw", "lr": 5e-4, "lr_decay_factor": 1.0, "steps": 10_000}
"""makemore's training settings, the defaults of its models: AdamW (weight decay 0.01, betas 0.9,
0.99), lr 5e-4 constant, batch 32 (bpjax's default); 10,000 steps."""


def n_params(params) -> int:
    """The number of scalars in a parameter pytree."""
    import jax

    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


def names() -> tuple[str, ...]:
    """The registered models' names, in the order ``--model`` lists them."""
    return tuple(REGISTRY)


def get(name) -> Model:
    """The registered model ``name`` (a :class:`Model` passes through unchanged; ``"PATH.py:NAME"``
    is the ``Model`` named NAME in that file, :func:`bpjax.models.files.load_model_file`)."""
    if isinstance(name, Model):
        return name
    if is_model_file(name):  # a model of your own: PATH.py:NAME
        return load_model_file(name)
    if not isinstance(name, str) or name not in REGISTRY:
        raise ConfigError(f"model must be one of {', '.join(REGISTRY)}, got {name!r}")
    model = importlib.import_module(REGISTRY[name]).MODEL
    assert model.name == name, (model.name, name)
    return model


def all_sizes() -> dict[str, str]:
    """Every registered model's size names with a line of help: the CLI's size flags."""
    out = {}
    for n in names():
        m = get(n)
        for k in m.sizes:
            out.setdefault(k, m.help.get(k, k.replace("_", " ")))
    return out


__all__ = [
    "Model",
    "DATA_LAYOUTS",
    "LOSS_LAYERS",
    "REGISTRY",
    "MAKEMORE_TRAINING",
    "forward_loss",
    "losses_from_forward",
    "n_params",
    "names",
    "get",
    "all_sizes",
    "is_model_file",
    "load_model_file",
    "model_file_record",
]
