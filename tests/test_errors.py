"""The errors a user can fix: each a BpjaxError, which the command line prints as one line, exit 2."""

import pytest

from bpjax import errors
from bpjax.cli import main


@pytest.mark.parametrize(
    "cls",
    [errors.DataError, errors.ConfigError, errors.CheckpointError, errors.TrainingDiverged, errors.VerificationFailed],
)
def test_every_error_is_one_line_and_exit_2(cls, monkeypatch, capsys):
    assert issubclass(cls, errors.BpjaxError) and cls.__doc__

    def fail(args):
        raise cls("what is wrong; how to fix it")

    from bpjax.cli import sample

    monkeypatch.setattr(sample, "run", fail)
    assert main(["sample", "--run", "x"]) == 2
    assert capsys.readouterr().err == "bpjax sample: error: what is wrong; how to fix it\n"
