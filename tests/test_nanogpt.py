"""bpjax.nanogpt: the interop functions under the names nanoGPT's users import."""

import bpjax.nanogpt
from bpjax.models import nanogpt


def test_bpjax_nanogpt_is_the_models_interop():
    assert bpjax.nanogpt.to_state_dict is nanogpt.to_state_dict
    assert bpjax.nanogpt.from_state_dict is nanogpt.from_state_dict
    assert bpjax.nanogpt.sizes_of is nanogpt.sizes_of
    from bpjax.nanogpt import from_state_dict, to_state_dict  # noqa: F401  (the issue's import)
