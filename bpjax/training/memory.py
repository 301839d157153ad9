"""Refusing, before anything is allocated, work that would not fit in memory: one line, not an OOM."""

from __future__ import annotations

import jax

from ..errors import ConfigError
from ..io import host_memory_available
from .optim import make_optimizer


def available_memory() -> int | None:
    """Bytes the default device can still take: an accelerator's free memory, or the host's
    ``MemAvailable``; None where neither is known."""
    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        stats = getattr(dev, "memory_stats", lambda: None)() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return host_memory_available()


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _nbytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))


def check_state_fits(cfg, vocab_size: int, models: int = 1) -> None:
    """Refuse ``models`` copies of the model's parameters and optimizer state (and their gradients and
    update) that would not fit: one :class:`~bpjax.errors.ConfigError` naming the model's sizes.
    Shapes from ``jax.eval_shape``."""

    def shapes():
        params, state = cfg.spec.init(jax.random.key(0), vocab_size=vocab_size, **cfg.sizes)
        return params, make_optimizer(cfg).init(params), state

    p, opt, state = jax.eval_shape(shapes)
    need = models * (3 * _nbytes(p) + _nbytes(opt) + _nbytes(state))  # params, grads, update, optimizer
    have = available_memory()
    if have is not None and need > have:
        n = sum(x.size for x in jax.tree_util.tree_leaves(p))
        many = f"{models:,} x " if models > 1 else ""
        options = [f"--{k.replace('_', '-')} {v:,}" for k, v in cfg.sizes.items()]
        options += ["--seeds/--lrs"] if models > 1 else []
        raise ConfigError(
            f"{many}{n:,} parameters with their gradients and optimizer state need {_gb(need)}, "
            f"more than the {_gb(have)} available; use smaller sizes ({', '.join(options)})"
        )


def check_compiled_fits(compiled, what: str) -> None:
    """Refuse a compiled chunk whose buffers (XLA's memory analysis: arguments, outputs, temporaries)
    exceed the available memory, before it runs: a :class:`~bpjax.errors.ConfigError` naming ``what``."""
    mem, have = compiled.memory_analysis(), available_memory()
    if mem is None or have is None:
        return
    need = sum(
        int(getattr(mem, a, 0) or 0) for a in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
    )
    if need > have:
        raise ConfigError(f"one training chunk needs {_gb(need)}, more than the {_gb(have)} available; lower {what}")
