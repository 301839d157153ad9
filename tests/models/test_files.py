"""--model PATH.py:NAME: a model of your own loaded from a file; every way that can go wrong is one line."""

import pytest
from test_readme import readme_example

from bpjax import Config, models
from bpjax.errors import CheckpointError, ConfigError
from bpjax.models.files import load_model_file, load_recorded, model_file_record


@pytest.fixture
def mine(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(readme_example(), encoding="utf-8")
    return path


def test_the_readmes_model_saved_as_a_file_loads_once_without_training(mine):
    m = load_model_file(f"{mine}:swish_mlp")
    assert isinstance(m, models.Model) and m.name == "swish_mlp"
    assert load_model_file(f"{mine}:swish_mlp") is m and models.get(f"{mine}:swish_mlp") is m  # one import
    record = model_file_record(m)
    assert record["path"] == str(mine.resolve()) and record["name"] == "swish_mlp" and len(record["sha256"]) == 64
    cfg = Config(f"{mine}:swish_mlp", steps=10)
    assert cfg.spec is m and cfg.to_json()["model"] == "swish_mlp"
    assert model_file_record(models.get("mlp")) is None


@pytest.mark.parametrize(
    "text, name, needle",
    [
        (None, "swish_mlp", "does not exist"),
        ("raise RuntimeError('no GPU here')", "m", "raised RuntimeError: no GPU here"),
        ("import jax\n", "swish", "has no 'swish' (it defines no bpjax.Model)"),
        ("swish = 3\n", "swish", "mine.py:swish is a int, not a bpjax.Model"),
    ],
)
def test_a_bad_model_file_is_one_line(tmp_path, text, name, needle):
    path = tmp_path / "mine.py"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_model_file(f"{path}:{name}")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_name_that_is_missing_lists_the_files_models(mine):
    with pytest.raises(ConfigError, match=r"has no 'swish' \(its Models: swish_mlp\)"):
        load_model_file(f"{mine}:swish")


def test_a_recorded_model_file_that_changed_or_went_is_refused(mine):
    record = dict(model_file_record(load_model_file(f"{mine}:swish_mlp")))
    assert load_recorded(record).name == "swish_mlp"
    mine.write_text(readme_example() + "\n# edited\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="has changed since it trained"):
        load_recorded(record)
    mine.unlink()
    with pytest.raises(CheckpointError, match="is gone; put it back"):
        load_recorded(record)
    with pytest.raises(CheckpointError, match="malformed"):
        load_recorded({"path": 3})


def test_a_file_with_dataclasses_and_postponed_annotations_imports(tmp_path):
    """The module is registered as an import registers it: dataclasses look their module up."""
    path = tmp_path / "cfg_model.py"
    path.write_text(
        "from __future__ import annotations\nimport dataclasses\n\n\n@dataclasses.dataclass\nclass Cfg:\n"
        "    n: int = 3\n\n\n" + readme_example(),
        encoding="utf-8",
    )
    assert load_model_file(f"{path}:swish_mlp").name == "swish_mlp"
