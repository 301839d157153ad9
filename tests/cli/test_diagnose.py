"""bpjax diagnose: a run's records printed and its figures redrawn; one line when there are none."""

from conftest import assert_one_line_error, run_cli


def test_train_diagnose_and_redraw(names_path, tmp_path):
    out = tmp_path / "run"
    res = run_cli(
        "train",
        "--model",
        "deep",
        "--data",
        str(names_path),
        "--steps",
        "200",
        "--n-blocks",
        "2",
        "--diagnose-every",
        "50",
        "--verify-every",
        "100",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert {"diagnostics.npz", "diagnostics.png"} <= {p.name for p in out.iterdir()}
    (out / "diagnostics.png").unlink()
    res = run_cli("diagnose", "--run", str(out), "--step", "120")
    assert res.returncode == 0, res.stderr
    assert "diagnostics at step 100 (4 records)" in res.stdout and "l1.h: mean" in res.stdout
    assert "verification: 2/2 checks passed" in res.stdout and (out / "diagnostics.png").stat().st_size > 10_000
    assert_one_line_error(
        run_cli("diagnose", "--run", str(tmp_path)), "has no diagnostics.npz: train with --diagnose-every"
    )
    (out / "diagnostics.npz").write_bytes(b"not an archive")
    assert_one_line_error(run_cli("diagnose", "--run", str(out)), "is not a bpjax diagnostics file")
    assert_one_line_error(run_cli("train", "--model", "deep", "--batchnorm", "maybe"), "expected on or off")
