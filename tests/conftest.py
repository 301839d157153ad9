import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def names_path() -> Path:
    """names.txt via $BPJAX_DATA or data/names.txt. In CI (CI=true) a missing file fails."""
    p = Path(os.environ.get("BPJAX_DATA") or ROOT / "data" / "names.txt")
    if not p.is_file():
        msg = f"names.txt not found at {p}; copy it to data/names.txt or set BPJAX_DATA"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session")
def names_splits(names_path):
    from bpjax.data import Vocab, load_words, make_splits

    words = load_words(names_path)
    vocab = Vocab.from_words(words)
    return words, vocab, make_splits(words, vocab, block_size=3)
