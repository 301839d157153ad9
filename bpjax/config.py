"""The configuration of a run: the model and its sizes, the optimizer, the schedule, the seeds.

    Config()                                   # the notebook's MLP and training (4,137 parameters)
    Config(n_hidden=200, steps=50_000)         # any size of the model, any training setting
    Config(model="wavenet")                    # that model's sizes and defaults (lr decay at 150k)
    Config(model=my_model)                     # a Model of your own (see bpjax.models)

A model declares its own sizes and training defaults (``Model.sizes``, ``Model.defaults``); a
size is read like any setting (``cfg.n_hidden``) and kept in ``cfg.sizes``. ``config.json`` holds
the settings and the sizes side by side, flat, as bpjax 0.1.0 wrote them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from . import models
from .errors import CheckpointError, ConfigError
from .models import Model

F32_TINY = 1.1754943508222875e-38  # float32's smallest normal number: the rates live in float32

GRADS = ("manual", "autodiff")
"""``manual``: jax.grad of the model's ``loss_manual`` (the hand-written backward); ``autodiff``:
jax.grad of its plain ``loss``."""

OPTIMIZERS = ("sgd", "adamw")
"""``sgd``: the notebook's plain SGD; ``adamw``: AdamW (makemore's betas 0.9, 0.99, eps 1e-8) with
``weight_decay``. Both with the step-decay schedule ``lr`` then ``lr * lr_decay_factor``."""


def size_kind(default) -> type:
    """A size's type, from its default: ``bool`` (an on/off option), ``float`` (a scale) or ``int``."""
    return bool if isinstance(default, bool) else float if isinstance(default, float) else int


def _settings() -> tuple[str, ...]:
    """Config's settings, in field order: its fields but the model and its sizes."""
    return tuple(f.name for f in dataclasses.fields(Config) if f.name not in ("model", "sizes"))


@dataclass(init=False)
class Config:
    """Everything that defines a run. Defaults: the notebook's config (4,137 parameters).

    Keyword arguments are the fields below and the model's sizes (``n_hidden=200``); the model's
    own defaults come first, then the arguments.
    """

    model: str | Model = "mlp"
    sizes: dict = field(default_factory=dict)  # the model's sizes (n_embd, n_hidden, block_size, ...)
    batch_size: int = 32
    steps: int = 200_000
    optimizer: str = "sgd"
    lr: float = 0.1
    lr_decay_step: int | None = None  # None: half the steps
    lr_decay_factor: float = 0.1
    weight_decay: float | None = None  # adamw's; None: 0.01 (makemore's)
    seed: int = 0  # init and minibatches
    split_seed: int = 42  # the notebook's random.seed(42) shuffle
    grad: str = "manual"  # manual | autodiff
    eval_every: int = 0  # 0: only at the end
    chunk: int = 5_000  # steps per lax.scan call (one host round trip each)
    diagnose_every: int = 0  # record activation, gradient and update statistics every K steps (0: never)
    verify_every: int = 0  # check the hand-written gradients against jax.grad every K steps (0: never)

    def __init__(self, model: str | Model = "mlp", **kwargs):
        spec = models.get(model)
        settings = set(_settings())
        if clash := set(spec.sizes) & (settings | {"model", "sizes"}):
            raise ConfigError(f"model {spec.name!r} names a size like a setting: {', '.join(sorted(clash))}")
        given = {**spec.defaults, **kwargs}  # the model's defaults, then the arguments
        sizes = dict(given.pop("sizes", None) or {})
        sizes.update({k: given.pop(k) for k in list(given) if k in spec.sizes})
        unknown = (set(given) - settings) | (set(sizes) - set(spec.sizes))
        if unknown:
            raise ConfigError(f"model {spec.name!r} has no setting or size {', '.join(sorted(unknown))}; "
                              f"its sizes are {', '.join(spec.sizes) or 'none'}")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "sizes", {**spec.sizes, **sizes})
        for f in dataclasses.fields(self):
            if f.name in settings:
                setattr(self, f.name, given.get(f.name, f.default))

    def __getattr__(self, name):  # a size reads like a field: cfg.n_hidden
        sizes = self.__dict__.get("sizes")
        if sizes is not None and name in sizes:
            return sizes[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __setattr__(self, name, value):  # and writes like one: cfg.n_hidden = 200 sets the size
        sizes = self.__dict__.get("sizes")
        if sizes is not None and name in sizes:
            sizes[name] = value
        else:
            object.__setattr__(self, name, value)

    @classmethod
    def for_model(cls, model: str | Model = "mlp", **overrides) -> Config:
        """A config with ``model``'s sizes and defaults, then ``overrides`` (same as ``Config(model, ...)``)."""
        return cls(model, **overrides)

    @property
    def spec(self) -> Model:
        """The :class:`~bpjax.models.Model` this config trains."""
        return models.get(self.model)

    @property
    def model_name(self) -> str:
        return self.spec.name

    @property
    def decay_step(self) -> int:
        return self.steps // 2 if self.lr_decay_step is None else self.lr_decay_step

    def replace(self, **changes) -> Config:
        """A copy with ``changes`` (settings or sizes) applied. With another ``model``, the settings
        this config changed from its model's defaults carry over; sizes and the rest are the new model's."""
        settings = {k: getattr(self, k) for k in _settings()}
        model = changes.pop("model", self.model)
        if models.get(model) is self.spec:
            return Config(model, sizes=dict(self.sizes), **{**settings, **changes})
        mine = Config(self.model)
        changed = {k: v for k, v in settings.items() if v != getattr(mine, k)}
        return Config(model, **{**changed, **changes})

    def with_data(self, info: dict) -> Config:
        """A copy with the data-derived sizes filled in: a sequence model's ``block_size`` is the
        data's T (``info`` from :func:`bpjax.data.load_dataset`). This config is left as it is."""
        if self.spec.data != "sequences":
            return self.replace()
        T = info["block_size"]
        if self.block_size not in (None, T):
            raise ConfigError(f"block-size is the data's for model {self.model_name!r} (the longest word + 1 "
                              f"= {T}), got {self.block_size}")
        return self.replace(block_size=T)

    def validate(self, stop_at: int | None = None) -> Config:
        """Raise :class:`ConfigError` (one line) for anything nonsensical, before any compiling."""
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)
        spec = self.spec
        for name, v in {**self.sizes, "chunk": self.chunk}.items():
            if v is None and name == "block_size" and spec.data == "sequences":
                continue  # the data's T, filled in by with_data
            kind = size_kind(spec.sizes.get(name))
            if kind is bool:
                need(isinstance(v, bool), f"{name.replace('_', '-')} must be true or false, got {v!r}")
                continue
            if kind is float:
                need(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
                     f"{name.replace('_', '-')} must be a positive number, got {v!r}")
                continue
            need(isinstance(v, int) and not isinstance(v, bool) and v > 0,
                 f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
            need(v < 2**31, f"{name.replace('_', '-')} must be below 2**31, got {v:,}")
        need(isinstance(self.batch_size, int) and 0 < self.batch_size < 2**31,
             f"batch size must be a positive integer below 2**31, got {self.batch_size!r}")
        need(self.batch_size >= max(spec.min_batch, 1),
             f"batch size must be >= {max(spec.min_batch, 1)}"
             + (" (batch norm divides by n - 1)" if spec.min_batch >= 2 else "") + f", got {self.batch_size}")
        need(isinstance(self.steps, int) and 0 <= self.steps < 2**31,
             f"steps must be between 0 and 2**31 - 1, got {self.steps}")
        need(0 <= self.seed < 2**32 and 0 <= self.split_seed < 2**32,
             f"seeds must be between 0 and 2**32 - 1, got {self.seed} and {self.split_seed}")
        need(math.isfinite(self.lr) and self.lr > 0, f"lr must be a positive number, got {self.lr}")
        need(math.isfinite(self.lr_decay_factor) and self.lr_decay_factor > 0,
             f"lr-decay-factor must be a positive number, got {self.lr_decay_factor}")
        need(not math.isfinite(self.lr * self.lr_decay_factor) or self.lr * self.lr_decay_factor >= F32_TINY,
             f"lr x lr-decay-factor = {self.lr * self.lr_decay_factor:.3g} is below float32's smallest normal "
             f"number ({F32_TINY:.3g}): the decayed rate would round to 0")
        need(self.lr_decay_step is None or 0 <= self.lr_decay_step < 2**31,
             f"lr-decay-step must be between 0 and 2**31 - 1, got {self.lr_decay_step}")
        need(self.weight_decay is None or (math.isfinite(self.weight_decay) and self.weight_decay >= 0),
             f"weight-decay must be a number >= 0, got {self.weight_decay}")
        need(self.weight_decay is None or self.optimizer == "adamw",
             "weight-decay applies to --optimizer adamw only (the notebook's SGD has none)")
        for name in ("eval_every", "diagnose_every", "verify_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31,
                 f"{name.replace('_', '-')} must be an integer between 0 and 2**31 - 1, got {v!r}")
        need(not (self.diagnose_every and self.verify_every) or self.verify_every % self.diagnose_every == 0,
             f"verify-every must be a multiple of diagnose-every (each check begins a cycle of records), "
             f"got {self.verify_every} and {self.diagnose_every}")
        need(self.grad in GRADS, f"grad must be one of {', '.join(GRADS)}, got {self.grad!r}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if spec.check_sizes is not None:
            spec.check_sizes(self.sizes)  # what the architecture cannot take (a WaveNet's block size)
        if stop_at is not None:
            need(0 <= stop_at <= self.steps, f"stop-at must be between 0 and the steps ({self.steps}), got {stop_at}")
        return self

    def to_json(self) -> dict:
        """Settings and sizes, flat (``{"model": "mlp", "n_embd": 10, ..., "lr": 0.1, ...}``)."""
        return {"model": self.model_name, **self.sizes, **{k: getattr(self, k) for k in _settings()}}

    @classmethod
    def from_json(cls, obj: dict, model: Model | None = None) -> Config:
        """A config read back from ``config.json`` (0.1.0's too): every field type-checked and validated.

        ``model``: the :class:`Model` of a run whose model is not registered (one of your own).
        """
        if not isinstance(obj, dict):
            raise CheckpointError("config.json is malformed: 'config' is not an object")
        name = obj.get("model", "mlp")
        if not isinstance(name, str):
            raise CheckpointError(f"config.json is malformed: model = {name!r}")
        if model is not None and name != model.name:
            raise CheckpointError(f"config.json is for model {name!r}, not {model.name!r}")
        try:
            spec = model or models.get(name)
        except ConfigError as e:
            raise CheckpointError(f"config.json is invalid: {e}; "
                                  "for a model of your own: load_run(DIR, model=...)") from None
        unknown = set(obj) - set(_settings()) - set(spec.sizes) - {"model"}
        if unknown:
            raise CheckpointError(f"config.json has unknown keys {sorted(unknown)}; "
                                  "was it written by another version of bpjax?")
        kinds = {"grad": str, "optimizer": str, "lr": (int, float), "lr_decay_factor": (int, float),
                 "weight_decay": (int, float, type(None)), "lr_decay_step": (int, type(None))}
        kinds.update({k: {bool: bool, float: (int, float), int: int}[size_kind(d)] for k, d in spec.sizes.items()
                      if d is not None})
        for k, v in obj.items():
            if k == "model":
                continue
            want = kinds.get(k, int)
            if (isinstance(v, bool) and want is not bool) or not isinstance(v, want):
                raise CheckpointError(f"config.json is malformed: {k} = {v!r}")
        rest = {k: v for k, v in obj.items() if k != "model"}
        try:
            return cls(spec if model is not None else name, **rest).validate()
        except ConfigError as e:
            raise CheckpointError(f"config.json is invalid: {e}") from None
