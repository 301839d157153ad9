"""The command line: ``bpjax check | train | sample | diagnose | bench | sweep``.

``check`` compares every hand-written gradient of a model with ``jax.grad``; ``train`` trains any
registered model (``--model``, default the notebook's MLP) with hand-written or autodiff
gradients; ``sample`` prints names from a run; ``diagnose`` prints and draws a run's training
diagnostics; ``bench`` measures training speed; ``sweep`` trains many seeds and learning rates at
once. Model names, their size flags and the ``--grad`` choices
come from the registry (:mod:`bpjax.models`) and the config (:mod:`bpjax.config`).

Every error the user can fix prints one line, ``bpjax <cmd>: error: ...``, and exits 2.
"""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import sys

from .errors import BpjaxError, ConfigError
from .io import atomic_write_json, check_output_dir


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _on_off(s: str) -> bool:
    v = s.strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {s!r}")


def _seed(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed between 0 and 2**32 - 1, got {v}")
    return v


# --------------------------------------------------------------------------------------------
def cmd_check(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from .config import Config
    from .data import load_dataset

    cfg = Config(args.model)
    spec = cfg.spec
    if spec.min_batch >= 2 and (args.batch_size < 2 or (args.batch_size < 3 and not args.float64)):
        raise ConfigError(f"--batch-size must be >= 2 (batch norm divides by n - 1), and >= 3 in float32 (with "
                          f"2 rows batch norm's gradient is O(eps) and float32 cancellation dominates it), "
                          f"got {args.batch_size}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    vocab, splits, info = load_dataset(args.data, block_size=cfg.block_size, split_seed=cfg.split_seed,
                                       layout=spec.data)
    cfg = cfg.with_data(info)
    Xtr, Ytr = splits["train"]
    if args.batch_size > len(Xtr):
        raise ConfigError(f"--batch-size {args.batch_size:,} is more than the {len(Xtr):,} training rows")
    with jax.enable_x64(args.float64):
        dtype = jnp.float64 if args.float64 else jnp.float32
        k_init, k_batch = jax.random.split(jax.random.key(args.seed))
        ix = jax.random.randint(k_batch, (args.batch_size,), 0, Xtr.shape[0])
        X, Y = jnp.asarray(Xtr)[ix], jnp.asarray(Ytr)[ix]
        if "dtype" in inspect.signature(spec.init).parameters:  # drawn in dtype (bpjax's models)
            params, state = spec.init(k_init, vocab_size=vocab.size, dtype=dtype, **cfg.sizes)
        else:  # a model of your own: its float32 init, cast
            params, state = spec.init(k_init, vocab_size=vocab.size, **cfg.sizes)
        params, state = jax.tree_util.tree_map(lambda a: a.astype(dtype), (params, state))
        loss = float(spec.loss(params, state, X, Y)[0])
        tables = spec.tables(params, state, X, Y)
        print(f"bpjax check --model {args.model}: {info['words']} words, vocabulary {vocab.size}, batch "
              f"{args.batch_size}, seed {args.seed}, {np.dtype(dtype).name}; loss {loss:.4f}")
    for t in tables:
        print()
        print(t)
    ok = bool(tables) and all(t.ok for t in tables)  # no table checks nothing
    if args.json:
        atomic_write_json(args.json, {"rows": [r for t in tables for r in t.to_json()]})
    bad = [f"{r.table}/{r.name}" for t in tables for r in t if not r.ok]
    print("\nall rows ok" if ok else f"\nFAILED rows: {', '.join(bad)}")
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
def train_flags() -> tuple[str, ...]:
    """Config's settings and every registered model's sizes: the options ``bpjax train`` passes on."""
    import dataclasses

    from . import models
    from .config import Config

    settings = tuple(f.name for f in dataclasses.fields(Config) if f.name != "sizes")
    return settings + tuple(models.all_sizes())


def add_train_args(t: argparse.ArgumentParser) -> None:
    from . import models
    from .config import GRADS, OPTIMIZERS, Config, size_kind

    d = Config()
    t.add_argument("--data", help="names file (default: data/names.txt, $BPJAX_DATA, or the cache)")
    t.add_argument("--model", choices=models.names(), help="; ".join(
        f"{n}: {models.get(n).help.get('', n)}" for n in models.names()) + " (default mlp)")
    g = t.add_argument_group("the model's sizes (default: the model's own; each applies to the models that have it)")
    for name, text in models.all_sizes().items():
        owners = [n for n in models.names() if name in models.get(n).sizes]
        kind = size_kind(next((models.get(n).sizes[name] for n in owners if models.get(n).sizes[name] is not None),
                              None))
        shown = lambda v: ("on" if v else "off") if isinstance(v, bool) else f"{v:.4g}" if isinstance(v, float) else v  # noqa: E731
        defaults = ", ".join(f"{n} {shown(models.get(n).sizes[name])}" for n in owners)
        g.add_argument(f"--{name.replace('_', '-')}", type={bool: _on_off, float: float, int: int}[kind],
                       metavar={bool: "on|off", float: "X", int: None}[kind], help=f"{text} (default: {defaults})")
    t.add_argument("--batch-size", type=int, help=f"minibatch rows (default {d.batch_size})")
    t.add_argument("--steps", type=int, help=f"training steps (default {d.steps:,})")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help=f"(default {d.optimizer}: the notebook's plain SGD)")
    t.add_argument("--lr", type=float, help=f"initial learning rate (default {d.lr})")
    t.add_argument("--lr-decay-step", type=int, help="step from which lr is multiplied by the decay factor "
                   "(default half the steps)")
    t.add_argument("--lr-decay-factor", type=float, help=f"(default {d.lr_decay_factor})")
    t.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay (default 0.01)")
    t.add_argument("--seed", type=int, help=f"init and minibatch seed (default {d.seed})")
    t.add_argument("--split-seed", type=int, help=f"train/val/test shuffle seed (default {d.split_seed})")
    t.add_argument("--grad", choices=GRADS, help="hand-written backward or jax.grad (default manual)")
    t.add_argument("--eval-every", type=int, metavar="K", help="val loss every K steps (default: at the end only)")
    t.add_argument("--chunk", type=int, help=f"steps per lax.scan call (default {d.chunk:,})")
    t.add_argument("--diagnose-every", type=int, metavar="K", help="record activation, gradient and update "
                   "statistics every K steps, on device (diagnostics.npz and .png; default: never)")
    t.add_argument("--verify-every", type=int, metavar="K", help="check the hand-written gradients against "
                   "jax.grad every K steps, on device; stop at the first failing row (default: never)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<timestamp>)")
    t.add_argument("--stop-at", type=int, metavar="K", help="stop after K steps with a checkpoint (resume later)")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR to its configured steps")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar on a terminal (the progress lines still print)")
    g = t.add_argument_group("parallel (data-parallel over a 1-D device mesh; see the README)")
    g.add_argument("--devices", type=_positive_int, default=1, metavar="N",
                   help="devices of each process to split every batch across (default 1)")
    from .distributed import one_core_models

    g.add_argument("--cores", type=_positive_int, metavar="N",
                   help=f"CPU cores XLA may use; N at or above the usable cores changes nothing (default: one "
                        f"for {', '.join(one_core_models())}, whose small kernels run faster pinned to one, "
                        "on one CPU device of one process; every core otherwise)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="jax.distributed coordinator (process 0's address)")
    g.add_argument("--num-processes", type=int, metavar="P", help="processes in the cluster")
    g.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0..P-1")
    g.add_argument("--bind", metavar="HOST:PORT", help="process 0: the address its coordinator listens on "
                   "(default: the --coordinator address only, not every interface)")
    g.add_argument("--timeout", type=_positive_int, default=120, metavar="S",
                   help="seconds to wait for every process to join (default 120)")


def _init_distributed(args) -> None:
    cluster = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in cluster):
        if any(v is None for v in cluster):
            raise ConfigError("--coordinator, --num-processes and --process-id go together")
        from .distributed import initialize

        initialize(*cluster, bind=args.bind, timeout=args.timeout)


def _use_cores(args) -> None:
    """Pin the process to ``--cores`` cores, or to the model's default (:func:`bpjax.distributed.default_cores`:
    ``Model.cpu_cores`` on one CPU device of one process), before JAX starts."""
    from .config import Config
    from .distributed import default_cores, use_cores

    n = args.cores
    if n is None:
        model = args.model
        if args.resume is not None:
            from pathlib import Path

            from .rundir import read_json

            try:
                model = read_json(Path(args.resume) / "config.json")["config"]["model"]
            except (BpjaxError, KeyError, TypeError):
                model = None  # resuming reports what is wrong with the run directory
        cluster = any(v is not None for v in (args.coordinator, args.num_processes, args.process_id))
        n = default_cores(model or Config().model, devices=args.devices, cluster=cluster)
    if n is not None:
        use_cores(n)


def cmd_train(args) -> int:
    from .config import Config
    from .train import fit

    _use_cores(args)
    _init_distributed(args)
    given = {k: getattr(args, k) for k in train_flags() if getattr(args, k) is not None}
    if args.resume is not None:
        extra = [f"--{k.replace('_', '-')}" for k in given] + (["--out"] if args.out else []) + \
                (["--stop-at"] if args.stop_at is not None else [])
        if extra:
            raise ConfigError(f"--resume continues a run with its own configuration; drop {', '.join(extra)}")
        run = fit(resume=args.resume, data=args.data, devices=args.devices,
                  progress_bar=False if args.no_progress else None)
    else:
        if args.out is not None:
            check_output_dir(args.out)
        run = fit(Config(**given), data=args.data, out=args.out, stop_at=args.stop_at,
                  devices=args.devices, progress_bar=False if args.no_progress else None)
    sig = run.metrics.get("signal")
    return 128 + int(getattr(signal, sig)) if sig else 0  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP


def cmd_sample(args) -> int:
    from .rundir import load_run

    run = load_run(args.run)
    for name in run.iter_sample(n=args.n, seed=args.seed, max_len=args.max_len):  # printed as drawn
        print(name)
    return 0


def cmd_diagnose(args) -> int:
    from pathlib import Path

    from . import diagnostics as D
    from .rundir import read_json

    run = Path(args.run)
    if not run.is_dir():
        raise ConfigError(f"run directory {args.run!r} does not exist")
    a = D.load(run)
    print(D.summary(a, args.step))
    out = Path(args.out) if args.out else run / D.FIGURE
    cfg = read_json(run / "config.json").get("config") if (run / "config.json").is_file() else None
    cfg = cfg if isinstance(cfg, dict) else {}  # only for the title
    title = f"{cfg.get('model', '?')}, {cfg.get('grad', 'manual')} gradients, seed {cfg.get('seed', '?')} ({run.name})"
    if not D.save_figure(a, out, args.step, title=title):
        raise ConfigError("drawing the figures needs matplotlib: pip install 'bpjax[plot]'")
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import models

    p = _Parser(prog="bpjax", description="Manual backpropagation, done right, in JAX.")
    sub = p.add_subparsers(dest="cmd", metavar="{check,train,sample,diagnose,bench,sweep}", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="compare every hand-written gradient with jax.grad")
    c.add_argument("--data", help="names file (default: data/names.txt, $BPJAX_DATA, or the cache)")
    c.add_argument("--model", choices=models.names(), default="mlp", help="which model (default mlp)")
    c.add_argument("--float64", action="store_true", help="run the check in float64")
    c.add_argument("--batch-size", type=int, default=32, help="rows in the batch (default 32)")
    c.add_argument("--seed", type=_seed, default=0, help="init and batch seed (default 0)")
    c.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    c.set_defaults(func=cmd_check)

    t = sub.add_parser("train", help="train a model (default the notebook's MLP) with hand-written "
                       "(or autodiff) gradients")
    add_train_args(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample names from a trained run")
    s.add_argument("--run", required=True, metavar="DIR", help="a run directory written by bpjax train")
    s.add_argument("-n", type=_positive_int, default=20, help="how many names (default 20)")
    s.add_argument("--seed", type=_seed, default=0, help="sampling seed (default 0)")
    s.add_argument("--max-len", type=_positive_int, default=50,
                   help="cap on a name's length (default 50; a sequence model writes at most its T characters)")
    s.set_defaults(func=cmd_sample)

    d = sub.add_parser("diagnose", help="print and draw a run's training diagnostics (--diagnose-every, "
                       "--verify-every)")
    d.add_argument("--run", required=True, metavar="DIR", help="a run directory with diagnostics.npz")
    d.add_argument("--step", type=int, metavar="S", help="the histograms of the last record at or before step S "
                   "(default: the last record)")
    d.add_argument("--out", metavar="FILE", help="where the figure goes (default DIR/diagnostics.png)")
    d.set_defaults(func=cmd_diagnose)

    from .bench import add_bench_args, cmd_bench
    b = sub.add_parser("bench", help="measure training speed side by side (JSON + markdown)")
    add_bench_args(b)
    b.set_defaults(func=cmd_bench)

    from .sweep import add_sweep_args, cmd_sweep
    w = sub.add_parser("sweep", help="train many seeds / learning rates at once under vmap")
    add_sweep_args(w)
    w.set_defaults(func=cmd_sweep)

    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "bench" or (args.cmd == "sweep" and args.devices is None):
        from .distributed import use_every_core

        use_every_core()  # one CPU device per core, before JAX starts: the vmapped models are sharded
    import warnings

    warnings.formatwarning = lambda message, *a, **k: f"bpjax {args.cmd}: warning: {message}\n"  # one line
    for stream in (sys.stdout, sys.stderr):  # a name in any script, even on an ASCII-only terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    stdout = sys.stdout
    if args.cmd in ("train", "sweep", "bench"):  # `bpjax train | head`: the work goes on, unprinted
        sys.stdout = _PipeSafe(stdout)
    try:
        return _run(args)
    finally:
        sys.stdout = stdout


def _run(args) -> int:
    try:
        return args.func(args)
    except BpjaxError as e:
        print(f"bpjax {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bpjax sample | head`: the reader has what it wanted (before OSError: a subclass)
        _silence_stdout()
        return 0
    except OSError as e:  # a path that cannot be written or read: a directory, no permission, a full disk
        where = f" {e.filename!r}" if e.filename else ""
        print(f"bpjax {args.cmd}: error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bpjax {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"bpjax {args.cmd}: error: out of memory; use smaller sizes (--batch-size, the model's sizes, "
              "--seeds, -n)", file=sys.stderr)
        return 2
    except Exception as e:  # XLA's allocation failure arrives as its runtime error
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        print(f"bpjax {args.cmd}: error: the device ran out of memory ({str(e).splitlines()[0][:160]}); "
              "use smaller sizes (--batch-size, the model's sizes, --seeds)", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point the stdout file descriptor at /dev/null, so that later writes and the flush at exit
    neither fail nor print Python's "Exception ignored ... BrokenPipeError"."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())


class _PipeSafe:
    """stdout for long work: when the reader of a pipe goes away, output is dropped from then on
    and the work continues (training, its checkpoint and metrics are what matter)."""

    def __init__(self, stream):
        self._stream, self._gone = stream, False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone = True
                _silence_stdout()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone = True
                _silence_stdout()

    def __getattr__(self, name):  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


if __name__ == "__main__":
    sys.exit(main())
