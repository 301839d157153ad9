"""The model interface, and the registry of the models bpjax ships.

A model is a handful of pure functions over ``(params, state)`` pytrees, described by one value::

    MODEL = Model(name="mlp", sizes={"n_embd": 10, "n_hidden": 64, "block_size": 3},
                  init=init, loss=loss, loss_manual=loss_manual, logits_eval=logits_eval, ...)

* ``init(key, *, vocab_size, **sizes) -> (params, state)``; ``state`` is ``{}`` for a model
  without running statistics (an optional ``dtype`` keyword lets ``bpjax check --float64`` draw
  the parameters in float64);
* ``loss(params, state, X, Y) -> (loss, new_state)``: plain ``jnp``, so ``jax.grad`` of it is the
  oracle; ``loss_manual``: the same value from the ``custom_vjp`` layers of :mod:`bpjax.layers`;
  ``loss_autodiff`` (optional, default ``loss``): what ``--grad autodiff`` differentiates, the same
  value computed as ``loss_manual`` computes it but for the hand-written backward (bengio: on the
  packed positions with a target), so that manual against autodiff times the backward alone;
* ``logits_eval(params, stats, X) -> logits [N, V]``: eval mode, with ``stats`` from
  ``eval_stats(params, state, X_train)`` (default: the state itself, e.g. running statistics);
* ``check_tables(params, state, X, Y) -> [Table]``: ``bpjax check``'s tables (default: the whole
  model, ``jax.grad(loss_manual)`` against ``jax.grad(loss)``, one row per parameter);
* ``flops(batch, vocab_size, **sizes) -> int``: one training step's matmul FLOPs (optional);
* ``loss_tapped(params, state, X, Y, tap, manual) -> (loss, new_state)``: the training loss's value
  (``manual``: from ``loss_manual``'s layers, else ``loss``'s) with every named intermediate passed through
  ``tap(name, value)`` (see :class:`bpjax.check.Tap`), and ``probes(name) -> bool`` picking the
  nonlinearities' outputs among them: what ``--diagnose-every`` records (optional);
* ``cpu_cores``: the CPU cores ``bpjax train`` pins the model to by default (None: every core; see
  :func:`bpjax.distributed.use_cores`).

Every model module exports one ``MODEL``; :func:`get` and :func:`names` read the registry below.
Adding a model is one new module plus one line in :data:`_MODULES`. A model of your own needs no
registration: pass it as ``Config(model=my_model)`` (see the README).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ConfigError

DATA_LAYOUTS = ("windows", "sequences")
"""How a model's (X, Y) rows are cut from the words: ``"windows"`` are the notebook's context
windows (``X`` [N, block_size], ``Y`` [N]: the next character), ``block_size`` one of its sizes;
``"sequences"`` are makemore's padded words (``X``, ``Y`` [N, T], ``-1`` targets masked), and
``block_size`` is the data's T, filled in before ``init`` (declare it as ``None``)."""


MAKEMORE_TRAINING = {"optimizer": "adamw", "lr": 5e-4, "lr_decay_factor": 1.0, "steps": 10_000}
"""makemore's training settings, the defaults of its models: AdamW (weight decay 0.01, betas 0.9,
0.99), lr 5e-4 constant, batch 32 (bpjax's default); 10,000 steps."""


def torch_linear(key, fan_in: int, fan_out: int, dtype=None):
    """``(W [fan_in, fan_out], b [fan_out])`` ~ U(±1/√fan_in): PyTorch's ``nn.Linear`` default init
    (its weight ``[out, in]``, stored transposed)."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.float32 if dtype is None else dtype
    kW, kb = jax.random.split(key)
    bound = 1.0 / fan_in**0.5
    return (jax.random.uniform(kW, (fan_in, fan_out), dtype, -bound, bound),
            jax.random.uniform(kb, (fan_out,), dtype, -bound, bound))


def _state_as_stats(params, state, X_train):
    return state


@dataclass(frozen=True, eq=False)
class Model:
    """What bpjax needs of a model. See the module docstring for each function's signature."""

    name: str
    init: Callable
    loss: Callable
    loss_manual: Callable
    logits_eval: Callable
    sizes: dict = field(default_factory=dict)
    """The model's size options and their defaults (``n_hidden``, ...): keyword arguments of ``init``."""
    defaults: dict = field(default_factory=dict)
    """Training settings this model starts from instead of :class:`bpjax.config.Config`'s (``lr``, ...)."""
    eval_stats: Callable = _state_as_stats
    check_tables: Callable | None = None
    flops: Callable | None = None
    data: str = "windows"
    min_batch: int = 1
    """Rows a training batch needs (2 for batch norm: Bessel's n - 1)."""
    check_sizes: Callable | None = None
    """``check_sizes(sizes)`` raises :class:`ConfigError` for sizes the architecture cannot take."""
    help: dict = field(default_factory=dict)
    """One line of help per size (``--n-hidden``'s text) and ``""`` for the model itself."""
    loss_autodiff: Callable | None = None
    """What ``--grad autodiff`` differentiates (None: ``loss``): ``loss``'s value, computed as
    ``loss_manual`` computes it but with plain layers. ``loss`` stays the oracle."""
    loss_tapped: Callable | None = None
    """``loss_tapped(params, state, X, Y, tap, manual)``: the training loss with its intermediates
    through ``tap``; None: diagnostics record the weights only."""
    probes: Callable = lambda name: False  # noqa: E731
    """``probes(name) -> bool``: the tapped intermediates that are a nonlinearity's output (tanh,
    GELU, a recurrence's hidden states), whose statistics ``--diagnose-every`` records."""
    cpu_cores: int | None = None
    """Cores ``bpjax train`` lets XLA use on a CPU by default (None: every core). 1 for models whose
    step is many small kernels: XLA splits each loop over its thread pool, and on them the hand-off
    costs more than the second core gives (see :func:`bpjax.distributed.use_cores`)."""

    def __post_init__(self):
        if self.data not in DATA_LAYOUTS:
            raise ConfigError(f"model {self.name!r}: data layout must be one of {DATA_LAYOUTS}, got {self.data!r}")
        if "block_size" not in self.sizes:
            raise ConfigError(f"model {self.name!r}: its sizes need a block_size (the rows' context length; "
                              "None for sequences, where the data sets it)")

    def __repr__(self):
        return f"Model({self.name!r}, sizes={self.sizes})"

    def training_loss(self, grad: str) -> Callable:
        """The loss ``--grad grad`` differentiates: ``loss_manual`` for ``"manual"``, else
        ``loss_autodiff`` (default ``loss``)."""
        if grad == "manual":
            return self.loss_manual
        return self.loss if self.loss_autodiff is None else self.loss_autodiff

    def tables(self, params, state, X, Y) -> list:
        """``bpjax check``'s tables for this model on one batch, at the checks' matrix-product
        precision (:data:`bpjax.check.PRECISION`)."""
        from .check import model_table, precise

        if self.check_tables is not None:
            return precise(self.check_tables)(params, state, X, Y)
        return [model_table(lambda p, X, Y: self.loss_manual(p, state, X, Y)[0],
                            lambda p, X, Y: self.loss(p, state, X, Y)[0], params, X, Y,
                            title=f"whole {self.name}: grad(loss_manual) vs grad(loss)")]


_MODULES = {  # name -> module exporting MODEL; adding a model is one line here
    "mlp": "bpjax.mlp",
    "wavenet": "bpjax.wavenet",
    "bigram": "bpjax.bigram",
    "bengio": "bpjax.bengio",
    "rnn": "bpjax.rnn",
    "gru": "bpjax.gru",
    "bow": "bpjax.bow",
    "transformer": "bpjax.transformer",
    "deep": "bpjax.deep",
}


def n_params(params) -> int:
    """The number of scalars in a parameter pytree."""
    import jax

    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


def names() -> tuple[str, ...]:
    """The registered models' names, in the order ``--model`` lists them."""
    return tuple(_MODULES)


def get(name) -> Model:
    """The registered model ``name`` (a :class:`Model` passes through unchanged)."""
    if isinstance(name, Model):
        return name
    if not isinstance(name, str) or name not in _MODULES:
        raise ConfigError(f"model must be one of {', '.join(_MODULES)}, got {name!r}")
    model = importlib.import_module(_MODULES[name]).MODEL
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
