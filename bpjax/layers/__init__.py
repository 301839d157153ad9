"""One ``jax.custom_vjp`` per layer: the forward and its hand-written backward side by side.

Each layer comes twice: ``<layer>_plain``, the forward in plain ``jnp`` (``jax.grad`` differentiates
it: the oracle), and ``<layer>``, the same function wrapped in ``jax.custom_vjp`` by
:func:`with_backward`, whose ``bwd`` is the formula derived in the notebook (``layer.fun is
<layer>_plain``). One module per family:

=================  ==========================================================================
``losses``         ``cross_entropy`` (exercise 2), ``cross_entropy_masked`` (makemore's padding)
``dense``          ``linear``, ``embedding``, ``add_positions``, ``tied_head``, ``flatten_consecutive``,
                   ``context_linear``
``norm``           ``batchnorm`` (exercise 3), ``batchnorm_eval``, ``running_batchnorm``, ``layernorm``
``activations``    ``tanh``, ``gelu`` (tanh), ``gelu_exact`` (erf)
``dropout``        ``dropout`` (the mask the residual)
``recurrent``      ``rnn``, ``gru`` (backpropagation through time by hand)
``attention``      ``attention`` (causal self-attention, one layer)
``sequence``       ``causal_mean`` (BoW's causal average)
``products``       ``matmul``, ``matmul_nt``, ``matmul_tn``, ``weight_grad``, ``transposed``, ``row_major``:
                   the layers' matrix products in the forms XLA runs fastest (the values of ``a @ b``,
                   ``a @ b.T``, ``a.T @ b``)
=================  ==========================================================================

:data:`PLAIN` and :data:`MANUAL` are the one layer set (:class:`Layers`) in its two kinds: a model
writes its forward once against ``ly`` and ``--grad manual|autodiff`` is the swap. A layer of your
own joins both: ``mine = MANUAL.extend(rmsnorm=with_backward(rmsnorm_plain, fwd, bwd))``, and
``mine.plain`` is its plain twin set.
"""

from .activations import gelu, gelu_exact, gelu_exact_plain, gelu_plain, normal_cdf, tanh, tanh_plain
from .attention import attention, attention_plain
from .base import MATMUL_LAYERS, Layers, is_hand_written, with_backward
from .dense import (
    add_positions,
    add_positions_plain,
    context_linear,
    context_linear_plain,
    embedding,
    embedding_plain,
    flatten_consecutive,
    flatten_consecutive_plain,
    linear,
    linear_plain,
    tied_head,
    tied_head_plain,
    wide,
)
from .dropout import dropout, dropout_plain
from .losses import cross_entropy, cross_entropy_masked, cross_entropy_masked_plain, cross_entropy_plain
from .norm import (
    BN_EPS,
    LN_EPS,
    MOMENTUM,
    batch_stats,
    batchnorm,
    batchnorm_eval,
    batchnorm_plain,
    layernorm,
    layernorm_plain,
    running_batchnorm,
    running_stats,
)
from .products import matmul, matmul_nt, matmul_tn, row_major, transposed, weight_grad
from .recurrent import gru, gru_plain, rnn, rnn_plain
from .sequence import causal_mean, causal_mean_plain

_SHIPPED = {
    "cross_entropy": cross_entropy,
    "cross_entropy_masked": cross_entropy_masked,
    "linear": linear,
    "embedding": embedding,
    "flatten_consecutive": flatten_consecutive,
    "context_linear": context_linear,
    "batchnorm": batchnorm,
    "batchnorm_eval": batchnorm_eval,  # eval mode only: nothing to differentiate by hand
    "layernorm": layernorm,
    "tanh": tanh,
    "gelu": gelu,
    "gelu_exact": gelu_exact,
    "dropout": dropout,
    "add_positions": add_positions,
    "tied_head": tied_head,
    "rnn": rnn,
    "gru": gru,
    "attention": attention,
    "causal_mean": causal_mean,
}

MANUAL = Layers(_SHIPPED, manual=True)
"""Every layer bpjax ships, hand-written: ``jax.grad`` of a forward over them runs their backwards."""

PLAIN = MANUAL.plain
"""The same layers' plain twins (``layer.fun``): ``jax.grad`` derives their backward (the oracle)."""

EVAL = MANUAL.eval()
"""The plain layers in eval mode (``EVAL.training`` is False): a model's eval-mode logits."""

__all__ = [
    "Layers", "MATMUL_LAYERS", "with_backward", "is_hand_written", "PLAIN", "MANUAL", "EVAL",
    "cross_entropy", "cross_entropy_plain", "cross_entropy_masked", "cross_entropy_masked_plain",
    "linear", "linear_plain", "weight_grad", "wide", "embedding", "embedding_plain", "flatten_consecutive",
    "flatten_consecutive_plain", "context_linear", "context_linear_plain",
    "batchnorm", "batchnorm_plain", "batchnorm_eval", "batch_stats", "running_batchnorm", "running_stats",
    "layernorm", "layernorm_plain", "BN_EPS", "LN_EPS", "MOMENTUM",
    "tanh", "tanh_plain", "gelu", "gelu_plain", "gelu_exact", "gelu_exact_plain", "normal_cdf",
    "dropout", "dropout_plain",
    "add_positions", "add_positions_plain", "tied_head", "tied_head_plain", "rnn", "rnn_plain", "gru", "gru_plain",
    "attention", "attention_plain", "causal_mean", "causal_mean_plain",
    "matmul", "matmul_nt", "matmul_tn", "row_major", "transposed",
]  # fmt: skip
