"""bpjax 0.1's import paths keep working, each through a thin alias that says where the name lives now."""

import importlib
import warnings

import pytest

import bpjax
from bpjax.compat import MOVED


def test_the_paths_the_readme_and_notebooks_used_still_work_and_say_where():
    from bpjax import mlp, train  # noqa: F401  (the 0.1 spelling)

    with pytest.warns(DeprecationWarning, match=r"bpjax\.train\.fit is now bpjax\.training\.fit"):
        fit = bpjax.train.fit
    assert fit is bpjax.training.fit and bpjax.train.Config is bpjax.Config
    with pytest.warns(DeprecationWarning, match=r"bpjax\.mlp\.loss is now bpjax\.models\.mlp\.loss"):
        assert bpjax.mlp.loss is bpjax.models.mlp.loss
    assert bpjax.layers.linear is bpjax.layers.dense.linear and bpjax.check_vjp is bpjax.check.check_vjp
    assert bpjax.models.get("mlp") is bpjax.models.mlp.MODEL
    seq = importlib.import_module("bpjax.layers_seq")  # import bpjax.layers_seq works too
    with pytest.warns(DeprecationWarning, match="is now bpjax.layers.attention"):
        assert seq.attention is bpjax.layers.attention


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_finds_its_names(old):
    alias = importlib.import_module(old)
    new, elsewhere = MOVED[old]
    assert alias.__name__ == old and new in alias.__doc__
    names = [n for n in dir(importlib.import_module(new)) if not n.startswith("_")][:5] + list(elsewhere)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in names:
            assert getattr(alias, name) is getattr(importlib.import_module(elsewhere.get(name, new)), name), name
    with pytest.raises(AttributeError):
        getattr(alias, "no_such_name")  # noqa: B009
