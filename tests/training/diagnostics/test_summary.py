"""bpjax diagnose's printed statistics: the lecture's numbers at one record, and the checks' worst row."""

import numpy as np
import pytest

from bpjax.errors import CheckpointError
from bpjax.training import Config, fit
from bpjax.training import diagnostics as D


@pytest.fixture(scope="module")
def records(names_path):
    return fit(
        Config(steps=300, diagnose_every=100, verify_every=100), data=names_path, out=False, verbose=False
    ).diagnostics


def test_the_summary_prints_each_nonlinearity_and_weight_at_the_record_asked(records):
    text = D.summary(records, at=150)
    assert text.splitlines()[0] == "diagnostics at step 100 (3 records)"
    assert "h: mean" in text and "saturated" in text and "W1: grad:data" in text and "update:data log10" in text
    assert "verification: 3/3 checks passed (steps 0..200)" in text
    assert D.summary(records).splitlines()[0] == "diagnostics at step 200 (3 records)"


@pytest.mark.parametrize("at", [-1, 201, 99_999])
def test_a_step_outside_the_records_is_one_line(records, at):
    with pytest.raises(CheckpointError, match=rf"--step {at:,} is outside the diagnostics records, steps 0\.\.200"):
        D.summary(records, at=at)


def test_no_records_say_so(records):
    empty = {k: np.zeros((0,) * v.ndim, v.dtype) for k, v in records.items()}
    assert D.summary(empty) == "no records"
