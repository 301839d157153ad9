"""Files that are never half-written: everything goes to a temp file, then ``os.replace``."""

from __future__ import annotations

import io
import json
import os
import secrets

import numpy as np


def _create_temp(d: str, name: str) -> tuple[int, str]:
    """A new file beside ``name`` in ``d``, created with mode 0o666 so that the umask in force
    *now* applies, as it does for ``open(path, "w")`` (``mkstemp`` would make it 0o600). Its name
    keeps at most 40 characters of ``name``: a file name at the system's limit still gets one."""
    while True:
        tmp = os.path.join(d, f".{name[:40]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def host_memory_available() -> int | None:
    """The host's ``MemAvailable`` in bytes (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_output_dir(path, flag: str = "--out") -> None:
    """Refuse, before any work, an output directory that cannot be one: an empty path, an existing
    file, or a path under a file or an unwritable directory. Raises :class:`bpjax.errors.ConfigError`."""
    from .errors import ConfigError

    if not os.fspath(path).strip():
        raise ConfigError(f"{flag} is empty: give a directory")
    p = os.path.abspath(os.fspath(path))
    if os.path.exists(p) and not os.path.isdir(p):
        raise ConfigError(f"{flag} {os.fspath(path)!r} is a file, not a directory")
    up = p
    while not os.path.exists(up):
        up = os.path.dirname(up)
    if not os.path.isdir(up):
        raise ConfigError(f"{flag} {os.fspath(path)!r} is under the file {up!r}")
    if not os.access(up, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {os.fspath(path)!r}: cannot write in {up!r} (permission denied)")


def atomic_write_bytes(path, payload: bytes) -> None:
    """Write to a temp file beside ``path``, fsync, rename: readers see the old file or the new one."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = _create_temp(d, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):  # a full disk: name the file meant
            raise OSError(e.errno, e.strerror or str(e), path) from None
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_savez(path, **arrays) -> None:
    """``np.savez`` into memory, then an atomic write."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(fig, path, **kwargs) -> None:
    """A matplotlib figure saved as PNG into memory, then written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())
