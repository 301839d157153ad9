"""The bench's summary: rows found by their keys, the ratios of one run, the markdown table."""

import pytest

from bpjax.bench import find, markdown, summary


def test_rows_are_found_by_their_keys():
    rows = [{"group": "grad", "grad": "manual", "n_hidden": 64}, {"group": "grad", "grad": "autodiff", "n_hidden": 64}]
    assert find(rows, grad="autodiff")["grad"] == "autodiff"
    with pytest.raises(KeyError):
        find(rows, group="grad")


def _row(group, sps, **keys):
    return {
        "group": group,
        "name": f"{group} {keys}",
        "steps_per_second": sps,
        "model_steps_per_second": sps,
        "us_per_step": 1e6 / sps,
        "compile_seconds": 1.0,
        "flops_per_step": None,
        "gflops": None,
        **keys,
    }


def test_the_summary_divides_rows_of_the_same_run_and_the_table_shows_them():
    rows = [
        _row("grad", 40_000.0, impl="bpjax", grad="manual", n_hidden=64, model="mlp"),
        _row("grad", 20_000.0, impl="bpjax", grad="autodiff", n_hidden=64, model="mlp"),
        _row("grad", 10_000.0, impl="bpjax", grad="manual", n_hidden=200, model="mlp"),
        _row("grad", 8_000.0, impl="bpjax", grad="autodiff", n_hidden=200, model="mlp"),
        _row("bow", 2_000.0, impl="bpjax", grad="manual", model="bow"),
        _row("bow", 1_000.0, impl="bpjax", grad="autodiff", model="bow"),
    ]
    s = summary(rows, None, 27, False)
    assert s == {
        "manual_over_autodiff": 2.0,
        "manual_over_autodiff_n_hidden_200": 1.25,
        "bow_manual_over_autodiff": 2.0,
    }
    result = {
        "machine": {"cpu": "x", "cpu_count": 2, "device": "cpu:cpu", "jax": "0", "peak_gflops": None},
        "settings": {"repeats": 1},
        "rows": rows,
        "summary": s,
        "torch": "measured (1 thread)",
        "makemore": "not timed",
    }
    md = markdown(result)
    assert md.count("\n| grad |") == 4 and "- manual over autodiff: 2.00" in md


def test_the_gpts_ratios_pair_each_dtype_and_each_peer():
    rows = [
        _row("grad", 40_000.0, impl="bpjax", grad="manual", n_hidden=64, model="mlp"),
        _row("grad", 20_000.0, impl="bpjax", grad="autodiff", n_hidden=64, model="mlp"),
        _row("grad", 10_000.0, impl="bpjax", grad="manual", n_hidden=200, model="mlp"),
        _row("grad", 8_000.0, impl="bpjax", grad="autodiff", n_hidden=200, model="mlp"),
        _row("gpt", 40.0, impl="bpjax", grad="manual", model="gpt", variant="train", compute_dtype="float32"),
        _row("gpt", 32.0, impl="bpjax", grad="autodiff", model="gpt", variant="train", compute_dtype="float32"),
        _row("gpt", 64.0, impl="bpjax", grad="manual", model="gpt", variant="train", compute_dtype="bfloat16"),
        _row("gpt", 20.0, impl="nanogpt", grad="autodiff", model="gpt", variant="nanogpt_train_py"),
        _row("gpt", 16.0, impl="nanogpt", grad="autodiff", model="gpt", variant="nanogpt_autocast_bfloat16"),
    ]
    s = summary(rows, None, 65, False)
    assert s["gpt_manual_over_autodiff"] == 1.25 and s["gpt_manual_bfloat16_over_float32"] == 1.6
    assert s["gpt_manual_over_nanogpt_train_py"] == 2.0 and s["gpt_manual_bfloat16_over_nanogpt_train_py"] == 3.2
    assert s["gpt_manual_bfloat16_over_nanogpt_autocast_bfloat16"] == 4.0
    assert "gpt_manual_over_autodiff_bfloat16" not in s  # no bfloat16 autodiff row (bench --quick)
