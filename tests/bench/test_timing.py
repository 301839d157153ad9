"""Timing the step: the chunk fit runs, its plan, and a row's figures from its rates."""

import jax.numpy as jnp
import pytest

from bpjax import Config
from bpjax.bench.timing import DIAGNOSED, TrainLoop, bench_bpjax, row
from bpjax.training.chunk import plan


def test_a_row_is_the_median_rate_with_its_flops():
    r = row([100.0, 300.0, 200.0], flops=1e6, models_at_once=4, compile_s=2.0)
    assert r["steps_per_second"] == 200.0 and r["model_steps_per_second"] == 800.0 and r["us_per_step"] == 5000.0
    assert r["gflops"] == pytest.approx(0.8) and r["flops_per_step"] == 4e6 and r["rates"] == [100.0, 300.0, 200.0]
    assert row([10.0], None)["gflops"] is None


def test_the_train_loop_times_fits_plan_and_chunk():
    """The instrumented loop's chunks are those fit would run (its plan), compiled once each."""
    cfg = Config(n_hidden=8, steps=2_500, chunk=1_000).replace(**DIAGNOSED)
    Xtr, Ytr = jnp.zeros((500, 3), jnp.int32), jnp.zeros((500,), jnp.int32)
    loop = TrainLoop(cfg, Xtr, Ytr, 27, 2_500)
    assert loop.plan == plan(cfg, 0, 2_500) and set(loop.runner.compiled) == {s for _, _, s in loop.plan}
    loop.run()


def test_bench_bpjax_times_one_chunk_of_the_asked_steps():
    Xtr, Ytr = jnp.zeros((500, 3), jnp.int32), jnp.zeros((500,), jnp.int32)
    r = bench_bpjax(Xtr, Ytr, 27, grad="manual", steps=50, repeats=2, n_hidden=8)
    assert r["steps_per_second"] > 0 and len(r["rates"]) == 2 and r["flops_per_step"] > 0 and r["temp_bytes"] >= 0
