"""``bpjax sweep``: many configurations trained at once.

Configurations that share shapes (seeds, learning rates) are one group: their parameters, optimizer
states (which hold each model's learning rate) and keys are stacked, and the training chunk of
``bpjax train`` runs under ``vmap`` over them; with several devices the model axis is sharded across
them (on CPU, by default, one device per core: :func:`bpjax.distributed.use_every_core`; a model
count that does not divide by the device count is padded with copies of the last model, whose
results are dropped). Configurations of different shapes (hidden sizes) are separate groups, run
one after another.
Model ``k`` of a group starts from exactly the parameters and minibatch stream of ``bpjax train
--seed s --lr lr``. Results: ``sweep.json``, ``sweep.md`` (mean and spread per group) and
``sweep.png`` (every group's curve).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import models
from .config import GRADS, Config
from .data import load_dataset
from .distributed import AXIS, default_sweep_devices, make_mesh, to_local
from .errors import ConfigError
from .io import atomic_write_json, atomic_write_text, check_output_dir
from .report import plot_curves, plot_window, window_mean
from .rundir import environment
from .step import (
    ChunkRunner,
    check_state_fits,
    chunk_length,
    init_train_state,
    segments,
    split_losses,
    vmapped_train_chunk,
)

MAX_MODELS = 1_000_000
"""The most seeds a sweep counts out (a list may name others); memory bounds them further
(:func:`bpjax.step.check_state_fits`)."""


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _index(tree, k):
    return jax.tree_util.tree_map(lambda a: a[k], tree)


def place_models(base: Config, stacked, mesh=None):
    """``((params, opt_state, state, key_data, Xtr, Ytr), runner)``: the stacked models' state split
    along the model axis across ``mesh`` (the data replicated) and the vmapped chunk compiled with
    those shardings; on the default device when ``mesh`` is None. The model count must divide by
    the mesh's size (:func:`run_group` pads)."""
    if mesh is None:
        return stacked, ChunkRunner(vmapped_train_chunk(base))
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    by_model, repl = NamedSharding(mesh, P(AXIS)), NamedSharding(mesh, P())
    *models_state, Xtr, Ytr = stacked
    placed = (*jax.device_put(tuple(models_state), by_model), *jax.device_put((Xtr, Ytr), repl))
    return placed, ChunkRunner(vmapped_train_chunk(base, (by_model,) * 4 + (repl,) * 3, by_model))


def run_group(base: Config, members: list[dict], splits: dict, vocab_size: int, *, mesh=None,
              log=print) -> dict:
    """Train ``members`` (each a dict of Config overrides: seed, lr) of one shape together."""
    cfgs = [base.replace(**m).validate() for m in members]
    K = len(cfgs)
    check_state_fits(base, vocab_size, models=K)  # before K models are initialised
    starts = [init_train_state(c, vocab_size) for c in cfgs]  # exactly fit()'s init and key per seed
    shard = mesh is not None and mesh.size > 1
    pad = (-K) % mesh.size if shard else 0  # copies of the last model fill the last device's share
    starts += starts[-1:] * pad
    params, opt_state, state, key_data = (_stack([t[i] for t in starts]) for i in range(4))
    Xtr, Ytr = (jnp.asarray(a) for a in splits["train"])
    # The optimizer's rates are in its (stacked) state: one template transformation serves all.
    (params, opt_state, state, key_data, Xtr, Ytr), runner = place_models(
        base, (params, opt_state, state, key_data, Xtr, Ytr), mesh if shard else None)
    exec_s, losses_all = 0.0, []
    finite = np.ones(K, bool)
    for a, b in segments(0, base.steps, [chunk_length(base, K + pad)]):
        args = (params, opt_state, state, key_data, jnp.int32(a), Xtr, Ytr)
        run_chunk = runner.compile(b - a, *args)  # compiled once per length, outside the timing
        t = time.perf_counter()
        params, opt_state, state, losses, finite = run_chunk(*args)
        losses = np.asarray(losses)[:K]  # [K, b - a]
        exec_s += time.perf_counter() - t
        losses_all.append(losses)
        if b % max(base.steps // 10, 1) < b - a or b == base.steps:
            log(f"  {b:7d}/{base.steps:7d}: mean loss {np.nanmean(losses[:, -1]):.4f} over {K} models, "
                f"{K * (b - a) / (time.perf_counter() - t):,.0f} model-steps/s")
    finite = np.asarray(finite)[:K]
    losses_all = np.concatenate(losses_all, axis=1) if losses_all else np.zeros((K, 0), np.float32)  # [K, steps]
    lossi = np.log10(losses_all)
    spec = base.spec
    Xtr_host = splits["train"][0]
    runs = []
    params_l, state_l = to_local(params), to_local(state)
    trained_finite = np.isfinite(losses_all).all(1)
    for k, c in enumerate(cfgs):
        p, st = _index(params_l, k), _index(state_l, k)
        # diverged: a parameter or any minibatch loss along the way is not finite, or an eval loss
        diverged = not (finite[k] and trained_finite[k])
        ev = ({f"{s}_loss": float("nan") for s in ("train", "val", "test")} if diverged else
              split_losses(spec, p, spec.eval_stats(p, st, Xtr_host), splits))
        diverged = diverged or not all(np.isfinite(v) for v in ev.values())
        runs.append({"seed": c.seed, "lr": c.lr, "n_hidden": c.sizes.get("n_hidden"), **ev, "diverged": diverged})
    return {"runs": runs, "lossi": lossi, "models": K, "steps": base.steps, "compile_seconds": runner.compile_seconds,
            "model_steps_per_second": K * base.steps / exec_s if exec_s > 0 else None,
            "sharded_over": mesh.size if shard else 1, "padded": pad}


def sweep(base: Config, *, seeds: list[int], lrs: list[float], n_hiddens: list[int] | None = None, data=None,
          devices: int | None = None, out=None, log=print) -> dict:
    """Every (n_hidden, lr, seed) combination; one vmapped group per n_hidden. Returns the results.

    ``devices``: how many local devices to shard each group's models across; None: every CPU
    device (:func:`bpjax.distributed.default_sweep_devices`; JAX shows one CPU device unless
    :func:`bpjax.distributed.use_every_core` ran before JAX started), or one accelerator."""
    if "n_hidden" not in base.sizes:
        raise ConfigError(f"a sweep groups by n_hidden, which model {base.model_name!r} does not have")
    if n_hiddens is None:
        n_hiddens = [base.n_hidden]
    seeds, lrs, n_hiddens = (list(dict.fromkeys(v)) for v in (seeds, lrs, n_hiddens))  # no duplicates
    if not seeds or not lrs or not n_hiddens:
        raise ConfigError("a sweep needs at least one seed, one learning rate and one hidden size")
    if base.steps < 1:
        raise ConfigError(f"a sweep needs --steps >= 1, got {base.steps}")
    if base.diagnose_every or base.verify_every:
        raise ConfigError("a sweep records no diagnostics and verifies nothing: use bpjax train (or fit) with "
                          "--diagnose-every / --verify-every for one run")
    for h in n_hiddens:  # every combination is checked before anything trains
        for lr in lrs:
            for s in seeds:
                base.replace(n_hidden=h, lr=lr, seed=s).validate()
    if devices is None:
        devices = default_sweep_devices()
    mesh = make_mesh(devices) if devices > 1 else None
    vocab, splits, data_info = load_dataset(data, block_size=base.block_size, split_seed=base.split_seed,
                                            layout=base.spec.data)
    base = base.with_data(data_info)
    groups, curves = [], {}
    window = plot_window(base.steps)
    for h in n_hiddens:
        members = [{"n_hidden": h, "lr": lr, "seed": s} for lr in lrs for s in seeds]
        log(f"group n_hidden {h}: {len(members)} models ({len(lrs)} lr x {len(seeds)} seeds), "
            f"{base.steps:,} steps each")
        res = run_group(base.replace(n_hidden=h), members, splits, vocab.size, mesh=mesh, log=log)
        for lr in lrs:
            idx = [i for i, r in enumerate(res["runs"]) if r["lr"] == lr]
            rs = [res["runs"][i] for i in idx]
            val = [r["val_loss"] for r in rs if not r["diverged"]]
            groups.append({
                "n_hidden": h, "lr": lr, "seeds": len(rs), "diverged": sum(r["diverged"] for r in rs),
                "val_mean": statistics.fmean(val) if val else None,
                "val_std": statistics.stdev(val) if len(val) > 1 else (0.0 if val else None),
                "val_min": min(val, default=None), "val_max": max(val, default=None),
                "train_mean": statistics.fmean(r["train_loss"] for r in rs if not r["diverged"]) if val else None,
                "model_steps_per_second": res["model_steps_per_second"], "models_at_once": res["models"],
                "compile_seconds": res["compile_seconds"], "sharded_over": res["sharded_over"], "runs": rs,
            })
            curves[f"n_hidden {h}, lr {lr}"] = np.stack([window_mean(res["lossi"][i], window) for i in idx])
    result = {"config": base.to_json(), "seeds": seeds, "lrs": lrs, "n_hiddens": n_hiddens, "groups": groups,
              "data": data_info, "environment": environment(), "devices": devices}
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "sweep.json", result)
        atomic_write_text(out / "sweep.md", markdown(result))
        plot_curves(curves, out / "sweep.png", window=window,
                    title=f"bpjax sweep: {base.model_name}, {base.grad} gradients (band: min–max over seeds)")
    return result


def markdown(result: dict) -> str:
    lines = ["| n_hidden | lr | seeds | val mean ± std | val min–max | train mean | models at once | model-steps/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    f = lambda v: "—" if v is None else f"{v:.4f}"
    f0 = lambda v: "—" if v is None else f"{v:,.0f}"
    for g in result["groups"]:
        diverged = f" ({g['diverged']} diverged)" if g["diverged"] else ""
        lines.append(f"| {g['n_hidden']} | {g['lr']} | {g['seeds']}{diverged}"
                     + f" | {f(g['val_mean'])} ± {f(g['val_std'])} | {f(g['val_min'])}–{f(g['val_max'])} "
                     f"| {f(g['train_mean'])} | {g['models_at_once']} | {f0(g['model_steps_per_second'])} |")
    return "\n".join(lines) + "\n"


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def add_sweep_args(p) -> None:
    from .cli import _positive_int

    p.add_argument("--data", help="names file (default: the usual search)")
    p.add_argument("--model", choices=models.names(), default="mlp", help="which model (default mlp)")
    p.add_argument("--grad", choices=GRADS, default="manual", help="hand-written backward or jax.grad")
    p.add_argument("--seeds", default="16", help="a count (16: seeds 0..15) or a list (0,3,7)")
    p.add_argument("--lrs", default=None, help="initial learning rates, comma-separated (default: the model's)")
    p.add_argument("--n-hidden", default=None, help="hidden sizes, comma-separated: one group each")
    p.add_argument("--steps", type=int, default=None, help="steps per model (default: the model's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--devices", type=_positive_int, default=None,
                   help="shard the models across N devices (default: one per CPU core, or one GPU)")
    p.add_argument("--out", default="sweep", metavar="DIR", help="where sweep.json/.md/.png go (default sweep/)")


def cmd_sweep(args) -> int:
    try:
        if "," not in args.seeds and not 1 <= int(args.seeds) <= MAX_MODELS:
            raise ConfigError(f"--seeds must be a count from 1 to {MAX_MODELS:,} or a list, got {args.seeds}")
        seeds = list(range(int(args.seeds))) if "," not in args.seeds else _ints(args.seeds)
        lrs = _floats(args.lrs) if args.lrs else None
        hiddens = _ints(args.n_hidden) if args.n_hidden else None
    except ValueError as e:
        raise ConfigError(f"could not read a number in --seeds/--lrs/--n-hidden ({e})") from None
    check_output_dir(args.out)
    over = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
    base = Config(args.model, grad=args.grad, **over)
    res = sweep(base, seeds=seeds, lrs=lrs or [base.lr], n_hiddens=hiddens, data=args.data,
                devices=args.devices, out=args.out)
    print()
    print(markdown(res))
    print(f"wrote {Path(args.out) / 'sweep.json'}, sweep.md and sweep.png")
    return 0 if all(g["diverged"] == 0 for g in res["groups"]) else 1
