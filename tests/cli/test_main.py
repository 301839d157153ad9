"""The command line's shell: one line per user error, pipes that close, terminals that cannot print."""

import json
import os
import subprocess
import sys

import pytest

from bpjax.cli import COMMANDS, build_parser, main
from conftest import assert_one_line_error, run_cli


def _bpjax(*args):
    return [sys.executable, "-m", "bpjax", *args]


def test_closed_pipe_does_not_kill_training(names_path, tmp_path):
    """`bpjax train ... | head -1`: the reader leaves after one line, the run still completes."""
    out = tmp_path / "run"
    p = subprocess.Popen(
        _bpjax(
            "train",
            "--data",
            str(names_path),
            "--n-hidden",
            "16",
            "--steps",
            "3000",
            "--chunk",
            "100",
            "--no-progress",
            "--out",
            str(out),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    p.stdout.readline()
    p.stdout.close()  # as `head -1` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err
    assert json.loads((out / "metrics.json").read_text())["status"] == "complete"


def test_closed_pipe_ends_sampling_quietly(names_path, tmp_path):
    run = tmp_path / "run"
    assert (
        run_cli(
            "train", "--data", str(names_path), "--n-hidden", "16", "--steps", "50", "--no-progress", "--out", str(run)
        ).returncode
        == 0
    )
    p = subprocess.Popen(
        _bpjax("sample", "--run", str(run), "-n", "20000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert p.stdout.readline().strip()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and err == "", err


@pytest.mark.parametrize("cmd", [["sweep", "--seeds", "2", "--steps", "10"], ["bench", "--steps", "10"]])
def test_an_out_that_is_a_file_is_refused_before_the_work(tmp_path, cmd):
    f = tmp_path / "a-file"
    f.write_text("x")
    res = run_cli(*cmd, "--out", str(f), timeout=60)
    assert_one_line_error(res, "is a file")
    assert f.read_text() == "x"


def test_empty_out_is_refused(names_path, tmp_path):
    res = run_cli("train", "--data", str(names_path), "--steps", "10", "--out", "", cwd=tmp_path)
    assert_one_line_error(res, "--out is empty")
    assert list(tmp_path.iterdir()) == []


def test_sample_on_an_ascii_only_terminal(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("zoë\nchloé\nzoë\n" * 20, encoding="utf-8")
    run = tmp_path / "run"
    assert (
        run_cli(
            "train", "--data", str(names), "--n-hidden", "8", "--steps", "50", "--no-progress", "--out", str(run)
        ).returncode
        == 0
    )
    res = run_cli("sample", "--run", str(run), "-n", "30", env={"PYTHONIOENCODING": "ascii"})
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.isascii() and res.stdout.count("\n") == 30


def test_unwritable_paths_are_one_line(names_path, tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli("train", "--data", str(names_path), "--steps", "10", "--out", str(tmp_path / "file" / "run"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run_cli("check", "--data", str(names_path), "--json", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run_cli("train", "--data", str(names_path), "--steps", "5000000000")
    assert r.returncode == 2 and "2**31" in r.stderr
    r = run_cli("sample", "--run", str(tmp_path), "--seed", "100000000000000000000000")
    assert r.returncode == 2 and "seed" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_every_command_is_one_module_with_its_help_arguments_and_run():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    assert list(sub.choices) == list(COMMANDS) == ["check", "train", "sample", "diagnose", "bench", "sweep", "runs"]
    for name, module in COMMANDS.items():
        assert module.HELP and callable(module.add_args) and callable(module.run), name
        assert sub.choices[name].get_default("func") is module.run


def test_a_usage_error_is_one_line_with_a_pointer_to_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--steps", "many"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "see bpjax train --help" in err[0]
