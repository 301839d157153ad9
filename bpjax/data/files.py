"""Data files: where each one is found (a path, ``$BPJAX_DATA``, ``data/``, the cache, a download
checked against its SHA-256), and reading one exactly once, hashed as read."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write_bytes

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

DATASETS = {
    "names": ("names.txt", NAMES_URL, NAMES_SHA256),
    "shakespeare": ("tinyshakespeare.txt", SHAKESPEARE_URL, SHAKESPEARE_SHA256),
}
"""The data sets ``--data NAME`` names: name -> (file name, address, SHA-256). names.txt is makemore's
32,033 names (the notebook's); tinyshakespeare.txt is char-rnn's 1,115,394 characters (nanoGPT's
``shakespeare_char``)."""

_REPO_ROOT = Path(__file__).resolve().parent.parent.parent

MAX_DATA_BYTES = 256 * 2**20
"""The largest data file read (256 MiB; names.txt is 228 kB, tiny Shakespeare 1.1 MB): a device such
as /dev/zero, or a wrong path to a huge file, is refused rather than read without end."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bpjax`` or ``~/.cache/bpjax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpjax"


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _given_path(given, source: str) -> Path:
    p = Path(given).expanduser()
    if p.is_symlink() and not p.exists():
        try:
            p.resolve(strict=True)
        except RuntimeError:  # Python < 3.13
            raise DataError(f"data file {str(p)!r} (from {source}) is a symlink loop") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise DataError(f"data file {str(p)!r} (from {source}) is a symlink loop") from None
            raise DataError(
                f"data file {str(p)!r} (from {source}) is a broken symlink (to {os.readlink(p)!r})"
            ) from None
    if not p.exists():
        raise DataError(
            f"data file {str(p)!r} (from {source}) does not exist; pass the path of a data file (names: one word "
            f"per line; a text), or one of {', '.join(DATASETS)}"
        )
    return p


def resolve_data_path(path: str | os.PathLike | None = None, *, download: bool = True, source: str = "--data",
                      dataset: str = "names") -> Path:
    """Find the data file.

    Order: ``path`` (the CLI's ``--data``), else ``$BPJAX_DATA``; a path given either way must
    exist, unless it names a data set of :data:`DATASETS` (``shakespeare``). With neither: the
    ``dataset`` (default names.txt): ``data/<file>`` in the working directory, then in the repository
    root of an editable install, then ``~/.cache/bpjax/<file>``, else download it into the cache
    (checking its SHA-256).
    """
    given, source = (path, source) if path is not None else (os.environ.get("BPJAX_DATA"), "BPJAX_DATA")
    if given and not (str(given) in DATASETS and not Path(given).exists()):
        return _given_path(given, source)
    name = str(given) if given else dataset
    file, url, sha = DATASETS[name]
    for p in (Path.cwd() / "data" / file, _REPO_ROOT / "data" / file, cache_dir() / file):
        if p.is_file():
            return p
    if download:
        return download_file(cache_dir() / file, url, sha)
    raise DataError(f"{file} not found; put it in data/{file}, or pass --data PATH, or set BPJAX_DATA")


def download_file(dest: Path, url: str = NAMES_URL, sha256: str = NAMES_SHA256) -> Path:
    """Download a data set to ``dest`` atomically, checking its SHA-256."""
    how = f"download {url} yourself and save it as data/{dest.name}, or pass --data PATH"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            payload = r.read()
    except Exception as e:  # no network, DNS, HTTP error: all say the same thing to the user
        raise DataError(
            f"{dest.name} not found locally and the download failed ({e.__class__.__name__}: {e}); {how}"
        ) from None
    got = hashlib.sha256(payload).hexdigest()
    if got != sha256:
        raise DataError(f"downloaded {dest.name} has SHA-256 {got}, expected {sha256}; {how}")
    atomic_write_bytes(dest, payload)
    return dest


def read_data(path: str | os.PathLike | None = None, dataset: str = "names", source: str = "--data") \
        -> tuple[Path, bytes, str]:
    """``(path, bytes, sha256)``: the data file read once, hashed as read. Pipes, FIFOs and
    /dev/stdin work (their bytes are what is hashed and parsed); a directory, an unreadable file or
    one over :data:`MAX_DATA_BYTES` is a :class:`DataError`."""
    p = resolve_data_path(path, dataset=dataset, source=source)
    if p.is_dir():
        raise DataError(f"data path {str(p)!r} is a directory; pass the data file inside it")
    try:
        if stat.S_ISFIFO(os.stat(p).st_mode):  # a FIFO or a pipe (/dev/stdin): no writer is EOF, not a hang
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb")
        else:
            f = open(p, "rb")
        with f:
            raw = f.read(MAX_DATA_BYTES + 1)
    except OSError as e:
        raise DataError(f"cannot read data file {str(p)!r}: {e.strerror}") from None
    if len(raw) > MAX_DATA_BYTES:
        raise DataError(
            f"data file {str(p)!r} is larger than {MAX_DATA_BYTES // 2**20} MiB; "
            "a names file is one short word per line, a text a few MB"
        )
    return p, raw, hashlib.sha256(raw).hexdigest()
