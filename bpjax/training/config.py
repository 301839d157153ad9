"""The configuration of a run: the model and its sizes, the optimizer, the schedule, the seeds.

    Config()                                   # the notebook's MLP and training (4,137 parameters)
    Config(n_hidden=200, steps=50_000)         # any size of the model, any training setting
    Config(model="wavenet")                    # that model's sizes and defaults (lr decay at 150k)
    Config(model=my_model)                     # a Model of your own (see bpjax.models)

Each setting is declared once, as a field of :class:`Config` made by :func:`setting`: its name,
type, default, help and valid range drive the validation (:meth:`Config.validate`), ``config.json``
(:meth:`Config.from_json` checks each value's type) and the command line's flags
(:mod:`bpjax.cli.args`). A model declares its own sizes and training defaults (``Model.sizes``,
``Model.defaults``); a size is read like any setting (``cfg.n_hidden``) and kept in ``cfg.sizes``.
``config.json`` holds the settings and the sizes side by side, flat, as bpjax 0.1.0 wrote them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .. import models
from ..errors import CheckpointError, ConfigError
from ..models import Model
from .optim import DECAYED_PARAMETERS, OPTIMIZERS, SCHEDULES, WEIGHT_DECAYED
from .step import GRADS

F32_TINY = 1.1754943508222875e-38  # float32's smallest normal number: the rates live in float32
INT_LIMIT = 2**31
"""Counts (steps, sizes) stay below 2**31: XLA's int32 step counter and shapes."""
COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Setting:
    """What a setting is: ``kind`` (int, float, str or bool), its help, and its valid values —
    ``lo`` (inclusive) to ``hi`` (exclusive) for numbers, ``positive`` for a number > 0,
    ``choices`` for a name; ``optional``: None is allowed (its meaning in ``none``)."""

    kind: type
    help: str
    lo: float | None = None
    hi: float | None = None
    positive: bool = False
    choices: tuple = ()
    optional: bool = False
    none: str = ""
    metavar: str | None = None

    def describe(self) -> str:
        """The valid values, as an error message says them."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.kind is bool:
            return "true or false"
        if self.kind is float and self.hi is not None:
            return f"a number from {self.lo:g} up to (not including) {self.hi:g}"
        if self.kind is float:
            return "a positive number" if self.positive else f"a number >= {self.lo:g}"
        hi = "2**31 - 1" if self.hi == INT_LIMIT else "2**32 - 1" if self.hi == 2**32 else f"{self.hi - 1:,}"
        if self.lo == 1:
            return f"a positive integer below {hi.replace(' - 1', '')}"
        return f"an integer between {self.lo:g} and {hi}"

    def valid(self, v) -> bool:
        if v is None:
            return self.optional
        if self.kind is bool:
            return isinstance(v, bool)
        if self.kind is str:
            return isinstance(v, str) and (not self.choices or v in self.choices)
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if self.kind is int and not isinstance(v, int) or not number:
            return False
        if self.kind is float and not math.isfinite(v) or self.positive and not v > 0:
            return False
        return (self.lo is None or v >= self.lo) and (self.hi is None or v < self.hi)

    def json_ok(self, v) -> bool:
        """Whether ``config.json``'s value has this setting's type (its range is checked by validate)."""
        if v is None:
            return self.optional
        if self.kind is float:
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        return isinstance(v, self.kind) and (self.kind is bool or not isinstance(v, bool))


def setting(default, help: str, kind: type | None = None, **rule) -> dataclasses.Field:
    """A :class:`Config` field: its default and its :class:`Setting` (``kind`` defaults to the
    default's type)."""
    return field(default=default, metadata={"setting": Setting(kind or type(default), help, **rule)})


def size_kind(default) -> type:
    """A size's type, from its default: ``bool`` (an on/off option), ``float`` (a scale) or ``int``."""
    return bool if isinstance(default, bool) else float if isinstance(default, float) else int


def size_setting(name: str, default, help: str = "", bounds: tuple | None = None) -> Setting:
    """The rule of a model's size: a positive number (or integer), or true/false; ``bounds``
    ``(lo, hi)`` where the model says otherwise (``Model.size_ranges``: a dropout rate's ``(0, 1)``)."""
    kind = size_kind(default)
    if bounds is not None:
        return Setting(kind, help or name.replace("_", " "), lo=bounds[0], hi=bounds[1])
    return Setting(
        kind,
        help or name.replace("_", " "),
        lo=None if kind is float else 1,
        hi=None if kind is float else INT_LIMIT,
        positive=kind is float,
    )


@dataclass(init=False)
class Config:
    """Everything that defines a run. Defaults: the notebook's config (4,137 parameters).

    Keyword arguments are the fields below and the model's sizes (``n_hidden=200``); the model's
    own defaults come first, then the arguments.
    """

    model: str | Model = "mlp"
    sizes: dict = field(default_factory=dict)  # the model's sizes (n_embd, n_hidden, block_size, ...)
    batch_size: int = setting(32, "minibatch rows", lo=1, hi=INT_LIMIT)
    steps: int = setting(200_000, "training steps", lo=0, hi=INT_LIMIT)
    optimizer: str = setting("sgd", "the optimizer", choices=tuple(OPTIMIZERS))
    lr: float = setting(0.1, "initial learning rate", positive=True)
    lr_decay_step: int | None = setting(
        None,
        "step from which lr is multiplied by the decay factor",
        int,
        lo=0,
        hi=INT_LIMIT,
        optional=True,
        none="half the steps",
    )
    lr_decay_factor: float = setting(0.1, "the learning rate's factor from the decay step on", positive=True)
    weight_decay: float | None = setting(
        None, "AdamW's decoupled weight decay", float, lo=0, optional=True, none="0.01"
    )
    seed: int = setting(0, "init and minibatch seed", lo=0, hi=2**32)
    split_seed: int = setting(42, "train/val/test shuffle seed (the notebook's random.seed(42))", lo=0, hi=2**32)
    grad: str = setting("manual", "hand-written backward or jax.grad", choices=GRADS)
    eval_every: int = setting(0, "val loss every K steps", lo=0, hi=INT_LIMIT, none="at the end only", metavar="K")
    chunk: int = setting(5_000, "steps per lax.scan call (one host round trip each)", lo=1, hi=INT_LIMIT)
    diagnose_every: int = setting(
        0,
        "record activation, gradient and update statistics every K steps, on device (diagnostics.npz and .png)",
        lo=0,
        hi=INT_LIMIT,
        none="never",
        metavar="K",
    )
    verify_every: int = setting(
        0,
        "check the hand-written gradients against jax.grad every K steps, on device; stop at the first failing row",
        lo=0,
        hi=INT_LIMIT,
        none="never",
        metavar="K",
    )
    schedule: str = setting(
        "step",
        "the learning rate's schedule: step (lr, then lr x lr-decay-factor from "
        "lr-decay-step) or cosine (linear warmup, then cosine to min-lr at the last step)",
        choices=SCHEDULES,
    )
    warmup_steps: int = setting(0, "steps of linear warmup before the cosine", lo=0, hi=INT_LIMIT, metavar="K")
    min_lr: float | None = setting(
        None, "the cosine's final learning rate", float, positive=True, optional=True, none="lr / 10"
    )
    grad_clip: float = setting(0.0, "clip the gradient at this global norm", lo=0, none="0: no clipping")
    grad_accum: int = setting(
        1, "micro-batches of batch-size rows per step (one step over their union)", lo=1, hi=INT_LIMIT, metavar="K"
    )
    weight_decay_on: str = setting(
        "all",
        "the parameters weight decay applies to: all (makemore's AdamW) or "
        "matrices (nanoGPT's: weights and embeddings, not biases or norms)",
        choices=DECAYED_PARAMETERS,
    )
    compute_dtype: str = setting(
        "float32",
        "matrix products in float32 or bfloat16 (parameters, optimizer state and reductions stay float32)",
        choices=COMPUTE_DTYPES,
    )

    def __init__(self, model: str | Model = "mlp", **kwargs):
        if models.is_model_file(model):  # PATH.py:NAME, loaded once: the run keeps this Model
            model = models.load_model_file(model)
        spec = models.get(model)
        names = set(settings())
        if clash := set(spec.sizes) & (names | {"model", "sizes"}):
            raise ConfigError(f"model {spec.name!r} names a size like a setting: {', '.join(sorted(clash))}")
        given = {**spec.defaults, **kwargs}  # the model's defaults, then the arguments
        sizes = dict(given.pop("sizes", None) or {})
        sizes.update({k: given.pop(k) for k in list(given) if k in spec.sizes})
        unknown = (set(given) - names) | (set(sizes) - set(spec.sizes))
        if unknown:
            raise ConfigError(
                f"model {spec.name!r} has no setting or size {', '.join(sorted(unknown))}; "
                f"its sizes are {', '.join(spec.sizes) or 'none'}"
            )
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "sizes", {**spec.sizes, **sizes})
        for f in dataclasses.fields(self):
            if f.name in names:
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
        values = {k: getattr(self, k) for k in settings()}
        model = changes.pop("model", self.model)
        if models.get(model) is self.spec:
            return Config(model, sizes=dict(self.sizes), **{**values, **changes})
        mine = Config(self.model)
        changed = {k: v for k, v in values.items() if v != getattr(mine, k)}
        return Config(model, **{**changed, **changes})

    def with_data(self, info: dict) -> Config:
        """A copy with the data-derived sizes filled in: a sequence model's ``block_size`` is the
        data's T (``info`` from :func:`bpjax.data.load_dataset`). This config is left as it is."""
        if self.spec.data != "sequences":
            return self.replace()
        T = info["block_size"]
        if self.block_size not in (None, T):
            raise ConfigError(
                f"block-size is the data's for model {self.model_name!r} (the longest word + 1 "
                f"= {T}), got {self.block_size}"
            )
        return self.replace(block_size=T)

    def validate(self, stop_at: int | None = None) -> Config:
        """Raise :class:`ConfigError` (one line) for anything nonsensical, before any compiling: each
        setting and size against its rule, then what settings say of each other."""
        spec = self.spec
        for name, rule in settings().items():
            _need(rule.valid(getattr(self, name)), name, rule, getattr(self, name))
        for name, v in self.sizes.items():
            if v is None and name == "block_size" and spec.data == "sequences":
                continue  # the data's T, filled in by with_data
            rule = size_setting(name, spec.sizes.get(name), bounds=spec.size_ranges.get(name))
            _need(rule.valid(v), name, rule, v)
        _cross_checks(self, spec)
        if spec.check_sizes is not None:
            spec.check_sizes(self.sizes)  # what the architecture cannot take (a WaveNet's block size)
        if stop_at is not None and not 0 <= stop_at <= self.steps:
            raise ConfigError(f"stop-at must be between 0 and the steps ({self.steps}), got {stop_at}")
        return self

    def to_json(self) -> dict:
        """Settings and sizes, flat (``{"model": "mlp", "n_embd": 10, ..., "lr": 0.1, ...}``)."""
        return {"model": self.model_name, **self.sizes, **{k: getattr(self, k) for k in settings()}}

    @classmethod
    def from_json(cls, obj: dict, model: Model | None = None) -> Config:
        """A config read back from ``config.json`` (0.1.0's too): every value's type checked, then validated.

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
            raise CheckpointError(
                f"config.json is invalid: {e}; for a model of your own: load_run(DIR, model=...)"
            ) from None
        sizes = {k: size_setting(k, d, bounds=spec.size_ranges.get(k)) for k, d in spec.sizes.items() if d is not None}
        rules = {**sizes, **settings()}
        unknown = set(obj) - set(rules) - set(spec.sizes) - {"model"}
        if unknown:
            raise CheckpointError(
                f"config.json has unknown keys {sorted(unknown)}; was it written by another version of bpjax?"
            )
        for k, v in obj.items():
            if k != "model" and not rules.get(k, Setting(int, "")).json_ok(v):
                raise CheckpointError(f"config.json is malformed: {k} = {v!r}")
        rest = {k: v for k, v in obj.items() if k != "model"}
        try:
            return cls(spec if model is not None else name, **rest).validate()
        except ConfigError as e:
            raise CheckpointError(f"config.json is invalid: {e}") from None


def settings() -> dict[str, Setting]:
    """Config's settings by name, in field order: every field but the model and its sizes."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(Config) if "setting" in f.metadata}


def _need(ok: bool, name: str, rule: Setting, v) -> None:
    if not ok:
        raise ConfigError(f"{name.replace('_', '-')} must be {rule.describe()}, got {v!r}")


def _cross_checks(cfg: Config, spec: Model) -> None:
    """What the settings say of each other and of the model."""
    if cfg.batch_size < max(spec.min_batch, 1):
        why = " (batch norm divides by n - 1)" if spec.min_batch >= 2 else ""
        raise ConfigError(f"batch-size must be >= {max(spec.min_batch, 1)}{why}, got {cfg.batch_size}")
    decayed = cfg.lr * cfg.lr_decay_factor
    if math.isfinite(decayed) and decayed < F32_TINY:
        raise ConfigError(
            f"lr x lr-decay-factor = {decayed:.3g} is below float32's smallest normal number "
            f"({F32_TINY:.3g}): the decayed rate would round to 0"
        )
    if cfg.weight_decay is not None and cfg.optimizer not in WEIGHT_DECAYED:
        raise ConfigError(
            f"weight-decay applies to --optimizer {', '.join(WEIGHT_DECAYED)} only (the notebook's SGD has none)"
        )
    if cfg.schedule != "cosine" and (cfg.warmup_steps or cfg.min_lr is not None):
        raise ConfigError("warmup-steps and min-lr apply to --schedule cosine only")
    if cfg.batch_size * cfg.grad_accum >= INT_LIMIT:
        raise ConfigError("batch-size x grad-accum must be below 2**31")
    if cfg.compute_dtype != "float32" and spec.forward is None:
        raise ConfigError(
            f"compute-dtype {cfg.compute_dtype} needs a model written as its forward (its layers "
            f"compute in it); model {spec.name!r} is given as its functions"
        )
    if cfg.diagnose_every and cfg.verify_every and cfg.verify_every % cfg.diagnose_every:
        raise ConfigError(
            f"verify-every must be a multiple of diagnose-every (each check begins a cycle of "
            f"records), got {cfg.verify_every} and {cfg.diagnose_every}"
        )
