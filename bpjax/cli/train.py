"""``bpjax train``: train any registered model (default the notebook's MLP), hand-written or autodiff
gradients; ``--resume DIR`` continues a stopped run."""

from __future__ import annotations

import signal
from pathlib import Path

from ..errors import BpjaxError, ConfigError
from ..io import check_output_dir
from .args import add_data_arg, add_model_arg, add_setting_args, add_size_args, integer, positive_int, train_flags

HELP = "train a model (default the notebook's MLP) with hand-written (or autodiff) gradients"


def add_args(t) -> None:
    add_data_arg(t)
    add_model_arg(t, default=None)
    add_size_args(t)
    add_setting_args(t)
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<timestamp>)")
    t.add_argument("--stop-at", type=integer, metavar="K", help="stop after K steps with a checkpoint (resume later)")
    t.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR to its configured steps, or with --steps N extend it (stopped or "
        "complete) to N where its learning rate schedule allows: a constant rate or a fixed --lr-decay-step",
    )
    t.add_argument(
        "--no-progress", action="store_true", help="no progress bar on a terminal (the progress lines still print)"
    )
    add_parallel_args(t)


def add_parallel_args(t) -> None:
    from ..training.distributed import one_core_models

    g = t.add_argument_group("parallel (data-parallel over a 1-D device mesh; see docs/gpu.md)")
    g.add_argument(
        "--devices",
        type=positive_int,
        default=1,
        metavar="N",
        help="devices of each process to split every batch across (default 1)",
    )
    g.add_argument(
        "--cores",
        type=positive_int,
        metavar="N",
        help=f"CPU cores XLA may use; N at or above the usable cores changes nothing (default: one "
        f"for {', '.join(one_core_models())}, whose small kernels run faster pinned to one, "
        "on one CPU device of one process; every core otherwise)",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="jax.distributed coordinator (process 0's address)")
    g.add_argument("--num-processes", type=integer, metavar="P", help="processes in the cluster")
    g.add_argument("--process-id", type=integer, metavar="I", help="this process's index, 0..P-1")
    g.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="process 0: the address its coordinator listens on "
        "(default: the --coordinator address only, not every interface)",
    )
    g.add_argument(
        "--timeout",
        type=positive_int,
        default=120,
        metavar="S",
        help="seconds to wait for every process to join (default 120)",
    )


def _init_distributed(args) -> None:
    cluster = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in cluster):
        if any(v is None for v in cluster):
            raise ConfigError("--coordinator, --num-processes and --process-id go together")
        from ..training.distributed import initialize

        initialize(*cluster, bind=args.bind, timeout=args.timeout)


def _use_cores(args) -> None:
    """Pin the process to ``--cores`` cores, or to the model's default (``Model.cpu_cores`` on one CPU
    device of one process; :func:`bpjax.training.distributed.default_cores`), before JAX starts."""
    from ..training.distributed import default_cores, use_cores

    n = args.cores
    if n is None:
        model = args.model
        if args.resume is not None:
            from ..training.rundir import read_json

            try:
                model = read_json(Path(args.resume) / "config.json")["config"]["model"]
            except (BpjaxError, KeyError, TypeError):
                model = None  # resuming reports what is wrong with the run directory
        cluster = any(v is not None for v in (args.coordinator, args.num_processes, args.process_id))
        n = default_cores(model or "mlp", devices=args.devices, cluster=cluster)
    if n is not None:
        use_cores(n)


def run(args) -> int:
    from ..training import Config, fit

    _use_cores(args)
    _init_distributed(args)
    given = {k: getattr(args, k) for k in train_flags() if getattr(args, k) is not None}
    progress = False if args.no_progress else None
    if args.resume is not None:
        extend = {k: given.pop(k) for k in ("steps", "lr_decay_step") if k in given}  # --steps N: train it longer
        extra = [f"--{k.replace('_', '-')}" for k in given] + (["--out"] if args.out else [])
        extra += ["--stop-at"] if args.stop_at is not None else []
        if extra:
            raise ConfigError(
                f"--resume continues a run with its own configuration (--steps N extends it); drop {', '.join(extra)}"
            )
        run = fit(resume=args.resume, data=args.data, devices=args.devices, progress_bar=progress, **extend)
    else:
        if args.out is not None:
            check_output_dir(args.out)
        run = fit(
            Config(**given),
            data=args.data,
            out=args.out,
            stop_at=args.stop_at,
            devices=args.devices,
            progress_bar=progress,
        )
    sig = run.metrics.get("signal")
    return 128 + int(getattr(signal, sig)) if sig else 0  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
