import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def missing(msg: str):
    """Something a test needs is absent: a failure in CI (CI=true), a skip on a developer's machine."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def require():
    """``require("nbclient")`` imports a module of an optional extra, or reports it :func:`missing`."""
    def _require(module: str):
        try:
            return __import__(module)
        except ImportError:
            missing(f"{module} is not installed: pip install -e '.[notebook]'")
    return _require


@pytest.fixture(scope="session")
def names_path() -> Path:
    """names.txt via $BPJAX_DATA or data/names.txt; missing is a failure in CI."""
    p = Path(os.environ.get("BPJAX_DATA") or ROOT / "data" / "names.txt")
    if not p.is_file():
        missing(f"names.txt not found at {p}; copy it to data/names.txt or set BPJAX_DATA")
    return p


@pytest.fixture(scope="session")
def names_splits(names_path):
    from bpjax.data import Vocab, load_words, make_splits

    words = load_words(names_path)
    vocab = Vocab.from_words(words)
    return words, vocab, make_splits(words, vocab, block_size=3)
