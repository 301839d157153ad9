"""The import paths of bpjax 0.1, kept working: each old module is a thin alias that finds a name
where it lives now, and says so (a ``DeprecationWarning`` naming the new place).

    from bpjax import mlp          # works; mlp.loss(...) warns "bpjax.mlp.loss is now bpjax.models.mlp.loss"
    from bpjax.models import mlp   # where it lives

:data:`MOVED` maps each old module to its new one, with the names that went elsewhere.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings

_MODELS = ("mlp", "wavenet", "deep", "bigram", "bengio", "rnn", "gru", "bow", "transformer", "makemore")

MOVED: dict[str, tuple[str, dict[str, str]]] = {
    **{f"bpjax.{m}": (f"bpjax.models.{m}", {}) for m in _MODELS},
    "bpjax.layers_seq": ("bpjax.layers", {}),
    "bpjax.config": ("bpjax.training.config", {"GRADS": "bpjax.training.step", "OPTIMIZERS": "bpjax.training.optim"}),
    "bpjax.optim": ("bpjax.training.optim", {}),
    "bpjax.step": (
        "bpjax.training.step",
        {
            **dict.fromkeys(
                ("ChunkRunner", "chunk_length", "segments", "make_train_chunk", "MAX_CHUNK_ROWS"),
                "bpjax.training.chunk",
            ),
            **dict.fromkeys(("check_state_fits", "check_compiled_fits", "available_memory"), "bpjax.training.memory"),
            "split_losses": "bpjax.training.evaluate",
        },
    ),
    "bpjax.train": (
        "bpjax.training",
        {
            "Training": "bpjax.training.session",
            "TrainingDiverged": "bpjax.errors",
            **dict.fromkeys(("sgd_step_decay", "StepDecayState"), "bpjax.training.optim"),
            **dict.fromkeys(("make_train_chunk",), "bpjax.training.chunk"),
            "sample_batches": "bpjax.training.step",
            **dict.fromkeys(
                ("load_checkpoint", "save_checkpoint", "environment", "CHECKPOINT", "CHECKPOINT_FORMAT", "HISTORY"),
                "bpjax.training.rundir",
            ),
            **dict.fromkeys(("Progress", "loss_figure", "plot_history", "window_mean"), "bpjax.training.report"),
        },
    ),
    "bpjax.rundir": ("bpjax.training.rundir", {}),
    "bpjax.report": ("bpjax.training.report", {}),
    "bpjax.sample": ("bpjax.training.sample", {}),
    "bpjax.sweep": ("bpjax.training.sweep", {}),
    "bpjax.distributed": ("bpjax.training.distributed", {}),
    "bpjax.diagnostics": ("bpjax.training.diagnostics", {}),
}
"""old module -> (its new module, {name: the module it went to instead})."""


class MovedModule(types.ModuleType):
    """A bpjax 0.1 module path whose names live elsewhere now: ``getattr`` finds each one there and
    warns where (Python shows a warning once per place in your code)."""

    def __init__(self, old: str, new: str, elsewhere: dict[str, str]):
        super().__init__(old, f"Moved: the names of {old} live in {new} now (this alias keeps {old} working).")
        self._new, self._elsewhere = new, elsewhere

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        where = self._elsewhere.get(name, self._new)
        value = getattr(importlib.import_module(where), name)
        warnings.warn(
            f"{self.__name__}.{name} is now {where}.{name}; import it from there", DeprecationWarning, stacklevel=2
        )
        return value

    def __dir__(self):
        return sorted(set(dir(importlib.import_module(self._new))) | set(self._elsewhere))


def install(package) -> None:
    """Register every alias of :data:`MOVED` (``import bpjax.mlp`` finds it) and set it on ``package``."""
    for old, (new, elsewhere) in MOVED.items():
        alias = sys.modules.setdefault(old, MovedModule(old, new, elsewhere))
        setattr(package, old.rsplit(".", 1)[1], alias)
