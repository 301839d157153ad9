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


def test_a_gpt_continues_a_prompt_streaming_and_the_options_are_checked(gpt_run):
    a = run_cli("sample", "--run", str(gpt_run), "--prompt", "ROMEO:", "--chars", "80", "--top-k", "5")
    assert a.returncode == 0, a.stderr
    assert a.stdout.startswith("ROMEO:") and len(a.stdout) == len("ROMEO:") + 80 + 1
    b = run_cli("sample", "--run", str(gpt_run), "--prompt", "ROMEO:", "--chars", "80", "--top-k", "5")
    assert b.stdout == a.stdout  # the same seed
    assert_one_line_error(run_cli("sample", "--run", str(gpt_run), "--prompt", "é"), "not in the run's vocabulary")
    assert_one_line_error(run_cli("sample", "--run", str(gpt_run), "--temperature", "0"), "temperature")
    assert_one_line_error(run_cli("sample", "--run", str(gpt_run), "--top-k", "0"), "positive integer")


def test_a_names_run_refuses_the_text_options(names_path, tmp_path):
    fit(Config(n_hidden=8, steps=10), data=names_path, out=tmp_path / "r", verbose=False, save_plot=False)
    assert_one_line_error(
        run_cli("sample", "--run", str(tmp_path / "r"), "--prompt", "em"), "--prompt is for a text model"
    )
