"""bpjax: manual backpropagation, done right, in JAX.

The makemore part 4 notebook ("becoming a backprop ninja") as a library: pure forward functions
over a parameter pytree, a hand-written ``jax.custom_vjp`` backward for every layer, and
``jax.grad`` as the oracle that proves each formula right.

    >>> import jax, bpjax
    >>> from bpjax import mlp
    >>> params = mlp.init_params(jax.random.key(0))
    >>> grads = jax.grad(mlp.loss_manual)(params, X, Y)      # hand-written backward
    >>> bpjax.compare(grads, jax.grad(mlp.loss)(params, X, Y))  # against the oracle
"""

from . import check, data, layers, mlp
from .check import Row, Table, check_vjp, compare
from .data import Vocab, load_words, make_splits
from .errors import BpjaxError, CheckpointError, ConfigError, DataError

__version__ = "0.1.0"

__all__ = ["check", "data", "layers", "mlp", "Row", "Table", "check_vjp", "compare", "Vocab",
           "load_words", "make_splits", "BpjaxError", "CheckpointError", "ConfigError", "DataError"]
