"""Extending a run: ``bpjax train --resume DIR --steps N`` (``fit(resume=DIR, steps=N)``) continues a
stopped or complete run to N steps.

A run extended to N steps equals, bit for bit, a run of N steps from the start, where the learning
rates of the steps it has already run are those of the longer run: a constant rate (makemore's
AdamW defaults: ``lr_decay_factor`` 1), a step decay at a fixed ``--lr-decay-step`` (the WaveNet's
150,000), or a decay not yet reached either way. Where they are not (a decay at half the steps
that the run has passed; a cosine to the last step), one :class:`~bpjax.errors.ConfigError` line
says why and what to pass. ``--lr-decay-step`` may go with ``--steps`` to fix the decay where it was.

The run's ``config.json`` then holds the new configuration and, under ``"extensions"``, each
extension: ``{"at_step": 40, "before": {"steps": 40}, "after": {"steps": 80}}``; its
``metrics.json`` lists them too.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_json
from .config import Config

EXTENDED = ("steps", "lr_decay_step")
"""The settings an extension may change."""


def extended(cfg: Config, step: int, where, steps: int | None = None, lr_decay_step: int | None = None) -> Config:
    """``cfg``, the config of a run at ``step`` (in ``where``), continued to ``steps`` (and from then
    on decaying at ``lr_decay_step``); ``cfg`` itself when neither is given. :class:`ConfigError`
    where the longer run's rates differ at the steps already run."""
    if steps is None:
        if lr_decay_step is not None:
            raise ConfigError("--lr-decay-step goes with --steps N when resuming (it extends the run to N steps)")
        return cfg
    if steps < cfg.steps:
        raise ConfigError(f"--steps {steps:,} is below the {cfg.steps:,} of {where}: a run is extended, not shortened")
    new = cfg.replace(steps=steps, **({} if lr_decay_step is None else {"lr_decay_step": lr_decay_step}))
    if all(getattr(new, k) == getattr(cfg, k) for k in EXTENDED):
        return cfg  # its own steps: a plain resume
    why = disagreement(cfg, new, step)
    if why:
        raise ConfigError(f"cannot extend {where} to {steps:,} steps: {why}")
    return new.validate()


def disagreement(old: Config, new: Config, step: int) -> str | None:
    """Why ``new``'s learning rates differ from ``old``'s at some of the ``step`` steps run (and what
    to pass instead), or None where they agree."""
    if old.schedule == "cosine":
        if new.steps == old.steps or step <= old.warmup_steps:
            return None  # the same cosine, or only its warmup run so far (which does not depend on the steps)
        return (
            f"its cosine schedule ends at its last step ({old.steps:,}), so a run of {new.steps:,} steps has "
            f"other rates at the {step:,} steps it has run; train a new run with --steps {new.steps}"
        )
    if old.lr_decay_factor == 1 or min(old.decay_step, step) == min(new.decay_step, step):
        return None  # a constant rate, or the decay's step the same as far as the run has gone
    if old.lr_decay_step is None and new.lr_decay_step is None:
        return (
            f"its learning rate decays at half its steps (step {old.decay_step:,}), a run of {new.steps:,} "
            f"steps at {new.decay_step:,}: the rates of the {step:,} steps it has run would differ; pass "
            f"--lr-decay-step {old.decay_step} to keep the decay where it was"
        )
    return (
        f"--lr-decay-step {new.decay_step} moves the decay (at step {old.decay_step:,}) within the {step:,} "
        f"steps it has run; pass --lr-decay-step {old.decay_step} to keep it where it was"
    )


def record(run_dir: Path, meta: dict, old: Config, new: Config, step: int) -> list:
    """Write ``run_dir``'s ``config.json`` (``meta``, as read) with ``new`` and this extension added to
    its ``"extensions"``; returns them all. The checkpoint, written before, still belongs to the run
    (:func:`earlier`) until the extended run's first."""
    changed = [k for k in EXTENDED if getattr(old, k) != getattr(new, k)]
    ext = {
        "at_step": step,
        "before": {k: getattr(old, k) for k in changed},
        "after": {k: getattr(new, k) for k in changed},
    }
    meta = {**meta, "config": new.to_json(), "extensions": [*extensions(meta), ext]}
    atomic_write_json(Path(run_dir) / "config.json", meta)
    return meta["extensions"]


def extensions(meta) -> list:
    """The extensions a run's ``config.json`` (as read) records; none for a run never extended."""
    ext = meta.get("extensions") if isinstance(meta, dict) else None
    return [e for e in ext if isinstance(e, dict)] if isinstance(ext, list) else []


def earlier(meta, cfg: Config) -> list[Config]:
    """``cfg`` as it was before each of the run's extensions, the last undone first: the configs a
    checkpoint written before an extension belongs to (several extensions can pass with no checkpoint
    between them, each stopped before its first). The walk stops at a record it cannot undo."""
    out = []
    for ext in reversed(extensions(meta)):
        before = ext.get("before")
        if not isinstance(before, dict) or not set(before) <= set(EXTENDED):
            break
        try:
            cfg = cfg.replace(**before)
        except (ConfigError, TypeError):
            break
        out.append(cfg)
    return out
