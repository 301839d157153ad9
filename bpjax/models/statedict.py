"""PyTorch state dicts of a peer's model as bpjax parameters, and back: the converter every peer's
interop shares (:mod:`bpjax.models.makemore`).

A model declares, per peer, its key map: ``Model.state_dicts["makemore"] = keys``, ``keys(n_layer) ->
[(peer key, bpjax path, transform)]``, the path ``"a/b/0/c"`` into the parameter pytree and the
transform one of ``""`` (as it is), ``"T"`` (a PyTorch ``nn.Linear`` weight is ``[out, in]``; bpjax
stores ``[in, out]``), ``"attn"`` (a fused q/k/v weight ``[3C, C]``, bpjax's ``[C, 3, nh, hs]``),
``"attn_b"`` (its bias ``[3C]``, bpjax's ``[3, nh, hs]``), ``"bias"`` (as it is, where the model has
biases: a state dict holds all of them or none, nanoGPT's ``bias=False``) or ``"tied"`` (a second key
of a parameter already mapped: nanoGPT's ``lm_head.weight``, its token embedding; coming in, it must
equal the first). ``n_layer`` is the number of transformer
blocks: ``len(params["blocks"])`` going out, the ``.h.<i>.`` keys of the state dict coming in.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import CheckpointError

BUFFERS = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|\.cbow\.bias)$")
"""Causal-mask buffers a state dict may carry: accepted and ignored."""


def linear_keys(prefix: str, W: str, b: str | None = None) -> list:
    """An ``nn.Linear`` at ``prefix``: its weight (transposed) and bias (when ``b`` names one)."""
    out = [(f"{prefix}.weight", W, "T")]
    return out + ([(f"{prefix}.bias", b, "")] if b else [])


def _get(tree, path: str):
    for k in path.split("/"):
        tree = tree[int(k)] if isinstance(tree, list) else tree[k]
    return tree


def _set(tree: dict, path: str, value) -> None:
    keys = path.split("/")
    for i, k in enumerate(keys[:-1]):
        if k.isdigit():
            k = int(k)
            while len(tree) <= k:
                tree.append({})
            tree = tree[k]
        else:
            tree = tree.setdefault(k, [] if keys[i + 1].isdigit() else {})
    tree[keys[-1]] = value


def _keys(spec, peer: str, n_layer: int) -> list:
    if peer not in spec.state_dicts:
        from . import get, names

        have = [n for n in names() if peer in get(n).state_dicts]
        raise CheckpointError(f"{peer} has no model {spec.name!r}; its models here: {', '.join(have)}")
    return spec.state_dicts[peer](n_layer)


def _has(tree, path: str) -> bool:
    try:
        _get(tree, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def to_state_dict(spec, params, peer: str) -> dict:
    """``params`` of the model ``spec`` as ``peer``'s ``state_dict()``: numpy arrays, its keys, its shapes."""
    n_layer = len(params.get("blocks", [])) if isinstance(params, dict) else 0
    sd = {}
    for key, path, how in _keys(spec, peer, n_layer):
        if how == "bias" and not _has(params, path):
            continue  # a model without biases
        a = np.asarray(_get(params, path))
        if how == "attn":  # [C, 3, nh, hs] -> [C, 3C] -> PyTorch's [3C, C]
            a = a.reshape(a.shape[0], -1).T
        elif how == "attn_b":
            a = a.reshape(-1)
        elif how == "T":
            a = a.T
        sd[key] = np.ascontiguousarray(a)
    return sd


def from_state_dict(spec, state_dict: dict, peer: str, *, n_head: int | None = None) -> dict:
    """``peer``'s ``state_dict()`` (numpy arrays) as ``params`` of the model ``spec``; each array keeps
    its dtype. ``n_head``: the attention heads, for a fused q/k/v weight. Buffers are ignored; a
    missing or unexpected key is a :class:`~bpjax.errors.CheckpointError`."""
    keys = {k for k in state_dict if not BUFFERS.search(k)}
    n_layer = len({m.group(1) for k in keys if (m := re.search(r"(?:^|\.)h\.(\d+)\.", k))})
    entries = _keys(spec, peer, n_layer)
    if not keys & {k for k, _, how in entries if how == "bias"}:  # no biases (nanoGPT's bias=False)
        entries = [e for e in entries if e[2] != "bias"]
    want = {k for k, _, _ in entries}
    if keys != want:
        missing, extra = sorted(want - keys), sorted(keys - want)
        raise CheckpointError(f"not a {peer} {spec.name} state dict: missing {missing[:3]}, unexpected {extra[:3]}")
    params: dict = {}
    for key, path, how in entries:
        a = np.asarray(state_dict[key])
        if how == "attn":  # PyTorch's [3C, C] -> [C, 3, nh, hs]
            C = a.shape[1]
            if n_head is None or C % n_head:
                raise CheckpointError(f"{key}: n_embd {C} does not divide by n_head {n_head}")
            a = a.T.reshape(C, 3, n_head, C // n_head)
        elif how == "attn_b":
            a = a.reshape(3, n_head, -1)
        elif how == "T":
            a = a.T
        elif how == "tied":
            first = _get(params, path)
            if first.shape != a.shape or not np.array_equal(first, a):
                raise CheckpointError(
                    f"{key} differs from the parameter it is tied to ({path}): not a tied model's state dict"
                )
            continue
        _set(params, path, np.ascontiguousarray(a))
    return params
