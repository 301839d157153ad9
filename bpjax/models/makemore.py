"""Interop with makemore.py: its ``state_dict()`` to bpjax parameters and back.

    sd = to_state_dict("transformer", params)          # {makemore key: numpy array}
    params = from_state_dict("transformer", sd)        # exact inverse; dtypes kept

Keys and shapes are exactly makemore.py's (PyTorch's ``nn.Linear`` weight is ``[out, in]``; bpjax
stores ``[in, out]``); each model's key map lives with the model (``Model.state_dicts["makemore"]``).
``to_state_dict`` leaves out the causal-mask buffers (``attn.bias``, ``cbow.bias``);
``from_state_dict`` accepts and ignores them. The transformer's head count is not in a state dict:
``from_state_dict(..., n_head=4)`` (makemore's default) says it. Load a makemore checkpoint with
``{k: v.numpy() for k, v in torch.load("model.pt").items()}``.
"""

from __future__ import annotations

from . import get
from . import statedict as _sd

PEER = "makemore"


def _spec(model):
    from ..errors import CheckpointError, ConfigError

    try:
        return get(model)
    except ConfigError:
        raise CheckpointError(f"makemore has no model {model!r}") from None


def to_state_dict(model, params) -> dict:
    """bpjax ``params`` of ``model`` as makemore.py's ``state_dict()``: numpy arrays, its keys, its shapes."""
    return _sd.to_state_dict(_spec(model), params, PEER)


def from_state_dict(model, state_dict: dict, *, n_head: int = 4) -> dict:
    """makemore.py's ``state_dict()`` (numpy arrays) as bpjax ``params`` of ``model``; each array keeps
    its dtype. ``n_head``: the transformer's heads (makemore's default 4). Buffers are ignored;
    a missing or unexpected key is a :class:`~bpjax.errors.CheckpointError`."""
    return _sd.from_state_dict(_spec(model), state_dict, PEER, n_head=n_head)
