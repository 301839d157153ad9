"""The diagnostics' and the live check's pieces of the training chunk (:class:`bpjax.training.chunk.Hooks`).

* the **recorded step**: the training step with its gradients taken through zero taps on the
  model's nonlinearities (the same values, bit for bit, where ``loss_tapped`` computes as the
  training loss does; bengio's taps see every position, its training loss the packed ones: float32
  rounding apart), the taps' gradients being those flowing into the outputs, and one
  :func:`~bpjax.training.diagnostics.stats.record` of it, packed into one vector;
* the **check**: ``jax.grad`` of the model's ``loss_manual`` (the hand-written backward) against
  ``jax.grad`` of its plain ``loss`` (the oracle), on the parameters and minibatch of the step about
  to be taken, at the checks' matrix-product precision (not TF32 on a GPU).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from ...check import precise
from ..chunk import Hooks
from ..step import gradient_fn, row_constraint
from .stats import probe_shapes, record, verification


def make_hooks(
    spec, grad: str, tx: optax.GradientTransformation, diagnose_every: int, mesh=None, rate: float = 0.0
) -> Hooks:
    """The :class:`~bpjax.training.chunk.Hooks` of a run of ``spec`` (a Model) with ``--grad grad``,
    the optimizer ``tx``, records every ``diagnose_every`` steps (0: checks only); ``rate``: the
    model's dropout, each step's masks from the key its batch carries (both sides of a check alike)."""
    manual = grad == "manual"
    constrain = row_constraint(mesh)

    def keyed(key):
        return {} if key is None else {"key": key, "rate": rate}

    oracle_grad = precise(jax.grad(lambda p, s, X, Y, k: spec.loss(p, s, X, Y, **keyed(k))[0]))
    manual_grad = precise(jax.grad(lambda p, s, X, Y, k: spec.loss_manual(p, s, X, Y, **keyed(k))[0]))

    def grads_with_probes(params, state, X, Y, key):
        zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in probe_shapes(spec, params, state, X, Y, manual).items()}
        if not zeros:
            (loss, new_state), grads = gradient_fn(spec, grad, rate)(
                params, state, X, Y, *([] if key is None else [key])
            )
            return loss, new_state, grads, {}, {}

        def f(params, taps):
            acts = {}

            def tap(name, v):
                if name in taps:
                    acts[name] = v
                    return v + taps[name]
                return v

            loss, new_state = spec.loss_tapped(params, state, X, Y, tap, manual, **keyed(key))
            return loss, (new_state, acts)

        (loss, (new_state, acts)), (grads, d_taps) = jax.value_and_grad(f, (0, 1), has_aux=True)(params, zeros)
        return loss, new_state, grads, acts, {k: d_taps[k] for k in acts}  # forward order

    layout = []  # (key, shape) of the record's fields in its packed vector, set when first traced

    def recorded(carry, batch, s):
        params, opt_state, state = carry
        X, Y = constrain(batch[:2])
        key = batch[2] if len(batch) > 2 else None
        loss, new_state, grads, acts, d_acts = grads_with_probes(params, state, X, Y, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        rec = record(acts, d_acts, params, grads, updates)
        layout[:] = [(k, v.shape) for k, v in rec.items()]
        packed = jnp.concatenate([jnp.ravel(v) for v in rec.values()])  # one stacked output, not 20
        return (optax.apply_updates(params, updates), opt_state, new_state), loss, (s, packed)

    def unpack(steps, packed):
        out, i = {"step": steps}, 0
        for k, shape in layout:
            n = math.prod(shape)
            out[k] = packed[:, i : i + n].reshape(packed.shape[0], *shape)
            i += n
        return out

    def verify_at(carry, batches):
        params, _, state = carry
        first = jax.tree_util.tree_map(lambda a: a[0], batches)
        X0, Y0 = constrain(first[:2])
        k0 = first[2] if len(first) > 2 else None
        return verification(manual_grad(params, state, X0, Y0, k0), oracle_grad(params, state, X0, Y0, k0))

    return Hooks(diagnose_every, recorded if diagnose_every else None, unpack, verify_at)
