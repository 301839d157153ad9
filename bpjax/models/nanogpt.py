"""Interop with nanoGPT: its ``GPT.state_dict()`` to bpjax's ``gpt`` parameters and back.

    sd = to_state_dict(params)                 # {nanoGPT key: numpy array}, its shapes
    params = from_state_dict(sd)               # the exact inverse; dtypes kept
    sizes = sizes_of(ckpt["model_args"])       # a train.py checkpoint's GPTConfig as bpjax sizes

Keys and shapes are exactly nanoGPT's (``transformer.wte.weight``, ..., ``lm_head.weight``, which is
the token embedding: tied; PyTorch's ``nn.Linear`` weight is ``[out, in]``, bpjax stores ``[in, out]``).
A model without biases (``bias=False``) has no bias keys. ``from_state_dict`` accepts and ignores the
causal-mask buffers (``attn.bias``), the ``_orig_mod.`` prefix of a compiled model's keys, torch
tensors (as numpy), and a whole ``train.py`` checkpoint (``{"model": state_dict, "model_args": ...}``).
The head count is not needed: bpjax's GPT keeps it in its state (:class:`bpjax.models.gpt.Heads`).
Load a checkpoint with ``torch.load("out/ckpt.pt", map_location="cpu")``; ``bpjax.nanogpt`` names this
module.
"""

from __future__ import annotations

from ..errors import CheckpointError
from . import get
from . import statedict as _sd

PEER = "nanogpt"
PREFIX = "_orig_mod."
"""What ``torch.compile`` puts before every key (nanoGPT's ``train.py`` strips it on resume too)."""

SIZES = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")
"""nanoGPT's ``GPTConfig`` fields that are bpjax's GPT sizes, by the same names (``vocab_size`` is the data's)."""


def _numpy(v):
    import numpy as np

    if hasattr(v, "detach"):  # a torch tensor; bfloat16 has no numpy twin: float32
        v = v.detach().cpu()
        v = v.float() if str(v.dtype) == "torch.bfloat16" else v
        return v.numpy()
    return np.asarray(v)


def to_state_dict(params) -> dict:
    """bpjax ``gpt`` ``params`` as nanoGPT's ``GPT.state_dict()``: numpy arrays, its keys, its shapes
    (``lm_head.weight`` the same values as ``transformer.wte.weight``), each array's dtype kept."""
    return _sd.to_state_dict(get("gpt"), params, PEER)


def from_state_dict(state_dict: dict) -> dict:
    """nanoGPT's ``GPT.state_dict()`` (numpy arrays or torch tensors), or a ``train.py`` checkpoint
    holding one under ``"model"``, as bpjax ``gpt`` params; each array keeps its dtype. A missing or
    unexpected key, or an ``lm_head.weight`` that is not the token embedding, is a
    :class:`~bpjax.errors.CheckpointError`."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"a nanoGPT state dict is a dict of arrays, got {type(state_dict).__name__}")
    if "model" in state_dict and isinstance(state_dict["model"], dict):  # a train.py checkpoint
        state_dict = state_dict["model"]
    sd = {(k[len(PREFIX) :] if k.startswith(PREFIX) else k): _numpy(v) for k, v in state_dict.items()}
    return _sd.from_state_dict(get("gpt"), sd, PEER)


def sizes_of(model_args: dict) -> dict:
    """bpjax ``gpt`` sizes from nanoGPT's ``GPTConfig`` fields (a checkpoint's ``model_args``)."""
    missing = [k for k in SIZES if k not in model_args]
    if missing:
        raise CheckpointError(f"nanoGPT model_args lacks {', '.join(missing)}")
    kinds = {"dropout": float, "bias": bool}
    return {k: kinds.get(k, int)(model_args[k]) for k in SIZES}
