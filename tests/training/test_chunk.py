"""The one training chunk: its plan (where chunks begin and end, their static arguments), the same
program with and without hooks, and the runner that compiles it once per plan entry."""

import jax
import jax.numpy as jnp
import numpy as np

from bpjax import Config
from bpjax.training.chunk import ChunkRunner, chunk_fn, plan, segments, static_args, verified_segments
from bpjax.training.loop import chunk_for
from bpjax.training.optim import make_optimizer
from bpjax.training.step import gradient_fn, init_train_state


def test_segments_cut_at_chunks_checkpoints_and_evals():
    assert segments(0, 10, [4]) == [(0, 4), (4, 8), (8, 10)]
    assert segments(3, 10, [4, 5]) == [(3, 4), (4, 5), (5, 8), (8, 10)]
    assert segments(5, 5, [4]) == []


def test_segments_hold_their_checks():
    segs = verified_segments([(0, 2500), (2500, 5000), (5000, 5230)], 1000)
    assert segs == [(0, 2000), (2000, 2500), (2500, 3000), (3000, 5000), (5000, 5230)]
    assert [static_args(a, b, 100, 1000)[2] for a, b in segs] == [1000, -1, 0, 1000, -1]
    assert static_args(2500, 3000, 100, 1000)[1] == 0 and static_args(2550, 3000, 100, 1000)[1] == 50


def test_the_plan_of_a_plain_and_a_recorded_run():
    """Plain: chunks of cfg.chunk steps, cut at evals, no hooks; recorded: the chunk rounded down to a
    multiple of the check period, each piece with its checks."""
    assert plan(Config(steps=12_000, chunk=5_000, eval_every=4_000), 0, 12_000) == [
        (0, 4000, (4000, 0, 0)),
        (4000, 5000, (1000, 0, 0)),
        (5000, 8000, (3000, 0, 0)),
        (8000, 10000, (2000, 0, 0)),
        (10000, 12000, (2000, 0, 0)),
    ]
    recorded = plan(Config(steps=5_230, chunk=2_500, diagnose_every=100, verify_every=1_000), 0, 5_230)
    assert [(a, b) for a, b, _ in recorded] == [(0, 2000), (2000, 4000), (4000, 5000), (5000, 5230)]
    assert [s for _, _, s in recorded] == [(2000, 0, 1000), (2000, 0, 1000), (1000, 0, 1000), (230, 0, -1)]
    assert plan(Config(steps=100), 40, 100) == [(40, 100, (60, 0, 0))]  # a resumed run from its step


def test_the_chunk_is_the_same_program_with_empty_hooks_and_its_steps_are_fold_in_stable():
    """One call of 20 steps equals two of 8 and 12 (each step's minibatch is its own), and equals the
    jitted chunk_for(cfg) that fit runs."""
    cfg = Config(n_hidden=8, steps=20)
    Xtr = jax.random.randint(jax.random.key(0), (200, 3), 0, 27)
    Ytr = jax.random.randint(jax.random.key(1), (200,), 0, 27)
    params, opt, state, key = init_train_state(cfg, 27)
    fn = chunk_fn(gradient_fn("mlp", "manual"), make_optimizer(cfg), cfg.batch_size)
    whole = jax.jit(fn, static_argnums=(7, 8, 9))(params, opt, state, key, jnp.int32(0), Xtr, Ytr, 20, 0, 0)
    runner = ChunkRunner(chunk_for(cfg))
    a = runner(8, params, opt, state, key, jnp.int32(0), Xtr, Ytr)
    b = runner(12, *a[:3], key, jnp.int32(8), Xtr, Ytr)
    np.testing.assert_array_equal(np.concatenate([a[3], b[3]]), whole[3])
    jax.tree_util.tree_map(np.testing.assert_array_equal, b[0], whole[0])
    assert whole[5] == {} and bool(whole[4]) and sorted(runner.compiled) == [(8, 0, 0), (12, 0, 0)]
    assert runner.compile_seconds > 0
