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
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..data import load_dataset
from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text
from .chunk import ChunkRunner, chunk_fn, plan, run_chunk, vmapped_chunk
from .config import Config
from .distributed import AXIS, default_sweep_devices, make_mesh, to_local
from .evaluate import split_losses
from .memory import check_state_fits
from .optim import make_optimizer
from .report import plot_curves, plot_window, window_mean
from .rundir import environment
from .step import gradient_fn, init_train_state

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
    fn = chunk_fn(gradient_fn(base.model, base.grad), make_optimizer(base), base.batch_size)
    if mesh is None:
        return stacked, ChunkRunner(vmapped_chunk(fn))
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    by_model, repl = NamedSharding(mesh, P(AXIS)), NamedSharding(mesh, P())
    *models_state, Xtr, Ytr = stacked
    placed = (*jax.device_put(tuple(models_state), by_model), *jax.device_put((Xtr, Ytr), repl))
    return placed, ChunkRunner(vmapped_chunk(fn, (by_model,) * 4 + (repl,) * 3, by_model))


def run_group(base: Config, members: list[dict], splits: dict, vocab_size: int, *, mesh=None, log=print) -> dict:
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
        base, (params, opt_state, state, key_data, Xtr, Ytr), mesh if shard else None
    )
    exec_s, losses_all = 0.0, []
    finite = np.ones(K, bool)
    for a, b, static in plan(base, 0, base.steps, models=K + pad):
        carry = (params, opt_state, state)
        compiled = runner.compile(static, *carry, key_data, jnp.int32(a), Xtr, Ytr)  # outside the timing
        out, losses, seconds = run_chunk(compiled, carry, key_data, a, Xtr, Ytr, np.asarray)
        params, opt_state, state, _, finite, _ = out
        losses = losses[:K]  # [K, b - a]
        exec_s += seconds
        losses_all.append(losses)
        if b % max(base.steps // 10, 1) < b - a or b == base.steps:
            log(
                f"  {b:7d}/{base.steps:7d}: mean loss {np.nanmean(losses[:, -1]):.4f} over {K} models, "
                f"{K * (b - a) / seconds:,.0f} model-steps/s"
            )
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
        ev = (
            {f"{s}_loss": float("nan") for s in ("train", "val", "test")}
            if diverged
            else split_losses(spec, p, spec.eval_stats(p, st, Xtr_host), splits)
        )
        diverged = diverged or not all(np.isfinite(v) for v in ev.values())
        runs.append({"seed": c.seed, "lr": c.lr, "n_hidden": c.sizes.get("n_hidden"), **ev, "diverged": diverged})
    return {
        "runs": runs,
        "lossi": lossi,
        "models": K,
        "steps": base.steps,
        "compile_seconds": runner.compile_seconds,
        "model_steps_per_second": K * base.steps / exec_s if exec_s > 0 else None,
        "sharded_over": mesh.size if shard else 1,
        "padded": pad,
    }


def _check_sweep(base: Config, seeds, lrs, n_hiddens) -> None:
    """Refuse, before anything trains, a sweep that cannot run: every combination validated."""
    if not seeds or not lrs or not n_hiddens:
        raise ConfigError("a sweep needs at least one seed, one learning rate and one hidden size")
    if base.steps < 1:
        raise ConfigError(f"a sweep needs --steps >= 1, got {base.steps}")
    if base.diagnose_every or base.verify_every:
        raise ConfigError(
            "a sweep records no diagnostics and verifies nothing: use bpjax train (or fit) with "
            "--diagnose-every / --verify-every for one run"
        )
    for h in n_hiddens:
        for lr in lrs:
            for s in seeds:
                base.replace(n_hidden=h, lr=lr, seed=s).validate()


def _group_summary(h: int, lr: float, res: dict) -> dict:
    """The models of one (n_hidden, lr) over their seeds: mean and spread of the val loss, divergences."""
    rs = [r for r in res["runs"] if r["lr"] == lr]
    val = [r["val_loss"] for r in rs if not r["diverged"]]
    return {
        "n_hidden": h,
        "lr": lr,
        "seeds": len(rs),
        "diverged": sum(r["diverged"] for r in rs),
        "val_mean": statistics.fmean(val) if val else None,
        "val_std": statistics.stdev(val) if len(val) > 1 else (0.0 if val else None),
        "val_min": min(val, default=None),
        "val_max": max(val, default=None),
        "train_mean": statistics.fmean(r["train_loss"] for r in rs if not r["diverged"]) if val else None,
        "model_steps_per_second": res["model_steps_per_second"],
        "models_at_once": res["models"],
        "compile_seconds": res["compile_seconds"],
        "sharded_over": res["sharded_over"],
        "runs": rs,
    }


def sweep(
    base: Config,
    *,
    seeds: list[int],
    lrs: list[float],
    n_hiddens: list[int] | None = None,
    data=None,
    devices: int | None = None,
    out=None,
    log=print,
) -> dict:
    """Every (n_hidden, lr, seed) combination; one vmapped group per n_hidden. Returns the results.

    ``devices``: how many local devices to shard each group's models across; None: every CPU
    device (:func:`bpjax.training.distributed.default_sweep_devices`; JAX shows one CPU device unless
    :func:`bpjax.training.distributed.use_every_core` ran before JAX started), or one accelerator."""
    if "n_hidden" not in base.sizes:
        raise ConfigError(f"a sweep groups by n_hidden, which model {base.model_name!r} does not have")
    n_hiddens = [base.n_hidden] if n_hiddens is None else n_hiddens
    seeds, lrs, n_hiddens = (list(dict.fromkeys(v)) for v in (seeds, lrs, n_hiddens))  # no duplicates
    _check_sweep(base, seeds, lrs, n_hiddens)
    devices = default_sweep_devices() if devices is None else devices
    mesh = make_mesh(devices) if devices > 1 else None
    vocab, splits, data_info = load_dataset(
        data, block_size=base.block_size, split_seed=base.split_seed, layout=base.spec.data
    )
    base = base.with_data(data_info)
    groups, curves = [], {}
    window = plot_window(base.steps)
    for h in n_hiddens:
        members = [{"n_hidden": h, "lr": lr, "seed": s} for lr in lrs for s in seeds]
        log(
            f"group n_hidden {h}: {len(members)} models ({len(lrs)} lr x {len(seeds)} seeds), {base.steps:,} steps each"
        )
        res = run_group(base.replace(n_hidden=h), members, splits, vocab.size, mesh=mesh, log=log)
        for lr in lrs:
            groups.append(_group_summary(h, lr, res))
            idx = [i for i, r in enumerate(res["runs"]) if r["lr"] == lr]
            curves[f"n_hidden {h}, lr {lr}"] = np.stack([window_mean(res["lossi"][i], window) for i in idx])
    result = {"config": base.to_json(), "seeds": seeds, "lrs": lrs, "n_hiddens": n_hiddens, "groups": groups,
              "data": data_info, "environment": environment(), "devices": devices}  # fmt: skip
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "sweep.json", result)
        atomic_write_text(out / "sweep.md", markdown(result))
        title = f"bpjax sweep: {base.model_name}, {base.grad} gradients (band: min–max over seeds)"
        plot_curves(curves, out / "sweep.png", window=window, title=title)
    return result


def markdown(result: dict) -> str:
    lines = [
        "| n_hidden | lr | seeds | val mean ± std | val min–max | train mean | models at once | model-steps/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    f = lambda v: "—" if v is None else f"{v:.4f}"
    f0 = lambda v: "—" if v is None else f"{v:,.0f}"
    for g in result["groups"]:
        diverged = f" ({g['diverged']} diverged)" if g["diverged"] else ""
        lines.append(
            f"| {g['n_hidden']} | {g['lr']} | {g['seeds']}{diverged}"
            + f" | {f(g['val_mean'])} ± {f(g['val_std'])} | {f(g['val_min'])}–{f(g['val_max'])} "
            f"| {f(g['train_mean'])} | {g['models_at_once']} | {f0(g['model_steps_per_second'])} |"
        )
    return "\n".join(lines) + "\n"
