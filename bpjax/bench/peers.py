"""The bench's peers, timed in the same run when they can be: the PyTorch baselines of
``experiments/torch_baselines.py`` and makemore.py (through ``experiments/makemore_peer.py``), in a
source checkout where torch is importable; otherwise a note of why their rows are missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parent.parent.parent / "experiments"
TORCH_BASELINES = EXPERIMENTS / "torch_baselines.py"
MAKEMORE_PEER = EXPERIMENTS / "makemore_peer.py"
NANOGPT_PEER = EXPERIMENTS / "nanogpt_peer.py"


def experiment(path: Path, name: str, rows: str):
    """``(module, note)``: an ``experiments/`` file of a source checkout, imported, when torch is
    importable; else ``None`` and why ``rows`` were not measured."""
    if not path.is_file():
        return None, (
            f"{rows} are timed by experiments/{path.name} of a source checkout "
            f"(pip install -e . from the repository): they were not measured"
        )
    try:
        import torch  # noqa: F401
    except ImportError:
        return None, f"torch is not importable here: {rows} were not measured (pip install torch)"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def torch_baselines(path: Path | None = None):
    """``(module, note)``: ``experiments/torch_baselines.py`` of a source checkout when torch is
    importable, else ``None`` and why the PyTorch rows are not measured."""
    return experiment(path or TORCH_BASELINES, "bpjax_torch_baselines", "the PyTorch rows")


def makemore_peer(makemore: str | None, path: Path | None = None):
    """``(module, note)``: ``experiments/makemore_peer.py`` (the glue that times makemore.py) when
    ``--makemore PATH`` names a file, torch is importable and this is a source checkout; else
    ``None`` and why the makemore rows are not measured."""
    if makemore is None:
        return None, "makemore.py not timed: pass --makemore PATH/TO/makemore.py (needs torch) for its rows"
    if not Path(makemore).is_file():
        raise ConfigError(f"--makemore {makemore!r} is not a file: give the path to makemore.py")
    return experiment(path or MAKEMORE_PEER, "bpjax_makemore_peer", "makemore.py's rows")


def nanogpt_peer(nanogpt: str | None, path: Path | None = None):
    """``(module, note)``: ``experiments/nanogpt_peer.py`` (which runs nanoGPT's ``train.py``) when
    ``--nanogpt PATH`` names a checkout, torch is importable and this is a source checkout; else
    ``None`` and why nanoGPT's row is not measured."""
    if nanogpt is None:
        return None, "nanoGPT not timed: pass --nanogpt PATH/TO/nanoGPT (needs torch) for its row"
    if not (Path(nanogpt) / "train.py").is_file():
        raise ConfigError(f"--nanogpt {nanogpt!r} is not a nanoGPT checkout (no train.py in it)")
    return experiment(path or NANOGPT_PEER, "bpjax_nanogpt_peer", "nanoGPT's row")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
