import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# JAX's persistent compilation cache, shared by the xdist workers and the command-line runs the
# tests start (they inherit the environment): many tests compile the same programs (the default
# MLP's chunk, the notebooks' steps), and a hit loads the executable instead of compiling it again.
# Keyed by the program, the compile options and the jax/jaxlib versions; set before JAX is imported.
# Measured on the 2-core VM, a clean clone: 693 s -> 565 s for the suite. A user's own setting wins.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


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


# --- shared helpers -------------------------------------------------------------------------
def batch(key, n, block=3, vocab=27):
    """A random batch: ``X`` [n, block] and ``Y`` [n] token ids below ``vocab``."""
    import jax

    kx, ky = jax.random.split(key)
    return jax.random.randint(kx, (n, block), 0, vocab), jax.random.randint(ky, (n,), 0, vocab)


def run_cli(*args, env=None, timeout=600, **kw):
    """``python -m bpjax ARGS`` in a subprocess on the CPU; the CompletedProcess (text)."""
    import subprocess
    import sys

    e = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bpjax", *args], capture_output=True, text=True, env=e,
                          timeout=timeout, **kw)


def assert_one_line_error(res, needle, code=2):
    """A user error: exit ``code``, one line on stderr containing ``needle``, no traceback."""
    assert res.returncode == code, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert needle in lines[0], lines[0]


def check_grads_on_floats(f, args):
    """``jax.test_util.check_grads`` (reverse mode, first order) over the floating-point ``args`` of
    ``f``; integer arguments (token ids, labels) stay fixed."""
    import jax.numpy as jnp
    from jax.test_util import check_grads

    floats = [i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating)]

    def on_floats(*xs):
        full = list(args)
        for i, x in zip(floats, xs, strict=True):
            full[i] = x
        return f(*full)

    check_grads(on_floats, [args[i] for i in floats], order=1, modes=["rev"])
