"""The command line: ``bpjax check | train | sample | diagnose | bench | sweep | runs``, one module each.

``check`` compares every hand-written gradient of a model with ``jax.grad``; ``train`` trains any
registered model (``--model``, default the notebook's MLP) with hand-written or autodiff
gradients; ``sample`` prints names from a run; ``diagnose`` prints and draws a run's training
diagnostics; ``bench`` measures training speed; ``sweep`` trains many seeds and learning rates at
once; ``runs`` compares runs in a table and a plot. Each command's module holds its ``HELP``,
``add_args(parser)`` and ``run(args)``; the flags of training settings and model sizes come from
their one declaration (:mod:`bpjax.cli.args`).

Every error the user can fix prints one line, ``bpjax <cmd>: error: ...``, and exits 2. Nothing in
bpjax imports this package: it is the outermost layer.
"""

from __future__ import annotations

import os
import sys

from ..errors import BpjaxError
from . import bench, check, diagnose, runs, sample, sweep, train
from .args import Parser

COMMANDS = {
    "check": check,
    "train": train,
    "sample": sample,
    "diagnose": diagnose,
    "bench": bench,
    "sweep": sweep,
    "runs": runs,
}
"""name -> its module: a new command is one module plus one line here."""


def build_parser() -> Parser:
    p = Parser(prog="bpjax", description="Manual backpropagation, done right, in JAX.")
    sub = p.add_subparsers(dest="cmd", metavar="{" + ",".join(COMMANDS) + "}", parser_class=Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        c = sub.add_parser(name, help=module.HELP)
        module.add_args(c)
        c.set_defaults(func=module.run)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "bench" or (args.cmd == "sweep" and args.devices is None):
        from ..training.distributed import use_every_core

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
        print(
            f"bpjax {args.cmd}: error: out of memory; use smaller sizes (--batch-size, the model's sizes, --seeds, -n)",
            file=sys.stderr,
        )
        return 2
    except Exception as e:  # XLA's allocation failure arrives as its runtime error
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        print(
            f"bpjax {args.cmd}: error: the device ran out of memory ({str(e).splitlines()[0][:160]}); "
            "use smaller sizes (--batch-size, the model's sizes, --seeds)",
            file=sys.stderr,
        )
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
