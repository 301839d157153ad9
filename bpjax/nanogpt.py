"""nanoGPT interop under its short name: :mod:`bpjax.models.nanogpt`.

from bpjax.nanogpt import from_state_dict, to_state_dict
"""

from .models.nanogpt import PEER, SIZES, from_state_dict, sizes_of, to_state_dict

__all__ = ["PEER", "SIZES", "from_state_dict", "sizes_of", "to_state_dict"]
