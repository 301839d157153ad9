"""bpjax check: every table of a model on a real batch, its rows as JSON, bad data files one line each."""

import json

import pytest

from bpjax.cli import main
from conftest import assert_one_line_error, run_cli


@pytest.fixture
def small_names(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text(
        "\n".join(
            [
                "emma",
                "olivia",
                "ava",
                "isabella",
                "sophia",
                "zoë",
                "mia",
                "amelia",
                "harper",
                "evelyn",
                "abigail",
                "emily",
            ]
            * 3
        )
        + "\n",
        encoding="utf-8",
    )
    return p


def test_check_passes_and_writes_json(tmp_path, small_names):
    out = tmp_path / "rows.json"
    res = run_cli("check", "--data", str(small_names), "--batch-size", "16", "--json", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "exact:" in res.stdout and "all rows ok" in res.stdout
    rows = json.loads(out.read_text())["rows"]
    assert {r["table"] for r in rows} == {"atomic", "layers", "model"}
    assert all(r["ok"] for r in rows)
    assert {r["name"] for r in rows if r["table"] == "model"} == {"C", "W1", "b1", "W2", "b2", "bngain", "bnbias"}
    assert all(set(r) == {"table", "name", "shape", "exact", "approx", "maxdiff", "ulp", "ok"} for r in rows)


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"", "no words"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1"),
        (b"anna\nbob.by\n", "reserved"),
    ],
)
def test_bad_data_files(tmp_path, payload, needle):
    p = tmp_path / "bad.txt"
    p.write_bytes(payload)
    assert_one_line_error(run_cli("check", "--data", str(p)), needle)


def test_missing_data_and_directory(tmp_path):
    assert_one_line_error(run_cli("check", "--data", str(tmp_path / "none.txt")), "does not exist")
    assert_one_line_error(run_cli("check", "--data", str(tmp_path)), "is a directory")
    assert_one_line_error(run_cli("check", env={"BPJAX_DATA": str(tmp_path / "x")}), "BPJAX_DATA")


def test_nonsense_options(capsys, small_names):
    assert main(["check", "--data", str(small_names), "--batch-size", "1"]) == 2
    assert "--batch-size must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["check", "--batch-size", "many"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected an integer, got 'many'" in err[0]


def test_check_json_with_a_name_at_the_length_limit(tmp_path, names_path):
    out = tmp_path / ("r" * 250 + ".json")  # 255 bytes: the longest name the file system takes
    res = run_cli("check", "--data", str(names_path), "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["rows"]


def test_check_float64_of_a_sequence_model_passes_within_the_float64_rule(tmp_path, small_names):
    res = run_cli(
        "check",
        "--model",
        "bow",
        "--float64",
        "--data",
        str(small_names),
        "--batch-size",
        "4",
        "--json",
        str(tmp_path / "rows.json"),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert {r["table"] for r in rows} == {"layers", "model"} and max(r["maxdiff"] for r in rows) <= 1e-12
    assert "float64" in res.stdout.splitlines()[0]


def test_a_gpt_is_checked_with_its_bias_and_dropout_variants_in_float64(tmp_path, shakespeare_path):
    out = tmp_path / "gpt.json"
    small = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4"]
    res = run_cli("check", "--model", "gpt", "--float64", "--data", str(shakespeare_path), *small, "--json", str(out))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert "1,115,394 characters, vocabulary 65" in res.stdout and "all rows ok" in res.stdout
    for label in ("[bias on]", "[dropout 0.1, masks fixed]"):
        assert res.stdout.count(label) == 2  # its layer table and its whole-model table
    rows = json.loads(out.read_text())["rows"]
    assert rows and max(r["maxdiff"] for r in rows) <= 1e-12


def test_float64_and_bfloat16_products_exclude_each_other():
    both = run_cli("check", "--model", "gpt", "--float64", "--compute-dtype", "bfloat16")
    assert_one_line_error(both, "exclude each other")
