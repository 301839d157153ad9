"""``bpjax check``'s tables for any model with a forward, built from the forward itself.

:func:`layer_table` runs the forward once over the plain layers with every layer call recorded (the
layer set's :meth:`~bpjax.layers.Layers.recording`): each hand-written layer the forward calls
becomes rows of the table, its ``custom_vjp`` pulled back on the very inputs the oracle's forward
gave it, with the oracle's gradient at its output, against ``jax.grad`` of its plain twin
(``layer.fun``). Rows are in backward order, as llm.c's ``gpt2_backward`` calls its layers; each
input is named by what it is: a parameter (its pytree path), an intermediate the forward tapped
(its tap name), else ``<layer>.<argument>``. So a model written once as its forward needs no table
code, and a layer of your own in its forward is checked like bpjax's.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from ..check import Tap, layer_rows_table, model_table, precise, tree_names
from ..layers import is_hand_written
from .forward import forward_loss


class _Recorder:
    """The layer calls of one traced forward: for each hand-written one, its name, the layer, its
    arguments (arrays as tapped values, the rest kept as they are) and their names."""

    def __init__(self, tap: Tap, names_by_id: dict):
        self.tap, self.names_by_id, self.calls = tap, names_by_id, []

    def call(self, name, f, layer, args):
        out = f(*args)
        if not is_hand_written(layer):  # eval-mode pieces: no backward to check
            return out
        i = len(self.calls)
        params = list(inspect.signature(layer.fun).parameters)
        slots, arg_names = [], []
        for j, a in enumerate(args):
            pname = params[j] if j < len(params) else f"arg{j}"
            if isinstance(a, (jax.Array, np.ndarray)):
                slots.append(("array", f"@{i}/in{j}"))
                self.tap(f"@{i}/in{j}", a)  # recorded, not tapped: its value comes back concrete
                arg_names.append(self.names_by_id.get(id(a), f"{name}.{pname}"))
            else:
                slots.append(("static", a))
                arg_names.append(pname)
        if not isinstance(out, jax.Array):
            raise TypeError(f"layer {name!r} returns {type(out).__name__}: a checked layer returns one array")
        out = self.tap(f"@{i}/out", out)
        self.calls.append((name, layer, slots, arg_names))
        return out


class _NamingTap(Tap):
    """A :class:`~bpjax.check.Tap` that also remembers which traced value each tap name gave."""

    def __init__(self, taps, names_by_id):
        super().__init__(taps)
        self.names_by_id = names_by_id

    def __call__(self, name, value):
        value = super().__call__(name, value)
        if not name.startswith("@"):
            self.names_by_id.setdefault(id(value), name)
        return value


def _unique(names: list[str], seen: dict) -> list[str]:
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


@precise
def layer_table(model, params, state, X, Y, *, title: str | None = None, key=None, rate: float = 0.0):
    """Every hand-written layer ``model``'s forward calls, checked on this batch (see the module
    docstring). ``model``: a :class:`~bpjax.models.Model` with a forward; ``key``, ``rate``: dropout
    with these masks (each layer's check replays its own)."""
    plain = model.layers.plain
    recorded = {}

    def run(taps, params):
        names_by_id = {id(v): k for k, v in tree_names(params).items()}
        tap = _NamingTap(taps, names_by_id)
        rec = _Recorder(tap, names_by_id)
        loss_fn = forward_loss(model.forward, plain.recording(rec.call), model.data, model.time_major)
        loss, _ = loss_fn(params, state, X, Y, tap, key, rate)
        recorded["calls"] = rec.calls
        return loss, tap.values

    shapes = jax.eval_shape(lambda p: run({}, p)[1], params)
    zero = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items() if k.endswith("/out")}
    (_, values), (d_values, _) = jax.jit(jax.value_and_grad(run, argnums=(0, 1), has_aux=True))(zero, params)
    rows, seen = [], {}
    for i in reversed(range(len(recorded["calls"]))):
        name, layer, slots, arg_names = recorded["calls"][i]
        args = [values[v] if kind == "array" else v for kind, v in slots]
        rows.append((layer, args, _unique(arg_names, seen), d_values[f"@{i}/out"]))
    title = title or f"{model.name} layers: each custom_vjp against jax.grad of its plain twin"
    return layer_rows_table(title, rows, dtype=str(jnp.asarray(values[f"@{len(rows) - 1}/out"]).dtype))


def default_tables(model, params, state, X, Y, key=None, rate: float = 0.0) -> list:
    """A model's layer table (when it has a forward) and its whole-model table: ``jax.grad`` of
    ``loss_manual`` against ``jax.grad`` of ``loss``, one row per parameter. ``key``, ``rate``: with
    dropout, both sides draw the same masks from ``key``."""
    kw = {} if key is None else {"key": key, "rate": rate}
    whole = model_table(
        lambda p: model.loss_manual(p, state, X, Y, **kw)[0],
        lambda p: model.loss(p, state, X, Y, **kw)[0],
        params,
        title=f"whole {model.name}: grad(loss_manual) vs grad(loss)",
        rule=None if model.layers.dtype is None else model.layers.dtype.name,  # float32 parameters, bf16 products
    )
    if model.forward is None:
        return [whole]
    return [layer_table(model, params, state, X, Y, key=key, rate=rate), whole]
