"""Compare hand-written gradients with their oracles: the notebook's ``cmp``, as data.

* :mod:`bpjax.check.core` — the pass rule, :class:`Row` and :class:`Table`, :func:`compare`,
  :func:`check_vjp` (a hand-written function against a plain twin), zero taps (:class:`Tap`,
  :func:`tap_grads`) and the tables bpjax's models build from them;
* :mod:`bpjax.check.layer` — :func:`check_layer`: any ``jax.custom_vjp`` on its own, against
  ``jax.vjp`` of its primal in float32 and float64 and against finite differences;
* :mod:`bpjax.check.chain` — :func:`check_chain`: a hand-derived chain of intermediates' gradients,
  and its first wrong step.
"""

from .chain import ChainTable, chain_table, check_chain
from .core import (
    NO_TAP,
    PRECISION,
    TOLERANCES,
    Row,
    Table,
    Tap,
    check_vjp,
    compare,
    compare_arrays,
    layer_rows_table,
    model_table,
    precise,
    tap_grads,
    tree_names,
    vjp_table,
)
from .layer import LayerRow, LayerTable, check_layer

__all__ = [
    "NO_TAP",
    "PRECISION",
    "TOLERANCES",
    "ChainTable",
    "LayerRow",
    "LayerTable",
    "Row",
    "Table",
    "Tap",
    "chain_table",
    "check_chain",
    "check_layer",
    "check_vjp",
    "compare",
    "compare_arrays",
    "layer_rows_table",
    "model_table",
    "precise",
    "tap_grads",
    "tree_names",
    "vjp_table",
]
