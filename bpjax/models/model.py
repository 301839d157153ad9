"""The :class:`Model` interface: a model is its forward and its init.

    MODEL = Model(name="mlp", sizes={"n_embd": 10, "n_hidden": 64, "block_size": 3},
                  init=init, forward=forward, ...)

* ``init(key, *, vocab_size, **sizes) -> (params, state)``; ``state`` is ``{}`` for a model
  without running statistics (an optional ``dtype`` keyword lets ``bpjax check --float64`` draw
  the parameters in float64);
* ``forward(ly, params, state, X, tap) -> (logits, new_state)``: the one forward, written against
  a layer set ``ly`` (:mod:`bpjax.layers`) and passing each named intermediate through
  ``tap(name, value)`` (:class:`bpjax.check.Tap`). ``ly.training`` says which mode it runs in: in
  eval mode ``state`` holds the eval statistics (:attr:`Model.eval_stats`).

From the forward come, by :func:`losses_from_forward`, what training, checking and evaluation call:
``loss`` (the forward over the plain layers, with the loss layer: ``jax.grad`` of it is the oracle),
``loss_manual`` (the same over the hand-written ones), ``loss_tapped`` (either, every intermediate
through a tap: what ``--diagnose-every`` records) and ``logits_eval``. A model may still be given as
those functions instead of a forward (bpjax 0.1's form); then it has no layer table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import layers as L
from ..errors import ConfigError
from .forward import losses_from_forward

DATA_LAYOUTS = ("windows", "sequences", "text")
"""How a model's (X, Y) rows are cut from the words: ``"windows"`` are the notebook's context
windows (``X`` [N, block_size], ``Y`` [N]: the next character), ``block_size`` one of its sizes;
``"sequences"`` are makemore's padded words (``X``, ``Y`` [N, T], ``-1`` targets masked), and
``block_size`` is the data's T, filled in before ``init`` (declare it as ``None``)."""


def _state_as_stats(params, state, X_train):
    return state


def _no_probes(name: str) -> bool:
    return False


_COMPUTING: dict = {}  # id(model) -> (model, {dtype: its copy}): the model is kept, so the id stays its


def _no_dropout(sizes) -> float:
    return 0.0


@dataclass(frozen=True, eq=False)
class Model:
    """What bpjax needs of a model: its forward and init, its sizes and how it trains.

    See the module docstring for ``init`` and ``forward``; every other field has a default.
    """

    name: str
    init: Callable
    forward: Callable | None = None
    """``forward(ly, params, state, X, tap) -> (logits, new_state)``: the model, written once."""
    sizes: dict = field(default_factory=dict)
    """The model's size options and their defaults (``n_hidden``, ...): keyword arguments of ``init``."""
    defaults: dict = field(default_factory=dict)
    """Training settings this model starts from instead of :class:`bpjax.training.Config`'s (``lr``, ...)."""
    help: dict = field(default_factory=dict)
    """One line of help per size (``--n-hidden``'s text) and ``""`` for the model itself."""
    layers: L.Layers = L.MANUAL
    """The layer set the forward is written against: bpjax's, or ``L.MANUAL.extend(...)`` with yours."""
    data: str = "windows"
    """The data layout of its rows (:data:`DATA_LAYOUTS`)."""
    time_major: bool = False
    """The forward's logits are [T, B, V] (the loss pairs them with ``Y.T``; eval swaps them back)."""
    eval_stats: Callable = _state_as_stats
    """``eval_stats(params, state, X_train) -> stats``: what eval mode's ``state`` holds (the state
    itself, e.g. running statistics; the notebook's MLP calibrates batch norm on every training row)."""
    train_loss: Callable | None = None
    """``train_loss(ly) -> loss(params, state, X, Y)``: the loss training differentiates, when it is
    computed differently from the forward's (its value the same): bengio's packed positions."""
    check_tables: Callable | None = None
    """``check_tables(params, state, X, Y) -> [Table]``: tables ``bpjax check`` prints before the layer
    and whole-model ones (the notebook's atomic chain)."""
    flops: Callable | None = None
    """``flops(batch, vocab_size, **sizes) -> int``: one training step's matmul FLOPs."""
    min_batch: int = 1
    """Rows a training batch needs (2 for batch norm: Bessel's n - 1)."""
    check_sizes: Callable | None = None
    """``check_sizes(sizes)`` raises :class:`ConfigError` for sizes the architecture cannot take."""
    probes: Callable = _no_probes
    """``probes(name) -> bool``: the tapped intermediates that are a nonlinearity's output (tanh,
    GELU, a recurrence's hidden states), whose statistics ``--diagnose-every`` records."""
    cpu_cores: int | None = None
    """Cores ``bpjax train`` lets XLA use on a CPU by default (None: every core). 1 for models whose
    step is many small kernels (see :func:`bpjax.training.distributed.use_cores`)."""
    dropout: Callable = _no_dropout
    """``dropout(sizes) -> rate``: the model's dropout rate at these sizes (0: none). Above 0, each
    training step passes its losses a key for the masks (``loss(..., key=k, rate=rate)``)."""
    size_ranges: dict = field(default_factory=dict)
    """``{size: (lo, hi)}``: a size's valid values ``lo <= v < hi`` where its default's type does not say
    them (a probability: ``(0, 1)``)."""
    check_variants: dict = field(default_factory=dict)
    """``{label: sizes}``: the sizes ``bpjax check`` also checks the model at, beside its defaults (the
    GPT: ``{"bias on": {"bias": True}, "dropout 0.1": {"dropout": 0.1}}``)."""
    state_dicts: dict = field(default_factory=dict)
    """``{"makemore": keys}``: a peer's state-dict key map, ``keys(params_or_n_layer)`` (see
    :mod:`bpjax.models.statedict`)."""
    # What the forward gives (or, for a model written as its functions, given):
    loss: Callable | None = None
    """``loss(params, state, X, Y) -> (loss, new_state)``: plain ``jnp``; ``jax.grad`` of it is the oracle."""
    loss_manual: Callable | None = None
    """The same value through the hand-written backwards."""
    logits_eval: Callable | None = None
    """``logits_eval(params, stats, X) -> logits``: eval mode."""
    loss_autodiff: Callable | None = None
    """What ``--grad autodiff`` differentiates (None: ``loss``)."""
    loss_tapped: Callable | None = None
    """``loss_tapped(params, state, X, Y, tap, manual)``: the training loss with its intermediates
    through ``tap``; None: diagnostics record the weights only."""

    def __post_init__(self):
        if self.data not in DATA_LAYOUTS:
            raise ConfigError(f"model {self.name!r}: data layout must be one of {DATA_LAYOUTS}, got {self.data!r}")
        if "block_size" not in self.sizes:
            raise ConfigError(
                f"model {self.name!r}: its sizes need a block_size (the rows' context length; "
                "None for sequences, where the data sets it)"
            )
        if self.forward is not None:
            derived = losses_from_forward(self.forward, self.layers, self.data, self.time_major, self.train_loss)
            for k, f in derived.items():
                if getattr(self, k) is None:
                    object.__setattr__(self, k, f)
        missing = [k for k in ("loss", "loss_manual", "logits_eval") if getattr(self, k) is None]
        if missing:
            raise ConfigError(f"model {self.name!r}: give its forward, or {', '.join(missing)}")

    def __repr__(self):
        return f"Model({self.name!r}, sizes={self.sizes})"

    def computing_in(self, dtype: str) -> Model:
        """This model with its matrix products in ``dtype`` (``--compute-dtype``; the parameters, the
        norms, softmax and loss stay as they are): its layer set's :meth:`~bpjax.layers.Layers.computing_in`,
        the losses derived again. ``"float32"``: the model itself. One copy per model and dtype."""
        if dtype == "float32":
            return self
        if self.forward is None:
            raise ConfigError(f"compute-dtype {dtype} needs a model written as its forward; {self.name!r} is not")
        cache = _COMPUTING.setdefault(id(self), (self, {}))[1]
        if dtype not in cache:
            derived = dict.fromkeys(("loss", "loss_manual", "logits_eval", "loss_autodiff", "loss_tapped"))
            cache[dtype] = dataclasses.replace(self, layers=self.layers.computing_in(dtype), **derived)
        return cache[dtype]

    def training_loss(self, grad: str) -> Callable:
        """The loss ``--grad grad`` differentiates: ``loss_manual`` for ``"manual"``, else
        ``loss_autodiff`` (default ``loss``)."""
        if grad == "manual":
            return self.loss_manual
        return self.loss if self.loss_autodiff is None else self.loss_autodiff

    def tables(self, params, state, X, Y, *, key=None, rate: float = 0.0) -> list:
        """``bpjax check``'s tables for this model on one batch, at the checks' matrix-product
        precision (:data:`bpjax.check.PRECISION`): its own (``check_tables``), then every layer the
        forward runs (:func:`bpjax.models.tables.layer_table`) and the whole model; with dropout at
        ``rate``, its masks drawn from ``key`` (the same on both sides)."""
        from ..check import precise
        from .tables import default_tables

        own = [] if self.check_tables is None else list(precise(self.check_tables)(params, state, X, Y))
        return own + default_tables(self, params, state, X, Y, key, rate)
