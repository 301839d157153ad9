"""The first wrong step of a hand-derived backward: exercise 1's atomic table, for anyone's chain.

    def forward(tap, W, x):                      # names its intermediates through tap
        h = tap("h", x @ W)
        a = tap("a", jnp.tanh(h))
        return tap("loss", jnp.mean(a ** 2))

    def backward(v, W, x):                       # v: the forward's intermediates, by name
        d_a = 2 * v["a"] / v["a"].size
        d_h = d_a * (1 - v["a"] ** 2)
        return {"d_a": d_a, "d_h": d_h}

    table = check_chain(forward, backward, W, x)
    print(table)            # d_a, then d_h: in backward order; table.first_wrong names the first FAIL

Each ``d_<name>`` is compared with ``jax.grad`` of the loss with respect to that intermediate
(through zero taps: :func:`bpjax.check.tap_grads`), in backward order, the reverse of the forward's.
An error in one step reaches every step after it, so the first failing row is the one to read.
"""

from __future__ import annotations

import jax

from .core import Table, Tap, compare, tap_grads


class _Once(Tap):
    """A tap that refuses a name used twice: its gradient would be the sum over both uses."""

    def __call__(self, name: str, value):
        if name in self.values:
            raise ValueError(f"the forward taps {name!r} twice; give each intermediate a name of its own")
        return super().__call__(name, value)


class ChainTable(Table):
    """:func:`check_chain`'s rows in backward order, and the first that fails (``first_wrong``)."""

    @property
    def first_wrong(self) -> str | None:
        """The first step, in backward order, whose gradient fails: None where every one passes."""
        return next((r.name for r in self.rows if not r.ok), None)

    def __str__(self) -> str:
        text = super().__str__()
        if self.first_wrong is not None:
            text += f"\nfirst wrong step: {self.first_wrong} (every step after it inherits its error)"
        return text

    __repr__ = __str__


def chain_table(manual: dict, oracle: dict, order, *, title: str = "chain", table: str = "chain") -> ChainTable:
    """Hand-derived gradients of intermediates against their oracles, one row per name of ``order``
    (backward order); the first failing row is :attr:`ChainTable.first_wrong`."""
    t = compare(manual, oracle, list(order), table=table, title=title)
    return ChainTable(t.title, t.rows, t.dtype)


def check_chain(forward, backward, *args, title: str | None = None) -> ChainTable:
    """``forward(tap, *args) -> scalar loss``, naming its intermediates with ``tap(name, value)``;
    ``backward(values, *args) -> {"d_<name>": gradient, ...}``, the hand-derived gradient of the loss
    with respect to each intermediate it names (``values``: the forward's intermediates). Each is
    compared with ``jax.grad`` of the loss with respect to that intermediate, in backward order.

    A name ``backward`` returns that the forward never tapped raises ``KeyError``; the loss's own tap
    (its gradient is 1) is compared like any other where ``backward`` returns it.
    """
    traced = _Once()
    jax.eval_shape(lambda: forward(traced, *args))  # the forward's order (jit's outputs sort their keys)
    loss, values, oracle, _ = tap_grads(lambda tap: forward(tap, *args))  # integer args (token ids) held fixed
    grads = backward(values, *args)
    if not isinstance(grads, dict) or not grads:
        raise ValueError(f"backward returns a dict of d_<name> gradients; it returned {grads!r:.60}")
    manual = {}
    for k, g in grads.items():
        name = k if k in values else k.removeprefix("d_")
        if name not in values:
            tapped = list(traced.values)
            raise KeyError(f"backward returned {k!r}, but the forward tapped no {name!r}: it tapped {tapped}")
        manual[name] = g
    order = [n for n in reversed(list(traced.values)) if n in manual]  # the backward's order: the forward's, reversed
    return chain_table(manual, {n: oracle[n] for n in order}, order, title=title or "chain: d_<name> vs jax.grad")
