"""Interop with makemore.py: its ``state_dict()`` to bpjax parameters and back.

    sd = to_state_dict("transformer", params)          # {makemore key: numpy array}
    params = from_state_dict("transformer", sd)        # exact inverse; dtypes kept

Keys and shapes are exactly makemore.py's (PyTorch's ``nn.Linear`` weight is ``[out, in]``; bpjax
stores ``[in, out]``). ``to_state_dict`` leaves out the causal-mask buffers (``attn.bias``,
``cbow.bias``); ``from_state_dict`` accepts and ignores them. The transformer's head count is not
in a state dict: ``from_state_dict(..., n_head=4)`` (makemore's default) says it. Load a makemore
checkpoint with ``{k: v.numpy() for k, v in torch.load("model.pt").items()}``.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import CheckpointError

BUFFERS = re.compile(r"(\.attn\.bias|\.cbow\.bias)$")


def _linear(prefix: str, W: str, b: str | None = None) -> list:
    out = [(f"{prefix}.weight", W, "T")]
    return out + ([(f"{prefix}.bias", b, "")] if b else [])


def _entries(model: str, n_layer: int = 0) -> list[tuple[str, str, str]]:
    """``(makemore key, bpjax path "a/b/0/c", transform)``; transform ``"T"`` transposes a weight,
    ``"attn"`` also merges the heads, ``"attn_b"`` flattens the heads' biases."""
    if model == "bigram":
        return [("logits", "logits", "")]
    if model == "bengio":
        return [("wte.weight", "wte", ""), *_linear("mlp.0", "W1", "b1"), *_linear("mlp.2", "W2", "b2")]
    if model in ("rnn", "gru"):
        cell = ([("xh_to_h", "W", "b")] if model == "rnn" else
                [("xh_to_z", "Wz", "bz"), ("xh_to_r", "Wr", "br"), ("xh_to_hbar", "Wn", "bn")])
        return [("start", "start", ""), ("wte.weight", "wte", ""),
                *[e for name, W, b in cell for e in _linear(f"cell.{name}", f"cell/{W}", f"cell/{b}")],
                *_linear("lm_head", "W_lm", "b_lm")]
    if model == "bow":
        return [("wte.weight", "wte", ""), ("wpe.weight", "wpe", ""),
                *_linear("context_block.mlp.c_fc", "W_fc", "b_fc"),
                *_linear("context_block.mlp.c_proj", "W_proj", "b_proj"), *_linear("lm_head", "W_lm", "b_lm")]
    if model == "transformer":
        out = [("transformer.wte.weight", "wte", ""), ("transformer.wpe.weight", "wpe", "")]
        for i in range(n_layer):
            h, b = f"transformer.h.{i}", f"blocks/{i}"
            out += [(f"{h}.ln_1.weight", f"{b}/ln1_g", ""), (f"{h}.ln_1.bias", f"{b}/ln1_b", ""),
                    (f"{h}.attn.c_attn.weight", f"{b}/W_attn", "attn"),
                    (f"{h}.attn.c_attn.bias", f"{b}/b_attn", "attn_b"),
                    *_linear(f"{h}.attn.c_proj", f"{b}/W_proj", f"{b}/b_proj"),
                    (f"{h}.ln_2.weight", f"{b}/ln2_g", ""), (f"{h}.ln_2.bias", f"{b}/ln2_b", ""),
                    *_linear(f"{h}.mlp.c_fc", f"{b}/W_fc", f"{b}/b_fc"),
                    *_linear(f"{h}.mlp.c_proj", f"{b}/W_mp", f"{b}/b_mp")]
        return out + [("transformer.ln_f.weight", "lnf_g", ""), ("transformer.ln_f.bias", "lnf_b", ""),
                      ("lm_head.weight", "W_lm", "T")]
    raise CheckpointError(f"makemore has no model {model!r}; its models here: "
                          "bigram, bengio, rnn, gru, bow, transformer")


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


def to_state_dict(model: str, params) -> dict:
    """bpjax ``params`` of ``model`` as makemore.py's ``state_dict()``: numpy arrays, its keys, its shapes."""
    n_layer = len(params.get("blocks", [])) if isinstance(params, dict) else 0
    sd = {}
    for key, path, how in _entries(model, n_layer):
        a = np.asarray(_get(params, path))
        if how == "attn":  # [C, 3, nh, hs] -> [C, 3C] -> PyTorch's [3C, C]
            a = a.reshape(a.shape[0], -1).T
        elif how == "attn_b":
            a = a.reshape(-1)
        elif how == "T":
            a = a.T
        sd[key] = np.ascontiguousarray(a)
    return sd


def from_state_dict(model: str, state_dict: dict, *, n_head: int = 4) -> dict:
    """makemore.py's ``state_dict()`` (numpy arrays) as bpjax ``params`` of ``model``; each array keeps
    its dtype. ``n_head``: the transformer's heads (makemore's default 4). Buffers are ignored;
    a missing or unexpected key is a :class:`CheckpointError`."""
    keys = {k for k in state_dict if not BUFFERS.search(k)}
    n_layer = len({m.group(1) for k in keys if (m := re.match(r"transformer\.h\.(\d+)\.", k))})
    entries = _entries(model, n_layer)
    want = {k for k, _, _ in entries}
    if keys != want:
        missing, extra = sorted(want - keys), sorted(keys - want)
        raise CheckpointError(f"not a makemore {model} state dict: missing {missing[:3]}, unexpected {extra[:3]}")
    params: dict = {}
    for key, path, how in entries:
        a = np.asarray(state_dict[key])
        if how == "attn":  # PyTorch's [3C, C] -> [C, 3, nh, hs]
            C = a.shape[1]
            if C % n_head:
                raise CheckpointError(f"{key}: n_embd {C} does not divide by n_head {n_head}")
            a = a.T.reshape(C, 3, n_head, C // n_head)
        elif how == "attn_b":
            a = a.reshape(3, n_head, -1)
        elif how == "T":
            a = a.T
        _set(params, path, np.ascontiguousarray(a))
    return params
