"""Work that would not fit is refused in one line before anything is allocated."""

import pytest

from bpjax import Config, fit
from conftest import assert_one_line_error, run_cli


def _short(**kw):
    return Config(n_hidden=16, steps=300, chunk=100, **kw)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--n-hidden", str(10**30)], "n-hidden must be a positive integer below 2**31"),
        (["train", "--block-size", str(10**30)], "block-size must be a positive integer below 2**31"),
        (["train", "--block-size", "100000000"], "use a smaller --block-size"),
        (["train", "--n-embd", str(10**8)], "21,900,001,947 parameters"),
        (["train", "--batch-size", str(10**9), "--steps", "10"], "lower --batch-size"),
        (["check", "--batch-size", str(10**9)], "more than the"),
        (["sweep", "--seeds", str(10**9)], "--seeds must be a count from 1 to 1,000,000"),
        (["sample", "--run", "RUN", "--max-len", str(10**9)], "max-len must be between 1 and 10,000"),
    ],
)
def test_absurd_sizes_are_refused_in_one_line_before_they_allocate(names_path, tmp_path, args, needle):
    if "RUN" in args:
        fit(_short(), data=names_path, out=tmp_path / "run", stop_at=100, verbose=False)
        args = [str(tmp_path / "run") if a == "RUN" else a for a in args]
    out = [] if args[0] in ("check", "sample") else ["--out", str(tmp_path / "out")]
    data = [] if args[0] == "sample" else ["--data", str(names_path)]
    res = run_cli(*args, *data, *out, timeout=120)
    assert_one_line_error(res, needle)
    assert not (tmp_path / "out").exists()  # nothing left behind: the same --out works next time


def test_state_that_does_not_fit_names_the_sizes(monkeypatch):
    from bpjax.errors import ConfigError
    from bpjax.training import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(
        ConfigError,
        match=r"4,137 parameters .* need 0.0 GiB, more than the 0.0 GiB available; "
        r"use smaller sizes \(--n-embd 10, --n-hidden 64, --block-size 3\)",
    ):
        memory.check_state_fits(Config(), 27)
    memory.check_state_fits(Config(n_embd=1, n_hidden=2, block_size=1), 2)  # 16 parameters: a few hundred bytes
