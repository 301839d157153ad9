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
"""

from . import check, data, layers, mlp, train, wavenet
from .check import Row, Table, check_vjp, compare
from .data import Vocab, load_words, make_splits
from .errors import BpjaxError, CheckpointError, ConfigError, DataError
from .train import Config, Run, fit, load_run

__version__ = "0.1.0"

__all__ = ["check", "data", "layers", "mlp", "train", "wavenet", "Row", "Table", "check_vjp", "compare",
           "Vocab", "load_words", "make_splits", "BpjaxError", "CheckpointError", "ConfigError", "DataError",
           "Config", "Run", "fit", "load_run"]
