"""Run makemore.py as its own command line, with a stand-in for tensorboard when it is missing.

    python experiments/run_makemore.py PATH/TO/makemore.py --type gru --max-steps 300 --num-workers 0 ...

makemore.py imports ``torch.utils.tensorboard.SummaryWriter`` at the top and writes its losses
through it; where tensorboard is not installed a writer that discards them stands in. Everything
else is makemore.py's own code, run as ``__main__``: its data loader, model, AdamW and the step
time it prints every 10 steps (``step N | loss L | step time T ms``), which
:func:`makemore_peer.makemore_loop_rates` reads.
"""

from __future__ import annotations

import runpy
import sys
import types


class _DiscardingWriter:
    def __init__(self, *args, **kwargs):
        pass

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass


def stub_tensorboard() -> None:
    """Install the discarding ``SummaryWriter`` as ``torch.utils.tensorboard`` if that is not importable."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torch.utils.tensorboard")
        stub.SummaryWriter = _DiscardingWriter
        sys.modules["torch.utils.tensorboard"] = stub


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: run_makemore.py PATH/TO/makemore.py [makemore.py's arguments]")
    stub_tensorboard()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
