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
