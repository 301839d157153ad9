"""How fast `bpjax sample` writes names: the sampler beside the one it replaced, timed in the same run.

    python experiments/sample_speed.py                       # the notebook's MLP at its defaults
    python experiments/sample_speed.py --run runs/mlp -n 20_000_000

Trains the notebook's MLP (``bpjax train``'s defaults) unless ``--run DIR`` names a run, then times
``bpjax sample --run DIR -n N > file`` as a user runs it (a fresh process: start-up and compilation
included) and, in this process, names/s of :func:`bpjax.training.sample.iter_sample_names` (the
sampler: one uniform per name and position, a batch stops at its longest name) beside the baseline it
replaced (``jax.random.categorical``, a Gumbel per vocabulary entry, every batch run to ``max_len``
positions, names decoded row by row), on the same parameters and batch size. Writes
``<out>/sample_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bpjax.io import atomic_write_json, atomic_write_text
from bpjax.training import load_run
from bpjax.training import sample as S
from bpjax.training.rundir import environment


@partial(jax.jit, static_argnames=("logits_eval", "n", "block_size", "max_len"))
def baseline_ids(logits_eval, params, bn_stats, key, *, n, block_size, max_len):
    """The sampler before: a scan over all ``max_len`` positions, ``jax.random.categorical``."""

    def step(context, k):
        ix = jax.random.categorical(k, logits_eval(params, bn_stats, context), axis=-1).astype(jnp.int32)
        return jnp.concatenate([context[:, 1:], ix[:, None]], axis=1), ix

    _, ids = jax.lax.scan(step, jnp.zeros((n, block_size), jnp.int32), jax.random.split(key, max_len))
    return ids.T


def baseline_names(run, n: int, batch: int, max_len: int) -> list[str]:
    names = []
    for i in range(0, n, batch):
        ids = np.asarray(
            baseline_ids(
                run.model.logits_eval,
                run.params,
                run.bn_stats,
                jax.random.fold_in(jax.random.key(0), i),
                n=batch,
                block_size=run.config.block_size,
                max_len=max_len,
            )
        )
        for row in ids:
            end = np.flatnonzero(row == 0)
            names.append(run.vocab.decode(row[: end[0]]) + "." if len(end) else run.vocab.decode(row) + "…")
    return names[:n]


def rate(fn, n: int) -> float:
    fn(S.SAMPLE_CHUNK)  # compiled
    t = time.perf_counter()
    got = fn(n)
    dt = time.perf_counter() - t
    assert len(got) == n
    return n / dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="a run directory (default: train the notebook's MLP)")
    p.add_argument("-n", type=int, default=2_000_000, help="names for the command-line timing (default 2,000,000)")
    p.add_argument("--in-process", type=int, default=262_144, help="names for the two in-process rates")
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--out", default="experiments/results")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = str(Path(tmp) / "mlp")
            subprocess.run([sys.executable, "-m", "bpjax", "train", "--out", run_dir], check=True)
        run = load_run(run_dir)
        new = rate(lambda n: list(run.iter_sample(n=n, seed=0, max_len=args.max_len)), args.in_process)
        old = rate(lambda n: baseline_names(run, n, S.SAMPLE_CHUNK, args.max_len), args.in_process)
        out_file = Path(tmp) / "names.txt"
        t = time.perf_counter()
        with out_file.open("w") as f:
            cmd = [sys.executable, "-m", "bpjax", "sample", "--run", run_dir, "-n", str(args.n)]
            subprocess.run(cmd, stdout=f, check=True)
        wall = time.perf_counter() - t
        lines = sum(1 for _ in out_file.open())
    assert lines == args.n, f"bpjax sample wrote {lines:,} names, not {args.n:,}"
    result = {
        "model": run.config.model,
        "run": None if args.run is None else args.run,
        "batch": S.SAMPLE_CHUNK,
        "max_len": args.max_len,
        "in_process_names": args.in_process,
        "names_per_second": new,
        "baseline_names_per_second": old,
        "speedup": new / old,
        "command_names": args.n,
        "command_seconds": wall,
        "command_names_per_second": args.n / wall,
        "environment": environment(),
    }
    out = Path(args.out)
    atomic_write_json(out / "sample_speed.json", result)
    md = (
        f"`bpjax sample -n {args.n:,}` ({result['model']}, batches of {S.SAMPLE_CHUNK:,}): "
        f"{args.n / wall:,.0f} names/s, {wall:.1f} s as a command (start-up and compilation included).\n\n"
        f"In this process, {args.in_process:,} names: {new:,.0f} names/s against the baseline's {old:,.0f} "
        f"({new / old:.1f}x; `jax.random.categorical`, every batch to max_len {args.max_len}, names "
        "decoded row by row), the same parameters and batch size.\n"
    )
    atomic_write_text(out / "sample_speed.md", md)
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
