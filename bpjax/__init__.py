"""bpjax: manual backpropagation, done right, in JAX.

The makemore part 4 notebook ("becoming a backprop ninja") as a library: pure forward functions
over a parameter pytree, a hand-written ``jax.custom_vjp`` backward for every layer, and
``jax.grad`` as the oracle that proves each formula right::

    import jax, bpjax
    from bpjax.models import mlp
    run = bpjax.fit(bpjax.Config(steps=200_000), out=False)
    X, Y = bpjax.make_splits(words := bpjax.load_words(), bpjax.Vocab.from_words(words))["train"]
    bpjax.compare(jax.grad(mlp.loss_manual)(run.params, X[:32], Y[:32]),
                  jax.grad(mlp.loss)(run.params, X[:32], Y[:32]))

The packages show the architecture, each depending only on those above it:

============  ===============================================================================
``layers``    one ``custom_vjp`` per layer, forward beside backward; the open layer set
``models``    the :class:`Model` interface (a model is its forward and init) and the models
``training``  the config, the one training chunk, ``fit``, run directories, sweeps, diagnostics
``cli``       the ``bpjax`` command, one module per subcommand
============  ===============================================================================

beside ``check`` (the oracle's comparisons), ``data`` (names to arrays), ``io`` (atomic files),
``errors`` and ``bench``. ``bpjax.models.get(name)`` gives a registered model; a ``Model`` of your
own trains through the same ``fit``. bpjax 0.1's module paths (``bpjax.mlp``, ``bpjax.train``, ...)
still work: :mod:`bpjax.compat`.
"""

import sys
from importlib.metadata import PackageNotFoundError, version

from . import check, compat, data, layers, models, testing, training
from .check import Row, Table, check_chain, check_layer, check_vjp, compare
from .data import Vocab, load_words, make_splits
from .errors import BpjaxError, CheckpointError, ConfigError, DataError, TrainingDiverged, VerificationFailed
from .models import Model
from .training import Config, Run, fit, load_run

try:
    __version__ = version("bpjax")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

compat.install(sys.modules[__name__])

__all__ = [
    "check",
    "data",
    "layers",
    "models",
    "testing",
    "training",
    "Row",
    "Table",
    "check_chain",
    "check_layer",
    "check_vjp",
    "compare",
    "Vocab",
    "load_words",
    "make_splits",
    "BpjaxError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "TrainingDiverged",
    "VerificationFailed",
    "Config",
    "Model",
    "Run",
    "fit",
    "load_run",
]
