"""The two pieces every layer family builds on: :func:`with_backward`, which turns a plain forward
and a hand-derived ``(fwd, bwd)`` rule into a ``jax.custom_vjp``, and :class:`Layers`, the open
set of layers a model is written against.

A layer is its hand-written version (a ``custom_vjp``); its plain twin is ``layer.fun``, the very
function ``jax.custom_vjp`` wraps, so the two compute the same value and only the backward differs.
A :class:`Layers` set holds the hand-written versions by name and hands out either kind:

    ly = MANUAL          # ly.linear is the custom_vjp: jax.grad runs its hand-written backward
    ly = PLAIN           # ly.linear is linear.fun: jax.grad differentiates plain jnp (the oracle)
    ly = PLAIN.eval()    # eval mode (ly.training is False): batch norm's fixed statistics, no dropout
    mine = MANUAL.extend(rmsnorm=with_backward(rmsnorm_plain, fwd, bwd))   # a set with a layer of yours
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np


def with_backward(plain: Callable, fwd: Callable, bwd: Callable, *, nondiff_argnums=(), doc: str = ""):
    """``plain`` wrapped in ``jax.custom_vjp`` with the hand-written rule ``(fwd, bwd)``.

    The primal function *is* ``plain`` (``layer.fun is plain``): only the backward is new. ``fwd``
    takes ``plain``'s arguments and returns ``(plain's output, residuals)``; ``bwd(residuals, d_out)``
    returns one cotangent per differentiable argument (``None`` for an integer one), and with
    ``nondiff_argnums`` takes those static arguments first: ``bwd(*static, residuals, d_out)``.
    The layer is named after ``plain`` without its ``_plain`` suffix.
    """
    f = jax.custom_vjp(plain, nondiff_argnums=nondiff_argnums)
    f.defvjp(fwd, bwd)
    f.__name__ = f.__qualname__ = plain.__name__.removesuffix("_plain")
    f.__doc__ = doc or plain.__doc__
    return f


def is_hand_written(layer) -> bool:
    """Whether ``layer`` is a ``jax.custom_vjp`` (what :func:`with_backward` makes)."""
    return isinstance(layer, jax.custom_vjp)


class _KeyStream:
    """Keys ``fold_in(key, i)`` for i = 0, 1, ...: one per random layer call of a forward."""

    def __init__(self, key):
        self.base, self.count = key, 0

    def next(self):
        k = jax.random.fold_in(self.base, self.count)
        self.count += 1
        return k


MATMUL_LAYERS = frozenset({"linear", "attention", "tied_head", "context_linear"})
"""The layers whose work is matrix products: those a compute dtype (:meth:`Layers.computing_in`) applies to."""


def _floating(a) -> bool:
    return isinstance(a, jax.Array | np.ndarray) and jnp.issubdtype(a.dtype, jnp.floating)


def _computing_in(f, dtype):
    """``f`` with its floating-point array arguments cast to ``dtype`` and its output cast back to the
    first one's dtype: autocast's matrix products (its backward's too: the casts' transposes)."""

    def g(*args):
        out = next((a.dtype for a in args if _floating(a)), None)
        y = f(*(a.astype(dtype) if _floating(a) else a for a in args))
        return y if out is None else y.astype(out)

    return g


class Layers:
    """A set of layers by name, in one of three modes; a model's forward is written once against it.

    The set stores each layer's hand-written version. ``manual`` sets give it as it is (a
    ``custom_vjp``: ``jax.grad`` runs its backward); plain sets give its plain twin ``layer.fun``
    (``jax.grad`` differentiates plain ``jnp``: the oracle). A few functions have no backward to
    write (eval-mode batch norm): both kinds give them unchanged. ``training`` is the mode a forward
    reads where training and evaluation differ (batch norm's statistics, dropout).

    ``getattr(ly, name)`` or ``ly.linear`` is a layer; ``name in ly``, ``list(ly)`` the names.
    """

    __slots__ = ("_layers", "manual", "training", "_call", "_keys", "rate", "dtype")

    def __init__(
        self,
        layers: Mapping[str, Callable],
        *,
        manual: bool,
        training: bool = True,
        call=None,
        keys=None,
        rate: float = 0.0,
        dtype=None,
    ):
        object.__setattr__(self, "_layers", dict(layers))
        object.__setattr__(self, "manual", bool(manual))
        object.__setattr__(self, "training", bool(training))
        object.__setattr__(self, "_call", call)
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "rate", float(rate))
        object.__setattr__(self, "dtype", None if dtype is None else jnp.dtype(dtype))

    def __getattr__(self, name: str):
        if name.startswith("_"):  # a slot not yet set (copy, pickle): not a layer
            raise AttributeError(name)
        try:
            layer = self._layers[name]
        except KeyError:
            raise AttributeError(
                f"this layer set has no layer {name!r} (it has {', '.join(self._layers)}); add one "
                f"with .extend({name}=with_backward(plain, fwd, bwd))"
            ) from None
        f = layer if self.manual else getattr(layer, "fun", layer)
        if self._call is not None:
            call, bare = self._call, f
            f = lambda *args: call(name, bare, layer, args)
        if self.dtype is not None and name in MATMUL_LAYERS:
            f = _computing_in(f, self.dtype)  # outside the call: a recorded layer sees its cast inputs
        return f

    def __setattr__(self, name, value):
        raise AttributeError("a layer set is immutable: .extend(name=layer) or .replace(name=fn) gives a new one")

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __contains__(self, name) -> bool:
        return name in self._layers

    def __len__(self) -> int:
        return len(self._layers)

    def __repr__(self) -> str:
        kind = "manual" if self.manual else "plain"
        return f"Layers({kind}, {'training' if self.training else 'eval'}: {', '.join(self._layers)})"

    def hand_written(self, name: str):
        """The stored version of layer ``name``: its ``custom_vjp`` (``.fun`` is the plain twin)."""
        return self._layers[name]

    def _with(self, layers=None, **mode) -> Layers:
        kw = {
            "manual": self.manual,
            "training": self.training,
            "call": self._call,
            "keys": self._keys,
            "rate": self.rate,
            "dtype": self.dtype,
            **mode,
        }
        return Layers(self._layers if layers is None else layers, **kw)

    def with_key(self, key, rate: float = 0.0) -> Layers:
        """The same layers drawing their randomness from ``key`` at dropout rate ``rate``: the forward's
        ``ly.key()`` calls give ``fold_in(key, 0)``, ``fold_in(key, 1)``, ... in the order it makes
        them, the same on every trace, and its dropout layers read ``ly.rate``. ``key`` None: no
        randomness (dropout is the identity)."""
        return self._with(keys=None if key is None else _KeyStream(key), rate=rate if key is not None else 0.0)

    def key(self):
        """The next key of this forward's stream (:meth:`with_key`), or None: in eval mode, or where no
        key was given (the layers that take one, dropout, are then the identity)."""
        if self._keys is None or not self.training:
            return None
        return self._keys.next()

    def computing_in(self, dtype) -> Layers:
        """The same layers with the matrix products of :data:`MATMUL_LAYERS` in ``dtype`` (``"bfloat16"``),
        forward and backward, and everything else (norms, softmax, the loss) in the inputs' dtype:
        PyTorch's autocast. None: as the inputs come."""
        return self._with(dtype=dtype)

    def extend(self, **layers) -> Layers:
        """This set with ``layers`` added (or replacing bpjax's of the same name), in the same mode.

        Each must be a ``jax.custom_vjp`` made by :func:`with_backward` (its plain forward and
        hand-written ``fwd``/``bwd``): the plain set then gives its ``.fun``, the manual set the
        layer itself, so a model written against the set runs either way."""
        for name, layer in layers.items():
            if not is_hand_written(layer):
                raise TypeError(
                    f"layer {name!r} is {type(layer).__name__}, not a jax.custom_vjp: make it with "
                    "bpjax.layers.with_backward(plain, fwd, bwd)"
                )
        return self._with({**self._layers, **layers})

    def replace(self, **layers) -> Layers:
        """This set with ``layers`` stored as given, whatever they are (a planted bug, a probe):
        a ``custom_vjp`` still gives its ``.fun`` in a plain set, anything else is used as it is."""
        return self._with({**self._layers, **layers})

    @property
    def plain(self) -> Layers:
        """The same layers, plain (the oracle's)."""
        return self._with(manual=False)

    @property
    def hand(self) -> Layers:
        """The same layers, hand-written (their ``custom_vjp``)."""
        return self._with(manual=True)

    def eval(self) -> Layers:
        """The plain layers in eval mode (``training`` False): how a model's eval logits are computed."""
        return self._with(manual=False, training=False)

    def recording(self, call: Callable) -> Layers:
        """The same set whose every layer call goes through ``call(name, f, layer, args) -> output``
        (``f`` the function this set would call, ``layer`` the stored version): how a table of every
        layer a forward ran is built (:func:`bpjax.models.layer_table`)."""
        return self._with(call=call)
