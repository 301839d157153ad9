"""bpjax train on the command line: train, stop, resume, sample; the flags a resumed run refuses."""

import json

from conftest import assert_one_line_error, run_cli

cli = run_cli


def test_cli_train_resume_and_sample(names_path, tmp_path):
    out = tmp_path / "cli"
    r = cli(
        "train", "--data", str(names_path), "--steps", "400", "--n-hidden", "16", "--out", str(out), "--stop-at", "200"
    )
    assert r.returncode == 0, r.stderr
    assert "      0/    400:" in r.stdout
    assert_one_line_error(cli("train", "--resume", str(out), "--batch-size", "5"), "drop --batch-size")
    assert_one_line_error(cli("train", "--resume", str(out), "--steps", "5"), "a run is extended, not shortened")
    r = cli("train", "--resume", str(out), "--data", str(names_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 200
    assert "val " in r.stdout
    r = cli("train", "--resume", str(out), "--steps", "1e3")  # the notebook's decay at half the steps: passed
    assert_one_line_error(r, "decays at half its steps (step 200)")
    assert "pass --lr-decay-step 200 to keep the decay where it was" in r.stderr
    r = cli("train", "--resume", str(out), "--steps", "500", "--lr-decay-step", "200", "--no-progress")
    assert r.returncode == 0 and "steps 400→500" in r.stdout, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 500 and m["extensions"][0]["after"] == {"steps": 500, "lr_decay_step": 200}
    r = cli("sample", "--run", str(out), "-n", "7", "--seed", "3")
    names = r.stdout.split()
    assert r.returncode == 0 and len(names) == 7 and all(n.endswith((".", "…")) for n in names)
    assert cli("sample", "--run", str(out), "-n", "7", "--seed", "3").stdout == r.stdout
    r = cli("sample", "--run", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--data", str(names_path), "--batch-size", "1")
    assert r.returncode == 2 and "batch-size must be >= 2" in r.stderr


def test_block_size_of_a_sequence_model_is_the_datas(names_path, tmp_path):
    r = run_cli(
        "train",
        "--model",
        "bengio",
        "--block-size",
        "5",
        "--steps",
        "10",
        "--data",
        str(names_path),
        "--out",
        str(tmp_path / "r"),
    )
    assert_one_line_error(r, "block-size is the data's")


def test_train_runs_the_small_models_on_one_core(names_path, tmp_path):
    """``bpjax train``: bigram's default is one core (``Model.cpu_cores``), recorded in config.json
    (on a one-core machine there is nothing to pin and the record is 1 all the same);
    ``--cores 0`` is one line."""
    r = cli(
        "train",
        "--model",
        "bigram",
        "--data",
        str(names_path),
        "--steps",
        "20",
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
        env={"JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["environment"]["cpu_cores"] == 1
    r = cli("train", "--model", "bigram", "--cores", "0", "--steps", "20")
    assert r.returncode == 2 and "positive integer" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_readmes_model_as_a_file_trains_checks_resumes_and_samples_on_the_command_line(names_path, tmp_path):
    """--model PATH.py:NAME: the run directory records the file; sample and --resume load it again
    and refuse it, in one line, once it has changed."""
    from test_readme import readme_example

    mine = tmp_path / "mine.py"
    mine.write_text(readme_example(), encoding="utf-8")
    spec, out = f"{mine}:swish_mlp", tmp_path / "r"
    r = run_cli(
        "train",
        "--model",
        spec,
        "--data",
        str(names_path),
        "--steps",
        "300",
        "--stop-at",
        "150",
        "--out",
        str(out),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    recorded = json.loads((out / "config.json").read_text())["model_file"]
    assert recorded["path"] == str(mine.resolve()) and recorded["name"] == "swish_mlp"
    r = run_cli("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 150
    r = run_cli("sample", "--run", str(out), "-n", "3")
    assert r.returncode == 0 and len(r.stdout.split()) == 3, r.stderr
    r = run_cli("check", "--model", spec, "--data", str(names_path))
    assert r.returncode == 0 and "swish.x" in r.stdout and "FAIL" not in r.stdout, r.stdout + r.stderr
    mine.write_text(readme_example().replace("0.2", "0.3"), encoding="utf-8")
    assert_one_line_error(run_cli("sample", "--run", str(out)), "has changed since it trained")
    assert_one_line_error(run_cli("train", "--model", f"{tmp_path}/nothing.py:m"), "does not exist")
