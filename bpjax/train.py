"""Training: config, jitted step, ``lax.scan`` loop, schedule, checkpoints, calibration, eval.

The notebook's "Putting it all together", with its bug fixed (its loop reused ``bn_raw`` and
``bn_var_inv`` from an earlier cell) and the loop moved onto the device:

    run = fit(Config(steps=200_000, grad="manual"))     # or bpjax train
    run.metrics["val_loss"]                             # ≈ 2.16
    run = load_run("runs/20261126-101500")              # the same Run, back from disk

One step: draw a minibatch on device from ``fold_in(key, step)``, take the loss and gradients
from the gradient function (``jax.value_and_grad`` of the model's ``loss_manual`` or of its
plain ``loss``), update with an ``optax`` transformation. ``--grad manual|autodiff`` swaps only
the gradient function; ``model="wavenet"`` swaps the model (:data:`MODELS`).
Steps run inside ``lax.scan`` in chunks; one host round trip per chunk brings back its losses.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import layers as L
from . import mlp, wavenet
from .data import Vocab, load_words, make_splits, resolve_data_path, sha256_of
from .errors import BpjaxError, CheckpointError, ConfigError
from .io import atomic_savefig, atomic_savez, atomic_write_json

CHECKPOINT = "checkpoint.npz"
HISTORY = "history.npz"
CHECKPOINT_FORMAT = 1
CHECKPOINT_SECONDS = 60.0  # a long run also checkpoints this often (wall clock)


@dataclass
class Config:
    """Everything that defines a run. Defaults: the notebook's config (4,137 parameters).

    ``Config.for_model("wavenet", ...)`` starts from that model's defaults instead.
    """

    model: str = "mlp"  # mlp | wavenet
    n_embd: int = 10
    n_hidden: int = 64
    block_size: int = 3
    batch_size: int = 32
    steps: int = 200_000
    lr: float = 0.1
    lr_decay_step: int | None = None  # None: half the steps
    lr_decay_factor: float = 0.1
    seed: int = 0  # init and minibatches
    split_seed: int = 42  # the notebook's random.seed(42) shuffle
    grad: str = "manual"  # manual | autodiff
    eval_every: int = 0  # 0: only at the end
    chunk: int = 5_000  # steps per lax.scan call (one host round trip each)

    @classmethod
    def for_model(cls, model: str = "mlp", **overrides) -> "Config":
        """A config with ``model``'s defaults (the lecture's for the WaveNet), then ``overrides``."""
        if model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        return cls(model=model, **{**MODELS[model].defaults, **overrides})

    @property
    def decay_step(self) -> int:
        return self.steps // 2 if self.lr_decay_step is None else self.lr_decay_step

    def validate(self, stop_at: int | None = None) -> "Config":
        """Raise :class:`ConfigError` (one line) for anything nonsensical, before any compiling."""
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)
        for name in ("n_embd", "n_hidden", "block_size", "chunk"):
            v = getattr(self, name)
            need(isinstance(v, int) and v > 0, f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
        need(self.batch_size >= 2, f"batch size must be >= 2 (batch norm divides by n - 1), got {self.batch_size}")
        need(0 <= self.steps < 2**31, f"steps must be between 0 and 2**31 - 1, got {self.steps}")
        need(0 <= self.seed < 2**32 and 0 <= self.split_seed < 2**32,
             f"seeds must be between 0 and 2**32 - 1, got {self.seed} and {self.split_seed}")
        need(math.isfinite(self.lr) and self.lr > 0, f"lr must be a positive number, got {self.lr}")
        need(math.isfinite(self.lr_decay_factor) and self.lr_decay_factor > 0,
             f"lr-decay-factor must be a positive number, got {self.lr_decay_factor}")
        need(self.lr_decay_step is None or 0 <= self.lr_decay_step < 2**31,
             f"lr-decay-step must be between 0 and 2**31 - 1, got {self.lr_decay_step}")
        need(self.eval_every >= 0, f"eval-every must be >= 0, got {self.eval_every}")
        need(self.model in MODELS, f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        need(self.grad in GRADS, f"grad must be one of {', '.join(GRADS)}, got {self.grad!r}")
        if self.model == "wavenet":
            wavenet.n_stages(self.block_size)  # a block size its stages cannot reduce to 1 is an error
        if stop_at is not None:
            need(0 <= stop_at <= self.steps, f"stop-at must be between 0 and the steps ({self.steps}), got {stop_at}")
        return self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "Config":
        """A config read back from ``config.json``: every field type-checked and validated."""
        if not isinstance(obj, dict):
            raise CheckpointError("config.json is malformed: 'config' is not an object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(obj) - set(fields)
        if unknown:
            raise CheckpointError(f"config.json has unknown keys {sorted(unknown)}; "
                                  "was it written by another version of bpjax?")
        kinds = {"model": str, "grad": str, "lr": (int, float), "lr_decay_factor": (int, float),
                 "lr_decay_step": (int, type(None))}
        for k, v in obj.items():
            want = kinds.get(k, int)
            if isinstance(v, bool) or not isinstance(v, want):
                raise CheckpointError(f"config.json is malformed: {k} = {v!r}")
        try:
            return cls(**obj).validate()
        except ConfigError as e:
            raise CheckpointError(f"config.json is invalid: {e}") from None


# --------------------------------------------------------------------------------------------
# The pieces of a step: gradient function, optimizer, minibatch
# --------------------------------------------------------------------------------------------
GRADS = ("manual", "autodiff")


@dataclass(frozen=True)
class ModelSpec:
    """What training needs of a model, as plain functions over (params, state) pytrees.

    ``losses[grad](params, state, X, Y) -> (loss, new_state)``; ``eval_stats(params, state, Xtr)``
    gives the statistics eval mode uses (the MLP calibrates batch norm on the whole training set,
    as the notebook does; the WaveNet uses its running statistics, as the lecture does).
    """

    init_params: Callable
    init_state: Callable
    losses: dict
    eval_stats: Callable
    logits_eval: Callable
    defaults: dict


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(
        init_params=mlp.init_params,
        init_state=lambda params: {},
        losses={"manual": lambda p, s, X, Y: (mlp.loss_manual(p, X, Y), s),  # hand-written backward
                "autodiff": lambda p, s, X, Y: (mlp.loss(p, X, Y), s)},  # jax.grad of the plain forward
        eval_stats=lambda p, s, Xtr: mlp.calibrate_bn(p, Xtr),
        logits_eval=mlp.logits_eval,
        defaults={},
    ),
    "wavenet": ModelSpec(
        init_params=wavenet.init_params,
        init_state=wavenet.init_state,
        losses={"manual": wavenet.loss_manual, "autodiff": wavenet.loss},
        eval_stats=lambda p, s, Xtr: s,
        logits_eval=wavenet.logits_eval,
        defaults=dict(n_embd=24, n_hidden=128, block_size=8, lr_decay_step=150_000),
    ),
}


def gradient_fn(model: str, grad: str) -> Callable:
    """``(params, state, X, Y) -> ((loss, new_state), grads)``: the one thing ``--grad`` swaps."""
    return jax.value_and_grad(MODELS[model].losses[grad], has_aux=True)


def init_model(cfg: "Config", vocab_size: int, key):
    """``(params, state)`` for ``cfg``'s model and sizes."""
    spec = MODELS[cfg.model]
    params = spec.init_params(key, vocab_size=vocab_size, n_embd=cfg.n_embd, n_hidden=cfg.n_hidden,
                              block_size=cfg.block_size)
    return params, spec.init_state(params)


class StepDecayState(NamedTuple):
    count: jax.Array  # int32: updates applied so far
    lr: jax.Array  # float32: the rate before the decay step
    lr_decayed: jax.Array  # float32: the rate from the decay step on


def sgd_step_decay(lr: float, decay_step: int, factor: float) -> optax.GradientTransformation:
    """SGD with the notebook's schedule: ``p -= lr * g`` for steps < ``decay_step``, then
    ``lr * factor``. (``lr * factor`` is rounded once from Python's double: 0.1 then 0.01 exactly.)

    The rates live in the optimizer state, not in the program, so models that differ only in
    their learning rate share one compiled step and can be trained together under ``vmap``.
    """

    def init(params):
        return StepDecayState(jnp.zeros([], jnp.int32), jnp.asarray(lr, jnp.float32),
                              jnp.asarray(float(lr) * float(factor), jnp.float32))

    def update(grads, state, params=None):
        rate = jnp.where(state.count < decay_step, state.lr, state.lr_decayed)
        updates = jax.tree_util.tree_map(lambda g: (-rate).astype(g.dtype) * g, grads)
        return updates, StepDecayState(state.count + 1, state.lr, state.lr_decayed)

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """Plain SGD with the step-decay schedule of ``cfg``."""
    return sgd_step_decay(cfg.lr, cfg.decay_step, cfg.lr_decay_factor)


def sample_batches(key, steps, Xtr, Ytr, batch_size: int):
    """Minibatches for the given steps: ``X`` [len(steps), B, T], ``Y`` [len(steps), B].

    Step ``i`` draws ``randint(fold_in(key, i), (B,), 0, N)``, so the stream does not depend on how
    steps are chunked (a resumed run equals a straight one bit for bit). All the chunk's draws are
    made in one batched call before the loop, which keeps the RNG out of the sequential step.
    """
    N = Xtr.shape[0]
    ix = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, N))(steps)
    return Xtr[ix], Ytr[ix]


def train_chunk_fn(grad_fn: Callable, tx: optax.GradientTransformation, batch_size: int, unroll: int = 1,
                   mesh=None):
    """The pure ``chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length)`` (see
    :func:`make_train_chunk`). ``mesh``: split every step's rows across it (data parallelism)."""
    if mesh is not None:
        from jax.sharding import NamedSharding, PartitionSpec as P

        from .distributed import AXIS

        chunk_rows = NamedSharding(mesh, P(None, AXIS))  # [steps, B, ...]: each device draws its rows
        step_rows = NamedSharding(mesh, P(AXIS))  # [B, ...]

    def one_step(carry, batch):
        params, opt_state, state = carry
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, step_rows)
        (loss, state), grads = grad_fn(params, state, *batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, state), loss

    def chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length):
        steps = step0 + jnp.arange(length, dtype=jnp.int32)
        batches = sample_batches(jax.random.wrap_key_data(key_data), steps, Xtr, Ytr, batch_size)
        if mesh is not None:
            batches = jax.lax.with_sharding_constraint(batches, chunk_rows)
        (params, opt_state, state), losses = jax.lax.scan(one_step, (params, opt_state, state), batches,
                                                         unroll=unroll)
        finite = jnp.all(jnp.stack([jnp.isfinite(p).all() for p in jax.tree_util.tree_leaves(params)]))
        return params, opt_state, state, losses, finite

    return chunk


def make_train_chunk(grad_fn: Callable, tx: optax.GradientTransformation, batch_size: int, mesh=None):
    """Build the jitted ``chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length)``
    (``length``, static, is passed by position).

    Returns ``(params, opt_state, state, losses, finite)``: ``length`` SGD steps inside one
    ``lax.scan``, ``losses`` [length] the minibatch losses before each update (the notebook's
    ``loss.item()``), ``finite`` whether every parameter is still finite. The gradient function is
    the only thing that differs between ``--grad manual`` and ``--grad autodiff``. With a ``mesh``
    (see ``bpjax.distributed``), every input and output is replicated and each step's minibatch is
    split across the mesh: the same program, partitioned by XLA.
    """
    # No donation: the previous state stays valid, so a diverging chunk can be rolled back to it.
    # Two steps per loop iteration (unroll 2) lets XLA schedule across a step boundary: measured
    # +12% on the WaveNet, even on the MLP; 4 was slower.
    if mesh is None:
        return jax.jit(train_chunk_fn(grad_fn, tx, batch_size, unroll=2), static_argnums=(7,))
    from .distributed import replicated

    fn = train_chunk_fn(grad_fn, tx, batch_size, unroll=2, mesh=mesh)
    return jax.jit(fn, static_argnums=(7,), in_shardings=replicated(mesh), out_shardings=replicated(mesh))


# --------------------------------------------------------------------------------------------
# Eval: batch-norm calibration on the whole training set, then split losses
# --------------------------------------------------------------------------------------------
@functools.cache
def _loss_sum(model: str):
    """Jitted ``sum of eval-mode cross-entropy`` over rows, one per model (compiled once per shape)."""
    logits_eval = MODELS[model].logits_eval
    return jax.jit(lambda p, st, X, Y: L.cross_entropy_plain(logits_eval(p, st, X), Y) * X.shape[0])


def split_losses(model: str, params, stats, splits: dict, names=("train", "val", "test"),
                 rows: int = 32768) -> dict:
    """Eval-mode mean cross-entropy per split (the notebook's ``split_loss``), in row chunks."""
    loss_sum = _loss_sum(model)
    out = {}
    for k in names:
        X, Y = splits[k]
        total = sum(float(loss_sum(params, stats, jnp.asarray(X[i:i + rows]), jnp.asarray(Y[i:i + rows])))
                    for i in range(0, len(X), rows))
        out[f"{k}_loss"] = total / len(X)
    return out


# --------------------------------------------------------------------------------------------
# Run: what a training leaves behind
# --------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A trained (or stopped) run: everything needed to evaluate or sample without the data."""

    params: dict
    bn_stats: dict  # the statistics eval mode uses (see ModelSpec.eval_stats)
    vocab: Vocab
    config: Config
    metrics: dict
    history: dict  # {"lossi": [steps] log10 losses, "eval_steps": [k], "eval_val": [k]}
    dir: Path | None = None
    opt_state: object = field(default=None, repr=False)
    key_data: np.ndarray | None = field(default=None, repr=False)
    step: int = 0
    state: dict = field(default_factory=dict, repr=False)  # training-mode state (running statistics)

    def logits(self, X):
        """Eval-mode logits ``[N, V]`` for contexts ``X`` [N, block_size]."""
        return MODELS[self.config.model].logits_eval(self.params, self.bn_stats, jnp.asarray(X))

    def split_loss(self, splits: dict, split: str = "val") -> float:
        """Eval-mode loss on one split of ``make_splits(...)`` (the notebook's ``split_loss``)."""
        return split_losses(self.config.model, self.params, self.bn_stats, splits, (split,))[f"{split}_loss"]

    def sample(self, n: int = 20, seed: int = 0, max_len: int = 50) -> list[str]:
        from .sample import sample_names

        return sample_names(MODELS[self.config.model].logits_eval, self.params, self.bn_stats, self.vocab,
                            self.config.block_size, n=n, key=jax.random.key(seed), max_len=max_len)

    def __repr__(self):
        m = self.metrics
        losses = ", ".join(f"{k} {m[k + '_loss']:.4f}" for k in ("train", "val", "test") if k + "_loss" in m)
        return f"Run({self.dir or 'in memory'}: step {self.step}/{self.config.steps}, {losses})"

    def _repr_html_(self):
        """Metrics as a table and the loss curve inline: how a Run shows in Jupyter."""
        import base64
        import html
        import io

        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in self.metrics.items() if not isinstance(v, (dict, list)))
        img = ""
        fig = loss_figure(self.history, title=f"{self.config.grad} gradients, seed {self.config.seed}")
        if fig is not None:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            img = f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"
        return (f"<b>{html.escape(repr(self))}</b><div style='display:flex;gap:1em;align-items:flex-start'>"
                f"<table>{rows}</table>{img}</div>")


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------------------------
# Files of a run directory
# --------------------------------------------------------------------------------------------
def environment() -> dict:
    """What the notebook's ``%watermark`` printed: versions and the device."""
    import jaxlib

    dev = jax.devices()[0]
    return {
        "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "optax": optax.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev.platform)}",
        "device_count": jax.device_count(), "process_count": jax.process_count(),
    }


def _flat(prefix: str, tree) -> dict:
    """``{"params/['W1']": array, ...}``: a pytree's leaves under readable path names."""
    return {prefix + jax.tree_util.keystr(path): np.asarray(v)
            for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _unflat(z: dict, prefix: str, template, path: Path, what: str):
    """The pytree of ``template``'s structure from ``z``, every leaf's shape and dtype checked."""
    leaves = []
    for kp, t in jax.tree_util.tree_flatten_with_path(template)[0]:
        name = prefix + jax.tree_util.keystr(kp)
        a = z.get(name)
        if a is None or a.shape != t.shape or a.dtype != t.dtype:
            got = "missing" if a is None else f"{a.dtype}{list(a.shape)}"
            raise CheckpointError(f"{path}: {what} {jax.tree_util.keystr(kp)} is {got}, the config needs "
                                  f"{t.dtype}{list(t.shape)}; checkpoint and config.json do not match")
        leaves.append(jnp.asarray(a))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def save_checkpoint(run_dir: Path, params, opt_state, state, key_data, step: int, bn_stats, history) -> None:
    """Params, optimizer state, model state, RNG key, step, eval statistics and the loss history up
    to ``step``, in one ``.npz`` written atomically (temp file + rename): they cannot disagree."""
    arrays = {**_flat("params", params), **_flat("opt", opt_state), **_flat("state", state),
              **_flat("bn", bn_stats), **{f"history/{k}": np.asarray(v) for k, v in history.items()}}
    arrays.update(key=np.asarray(key_data), step=np.asarray(step, np.int64),
                  format=np.asarray(CHECKPOINT_FORMAT))
    atomic_savez(run_dir / CHECKPOINT, **arrays)


def _load_npz(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is this a bpjax run directory?")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise CheckpointError(f"{path} is corrupt ({e.__class__.__name__}); "
                              "train again or resume from an intact copy") from None


def load_checkpoint(run_dir: Path, cfg: Config, vocab: Vocab):
    """Read and check a checkpoint against the config.

    Returns ``(params, opt_state, state, key_data, step, bn_stats, history)``.
    """
    path = run_dir / CHECKPOINT
    z = _load_npz(path)
    fmt = z.get("format")
    if fmt is None or fmt.shape != () or fmt.dtype.kind not in "iu" or int(fmt) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has an unknown format; it was not written by this bpjax")
    spec = MODELS[cfg.model]
    p_tmpl, s_tmpl = jax.eval_shape(lambda: init_model(cfg, vocab.size, jax.random.key(0)))
    params = _unflat(z, "params", p_tmpl, path, "parameter")
    opt_state = _unflat(z, "opt", jax.eval_shape(make_optimizer(cfg).init, p_tmpl), path, "optimizer state")
    state = _unflat(z, "state", s_tmpl, path, "model state")
    X1 = jax.ShapeDtypeStruct((2, cfg.block_size), jnp.int32)
    bn = _unflat(z, "bn", jax.eval_shape(spec.eval_stats, p_tmpl, s_tmpl, X1), path, "eval statistic")
    key_data, step = z.get("key"), z.get("step")
    if step is None or step.shape != () or step.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: 'step' is missing or not an integer; the checkpoint is damaged")
    step = int(step)
    want_key = np.asarray(jax.random.key_data(jax.random.key(0)))
    if key_data is None or key_data.shape != want_key.shape or key_data.dtype != want_key.dtype:
        raise CheckpointError(f"{path}: the RNG key is missing or malformed; the checkpoint is damaged")
    if not 0 <= step <= cfg.steps:
        raise CheckpointError(f"{path}: step {step} is outside the run's 0..{cfg.steps}")
    history = {}
    for k, kind in (("lossi", "f"), ("eval_steps", "iu"), ("eval_val", "f")):
        a = z.get(f"history/{k}")
        if a is None or a.ndim != 1 or (a.size and a.dtype.kind not in kind):
            raise CheckpointError(f"{path}: the loss history ({k}) is missing or malformed")
        history[k] = a
    if len(history["lossi"]) != step or len(history["eval_steps"]) != len(history["eval_val"]):
        raise CheckpointError(f"{path}: the loss history does not match step {step}; the checkpoint is damaged")
    if not all(np.isfinite(np.asarray(v)).all() for v in jax.tree_util.tree_leaves(params)):
        raise CheckpointError(f"{path} holds non-finite parameters")
    return params, opt_state, state, key_data, step, bn, history


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is this a bpjax run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.__class__.__name__}); the run directory is damaged") from None


def load_run(run_dir) -> Run:
    """A :class:`Run` from its directory: config, vocabulary, checkpoint, metrics and history."""
    d = Path(run_dir)
    if not d.is_dir():
        raise CheckpointError(f"run directory {str(d)!r} does not exist")
    meta = _read_json(d / "config.json")
    cfg = Config.from_json(meta.get("config") if isinstance(meta, dict) else None)
    vocab = Vocab.from_json(_read_json(d / "vocab.json"))
    params, opt_state, state, key_data, step, bn, history = load_checkpoint(d, cfg, vocab)
    metrics = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {}
    return Run(params, bn, vocab, cfg, metrics, history, d, opt_state, key_data, step, state)


def _data_info(run_dir: Path) -> dict:
    """The data file a run trained on, from its config.json: ``{"path", "sha256", "words"}``."""
    info = _read_json(run_dir / "config.json").get("data")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("path", "sha256")):
        raise CheckpointError(f"{run_dir / 'config.json'} does not say which data file the run used; "
                              "it is damaged")
    return info


# --------------------------------------------------------------------------------------------
# Progress: the notebook's lines, and a bar with an ETA on a terminal
# --------------------------------------------------------------------------------------------
class Progress:
    def __init__(self, total: int, start: int, every: int, out=sys.stdout, bar=None):
        self.total, self.every, self.out = total, max(1, every), out
        self.bar = sys.stderr.isatty() if bar is None else bar
        self.s0 = start

    def lines(self, step0: int, losses: np.ndarray) -> None:
        """Print ``  10000/ 200000: 2.4803`` for each multiple of ``every`` in this chunk."""
        if self.out is None:
            return
        self._clear()
        first = -(-step0 // self.every) * self.every
        for i in range(first, step0 + len(losses), self.every):
            print(f"{i:7d}/{self.total:7d}: {losses[i - step0]:.4f}", file=self.out, flush=True)

    def update(self, step: int, train_seconds: float) -> None:
        """Redraw the bar; the rate and ETA count training time only (not compiling, not eval)."""
        if not self.bar or self.total == 0:
            return
        frac = step / self.total
        rate = (step - self.s0) / train_seconds if train_seconds > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        w = 30
        bar = "#" * int(w * frac) + "-" * (w - int(w * frac))
        eta_s = str(_dt.timedelta(seconds=int(eta))) if math.isfinite(eta) else "?"
        sys.stderr.write(f"\r[{bar}] {100 * frac:5.1f}% {step}/{self.total} {rate:,.0f} steps/s ETA {eta_s} ")
        sys.stderr.flush()

    def _clear(self):
        if self.bar:
            sys.stderr.write("\r" + " " * 90 + "\r")
            sys.stderr.flush()

    def close(self):
        self._clear()


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------
class TrainingDiverged(BpjaxError):
    pass


def _new_run_dir() -> Path:
    """``runs/<timestamp>``, with a suffix if another run started in the same second."""
    base = Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    d, i = base, 1
    while d.exists():
        d, i = base.with_name(f"{base.name}-{i}"), i + 1
    return d


def _segments(start: int, end: int, cut_every: list[int]) -> list[tuple[int, int]]:
    """Split [start, end) at every multiple of each positive entry of ``cut_every``."""
    cuts = {start, end}
    for k in cut_every:
        if k > 0:
            cuts.update(range((start // k + 1) * k, end, k))
    pts = sorted(c for c in cuts if start <= c <= end)
    return list(zip(pts[:-1], pts[1:]))


def _load_data(cfg: Config, data_path=None, expect_sha=None, source: str = "--data"):
    path = resolve_data_path(data_path, source=source)
    words = load_words(path)
    sha = sha256_of(path)
    if expect_sha is not None and sha != expect_sha:
        raise CheckpointError(f"data file {str(path)!r} is not the one this run trained on "
                              f"(SHA-256 {sha[:12]}…, the run's {expect_sha[:12]}…); pass the original with --data")
    vocab = Vocab.from_words(words)
    if len(words) < 10:
        raise ConfigError(f"{str(path)!r} has {len(words)} words; the 80/10/10 split needs at least 10")
    splits = make_splits(words, vocab, block_size=cfg.block_size, seed=cfg.split_seed)
    info = {"path": str(path), "sha256": sha, "words": len(words)}
    return vocab, splits, info


def fit(cfg: Config | None = None, *, data=None, out=None, stop_at: int | None = None,
        resume=None, devices: int = 1, verbose: bool = True, progress_bar: bool | None = None,
        save_plot: bool = True) -> Run:
    """Train, write the run directory, return the :class:`Run`.

    ``data``: a names file (default: the usual search, see ``bpjax.data``). ``out``: the run
    directory (default ``runs/<timestamp>``; ``None`` with ``out=False`` keeps everything in memory).
    ``stop_at``: stop once that many steps have run, with a checkpoint. ``resume``: a run directory
    to continue to its configured steps (``cfg`` must then be ``None``). ``devices``: data-parallel
    over that many devices of each process (see ``bpjax.distributed``); with several processes
    only process 0 writes the checkpoint, history and plot, every process its own metrics.json.
    """
    from .distributed import check_batch, local_value, make_mesh, replicate, to_local

    t_wall = time.perf_counter()
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"--devices must be a positive integer, got {devices!r}")
    mesh = make_mesh(devices) if devices > 1 or jax.process_count() > 1 else None
    is_main = jax.process_index() == 0
    resumed_from = None
    if resume is not None:
        if cfg is not None or stop_at is not None or out is not None:
            raise ConfigError("a resumed run keeps its own configuration, directory and steps; "
                              "pass no config, stop_at or out with resume")
        prev = load_run(resume)
        cfg, run_dir = prev.config, Path(resume)
        if prev.step == cfg.steps:
            raise ConfigError(f"{run_dir} is already complete ({cfg.steps:,} steps); nothing to resume")
        if mesh is not None:
            check_batch(mesh, cfg.batch_size)
        recorded = _data_info(run_dir)
        vocab, splits, data_info = _load_data(cfg, data or recorded["path"], recorded["sha256"],
                                              source="--data" if data else f"{run_dir / 'config.json'}")
        params, opt_state, state, step = prev.params, prev.opt_state, prev.state, prev.step
        key_data = np.asarray(prev.key_data)
        lossi = list(np.asarray(prev.history["lossi"], np.float32))
        evals = list(zip(prev.history["eval_steps"].tolist(), prev.history["eval_val"].tolist()))
        resumed_from, stop_at = step, None
    else:
        cfg = (cfg or Config()).validate(stop_at)
        if mesh is not None:
            check_batch(mesh, cfg.batch_size)
        vocab, splits, data_info = _load_data(cfg, data)
        run_dir = None if out is False else Path(out) if out is not None else _new_run_dir()
        if run_dir is not None:
            if (run_dir / CHECKPOINT).exists() or (run_dir / "config.json").exists():
                raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir} "
                                  "or choose another --out")
            if run_dir.exists() and not run_dir.is_dir():
                raise ConfigError(f"--out {run_dir} exists and is not a directory")
        k_init, key = jax.random.split(jax.random.key(cfg.seed))
        key_data = np.asarray(jax.random.key_data(key))
        params, state = init_model(cfg, vocab.size, k_init)
        opt_state = make_optimizer(cfg).init(params)
        step, lossi, evals = 0, [], []
        if run_dir is not None:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot create the run directory {run_dir}: {e.strerror}") from None
            atomic_write_json(run_dir / "config.json", {
                "config": cfg.to_json(), "data": data_info, "environment": environment(),
                "parallel": {"mesh_devices": mesh.size if mesh is not None else 1, "devices_per_process": devices,
                             "process_count": jax.process_count(), "process_index": jax.process_index()}})
            atomic_write_json(run_dir / "vocab.json", vocab.to_json())

    Xtr_host, _ = splits["train"]
    Xtr, Ytr = (jnp.asarray(a) for a in splits["train"])
    if mesh is not None:
        params, opt_state, state, Xtr, Ytr = replicate((params, opt_state, state, Xtr, Ytr), mesh)
        key_dev = replicate(key_data, mesh)
    else:
        key_dev = jnp.asarray(key_data)
    end = cfg.steps if stop_at is None else stop_at
    log = print if verbose else (lambda *a, **k: None)
    log(f"bpjax train: {mlp.n_params(params):,} parameters, vocabulary {vocab.size}, "
        f"{Xtr.shape[0]:,} training rows, grad {cfg.grad}, steps {step:,}→{end:,}"
        + (f", run directory {run_dir}" if run_dir is not None else "")
        + (f", {mesh.size} devices" if mesh is not None else ""))

    spec = MODELS[cfg.model]
    chunk_fn = make_train_chunk(gradient_fn(cfg.model, cfg.grad), make_optimizer(cfg), cfg.batch_size, mesh)
    compiled, compile_s = {}, 0.0

    def get_compiled(length):
        nonlocal compile_s
        if length not in compiled:
            t = time.perf_counter()
            compiled[length] = chunk_fn.lower(params, opt_state, state, key_dev, jnp.int32(0), Xtr, Ytr,
                                              length).compile()
            compile_s += time.perf_counter() - t
        return compiled[length]

    # Eval and checkpoints work on this host's copy of the (replicated) state, on its local device.
    def calibrate_and_eval(names):
        p, st = to_local(params), to_local(state)
        bn = spec.eval_stats(p, st, Xtr_host)
        return bn, split_losses(cfg.model, p, bn, splits, names)

    def checkpoint(bn=None):
        """Checkpoint (with the history up to ``step``) and history.npz; process 0 only."""
        if run_dir is not None and is_main:
            p, st = to_local(params), to_local(state)
            bn = spec.eval_stats(p, st, Xtr_host) if bn is None else bn
            history = {"lossi": np.asarray(lossi, np.float32),
                       "eval_steps": np.asarray([s for s, _ in evals], np.int64),
                       "eval_val": np.asarray([v for _, v in evals], np.float64)}
            save_checkpoint(run_dir, p, to_local(opt_state), st, key_data, step, bn, history)
            atomic_savez(run_dir / HISTORY, **history)  # the same history, for readers of the directory

    print_every = min(10_000, max(1, cfg.steps // 10))
    progress = Progress(cfg.steps, step, print_every, out=sys.stdout if verbose else None,
                        bar=progress_bar if verbose else False)
    interrupted = False

    def on_sigint(signum, frame):  # finish the chunk in flight, checkpoint, exit 130
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C is immediate

    old_handler = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    exec_s, steps_run, last_ckpt = 0.0, 0, time.perf_counter()
    # Chunks are capped at ~4M minibatch rows so that the pre-drawn batches stay small.
    chunk = min(cfg.chunk, max(1, (1 << 22) // cfg.batch_size))
    try:
        for a, b in _segments(step, end, [chunk, cfg.eval_every]):
            run_chunk = get_compiled(b - a)
            t = time.perf_counter()
            new_params, new_opt, new_state, losses, finite = run_chunk(params, opt_state, state, key_dev,
                                                                       jnp.int32(a), Xtr, Ytr)
            losses = local_value(losses)  # the one host round trip per chunk
            exec_s += time.perf_counter() - t
            bad = ~np.isfinite(losses)
            if bad.any() or not bool(local_value(finite)):
                # roll back to the chunk's start: the last good state
                checkpoint()
                first = a + int(np.argmax(bad)) if bad.any() else b
                where = f"the last good checkpoint (step {step}) is in {run_dir}" if run_dir is not None else \
                    "nothing was saved (no run directory)"
                raise TrainingDiverged(f"loss became {losses[bad][0] if bad.any() else 'finite but the parameters did not'} "
                                       f"at step {first}; stopped ({where}); try a smaller --lr")
            params, opt_state, state, step = new_params, new_opt, new_state, b
            steps_run += b - a
            lossi.extend(np.log10(losses).tolist())
            progress.lines(a, losses)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                bn, ev = calibrate_and_eval(("val",))
                evals.append((step, ev["val_loss"]))
                log(f"{step:7d}/{cfg.steps:7d}: val {ev['val_loss']:.4f}")
            if time.perf_counter() - last_ckpt > CHECKPOINT_SECONDS and step < end:
                checkpoint()
                last_ckpt = time.perf_counter()
            progress.update(step, exec_s)
            if interrupted:
                break
    finally:
        progress.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)

    bn, ev = calibrate_and_eval(("train", "val", "test"))
    if step == cfg.steps and (not evals or evals[-1][0] != step):
        evals.append((step, ev["val_loss"]))
    checkpoint(bn)
    status = "interrupted" if interrupted else ("complete" if step == cfg.steps else "stopped")
    metrics = {
        **ev, "status": status, "steps": step, "steps_run": steps_run,
        "steps_per_second": steps_run / exec_s if exec_s > 0 else None,
        "compile_seconds": compile_s, "wall_seconds": time.perf_counter() - t_wall,
        "model": cfg.model, "grad": cfg.grad, "seed": cfg.seed, "n_params": mlp.n_params(params),
        "batch_size": cfg.batch_size, "device": environment()["device"],
        "mesh_devices": mesh.size if mesh is not None else 1, "process_count": jax.process_count(),
    }
    if resumed_from is not None:
        metrics["resumed_from"] = resumed_from
    history = {"lossi": np.asarray(lossi, np.float32), "eval_steps": np.asarray([s for s, _ in evals]),
               "eval_val": np.asarray([v for _, v in evals])}
    if run_dir is not None:
        atomic_write_json(run_dir / "metrics.json", metrics)
        if save_plot and is_main:
            plot_history(history, run_dir / "loss.png", title=f"{cfg.grad} gradients, seed {cfg.seed}")
    for k in ("train", "val", "test"):
        log(f"{k} {ev[k + '_loss']:.4f}")
    if verbose and metrics["steps_per_second"]:
        log(f"{steps_run:,} steps at {metrics['steps_per_second']:,.0f} steps/s "
            f"(+{compile_s:.1f} s compiling); {status}")
    local = lambda t: jax.tree_util.tree_map(jnp.asarray, to_local(t))
    return Run(local(params), bn, vocab, cfg, metrics, history, run_dir, local(opt_state), key_data, step,
               local(state))


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------
def window_mean(lossi: np.ndarray, window: int = 1000) -> np.ndarray:
    """The notebook's ``torch.tensor(lossi).view(-1, 1000).mean(1)`` (a trailing part is dropped)."""
    lossi = np.asarray(lossi)
    n = len(lossi) // window
    return lossi[: n * window].reshape(n, window).mean(1) if n else lossi[:0]


def loss_figure(history: dict, title: str = "", window: int = 1000):
    """A matplotlib figure: log10 training loss averaged over ``window`` steps (the notebook's
    ``lossi`` plot), and the eval-mode val loss at each eval point. ``None`` without matplotlib."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no backend, no global figure state
    except ImportError:
        return None
    lossi = np.asarray(history["lossi"])
    w = window if len(lossi) >= 2 * window else max(1, len(lossi) // 20)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    mean = window_mean(lossi, w)
    ax.plot((np.arange(len(mean)) + 0.5) * w, mean, label=f"train (mean of {w} steps)")
    if len(history["eval_steps"]):
        ax.plot(history["eval_steps"], np.log10(history["eval_val"]), "o-", label="val (eval mode)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_history(history: dict, path, title: str = "", window: int = 1000) -> bool:
    """Write ``loss.png`` atomically; False (and nothing written) without matplotlib."""
    fig = loss_figure(history, title, window)
    if fig is None:
        return False
    atomic_savefig(fig, path, dpi=110)
    return True
