"""Assertions for a test suite of one's own: a hand-written ``custom_vjp`` or chain, checked like bpjax's.

    from bpjax.testing import assert_layer

    def test_my_rmsnorm():
        assert_layer(rmsnorm, x, g, argnames=["x", "g"])   # raises AssertionError with the table

Each returns its table when it passes (for a closer look) and raises ``AssertionError`` carrying the
printed table when it does not, so pytest shows which argument failed, under which check, by how much.
"""

from __future__ import annotations

from .check.chain import ChainTable, check_chain
from .check.layer import LayerTable, check_layer


def assert_layer(f, *args, **kwargs) -> LayerTable:
    """:func:`bpjax.check_layer` ``(f, *args, **kwargs)``, raising ``AssertionError`` with the table
    unless every row passes."""
    table = check_layer(f, *args, **kwargs)
    if not table.ok:
        raise AssertionError(f"{getattr(f, '__name__', 'f')}'s hand-written backward fails its checks:\n{table}")
    return table


def assert_chain(forward, backward, *args, **kwargs) -> ChainTable:
    """:func:`bpjax.check_chain` ``(forward, backward, *args)``, raising ``AssertionError`` that names
    the first wrong step unless every step passes."""
    table = check_chain(forward, backward, *args, **kwargs)
    if not table.ok:
        raise AssertionError(f"the first wrong step is {table.first_wrong}:\n{table}")
    return table
