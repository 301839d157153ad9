"""bpjax sample: names printed as they are drawn, the same for the same seed, one line when the run is missing."""

from bpjax import Config, fit
from conftest import assert_one_line_error, run_cli


def test_sample_prints_n_names_from_a_run_and_the_same_seed_gives_the_same(names_path, tmp_path):
    fit(Config(n_hidden=16, steps=200, chunk=100), data=names_path, out=tmp_path / "r", verbose=False, save_plot=False)
    a = run_cli("sample", "--run", str(tmp_path / "r"), "-n", "6", "--seed", "2")
    assert a.returncode == 0, a.stderr
    names = a.stdout.split()
    assert len(names) == 6 and all(n.endswith((".", "…")) for n in names)
    assert run_cli("sample", "--run", str(tmp_path / "r"), "-n", "6", "--seed", "2").stdout == a.stdout
    assert run_cli("sample", "--run", str(tmp_path / "r"), "-n", "6", "--seed", "3").stdout != a.stdout
    short = run_cli("sample", "--run", str(tmp_path / "r"), "-n", "6", "--max-len", "2").stdout.split()
    assert all(len(n.rstrip(".…")) <= 2 for n in short)
    assert_one_line_error(run_cli("sample", "--run", str(tmp_path / "none")), "does not exist")
    assert_one_line_error(run_cli("sample", "--run", str(tmp_path / "r"), "-n", "0"), "positive integer")
