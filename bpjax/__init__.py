"""bpjax: manual backpropagation, done right, in JAX.

The makemore part 4 notebook ("becoming a backprop ninja") as a library: pure forward functions
over a parameter pytree, a hand-written ``jax.custom_vjp`` backward for every layer, and
``jax.grad`` as the oracle that proves each formula right::

    import jax, bpjax
    from bpjax import mlp, train
    run = train.fit(train.Config(steps=200_000), out=False)
    X, Y = bpjax.make_splits(words := bpjax.load_words(), bpjax.Vocab.from_words(words))["train"]
    bpjax.compare(jax.grad(mlp.loss_manual)(run.params, X[:32], Y[:32]),
                  jax.grad(mlp.loss)(run.params, X[:32], Y[:32]))

``bpjax.models.get(name)`` gives a registered model (``bpjax.models.names()``); a ``Model`` of
your own trains through the same ``fit``.
"""

from importlib.metadata import PackageNotFoundError, version

from . import check, data, diagnostics, layers, mlp, models, train, wavenet
from .check import Row, Table, check_vjp, compare
from .config import Config
from .data import Vocab, load_words, make_splits
from .errors import BpjaxError, CheckpointError, ConfigError, DataError, TrainingDiverged, VerificationFailed
from .models import Model
from .rundir import Run, load_run
from .train import fit

try:
    __version__ = version("bpjax")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

__all__ = ["check", "data", "diagnostics", "layers", "mlp", "models", "train", "wavenet", "Row", "Table",
           "check_vjp", "compare", "Vocab", "load_words", "make_splits", "BpjaxError", "CheckpointError", "ConfigError",
           "DataError", "TrainingDiverged", "VerificationFailed", "Config", "Model", "Run", "fit", "load_run"]
