"""Data parallelism with JAX's own machinery: a 1-D mesh, ``NamedSharding``, ``jax.distributed``.

The training step is the same jitted program with shardings: parameters and optimizer state
replicated, every minibatch sharded along the mesh's ``"data"`` axis. Batch norm's statistics and
the gradient sums stay global: XLA's SPMD partitioner inserts the all-reduces, so the result is the
single-device one up to the order of float additions.

    mesh = make_mesh(4)                     # 4 devices of this process (all processes' in a cluster)
    run = fit(cfg, devices=4)               # or: bpjax train --devices 4

Across hosts, every process calls :func:`initialize` first (``bpjax train --coordinator
HOST:PORT --num-processes P --process-id I``); the mesh then spans every process's devices.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..errors import ConfigError

AXIS = "data"


HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def usable_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``: a ``taskset`` or a container's
    CPU set counts), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):  # another jax: assume the worst
        return True


def use_every_core(environ=os.environ) -> int | None:
    """Expose one CPU device per usable core, so that a sweep's models can be sharded across them.

    XLA's CPU client runs one program's kernels one after another; a vmapped sweep fills one core.
    With ``N`` host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) each device runs
    its share of the models at the same time. XLA reads the flag when JAX starts its backends, so
    this must run before JAX's first computation (``bpjax sweep`` and ``bpjax bench`` call it
    first thing); in Python, call it right after ``import bpjax`` or set ``XLA_FLAGS`` yourself.

    Returns the device count it set, or None where it changed nothing: the user already chose a
    count, JAX has started, or there is one core.
    """
    flags = environ.get("XLA_FLAGS", "")
    if HOST_DEVICES_FLAG.lstrip("-") in flags or _backends_started():
        return None
    n = usable_cores()
    if n <= 1:
        return None
    environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={n}".strip()
    return n


def _current_cpu() -> int | None:
    """The CPU this process last ran on (``/proc/self/stat``'s field 39), None where unknown."""
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def use_cores(n: int) -> int | None:
    """Keep this process (and so XLA's CPU thread pool, sized from it) on ``n`` of its usable cores.

    XLA's CPU client sizes its intra-op thread pool from the process's CPU affinity. A step of many
    small kernels (the makemore models at batch 32) runs them one after another; on one pinned core
    it is faster than spread over two (no hand-offs, warm caches): measured on a 2-core VM, 6-24%
    for bigram, bengio, rnn, gru and bow, nothing for the others (``Model.cpu_cores``). The cores
    are the one the scheduler has put this process on and the next usable ones (the first usable
    core where ``/proc`` does not say), so two runs started side by side usually land on different
    cores; once pinned they stay. It applies to the calling thread and the threads it starts later
    (XLA's pool among them), as ``sched_setaffinity`` does. Like ``taskset -c``, this must run
    before JAX starts its backends (``bpjax train`` calls it first thing, ``--cores N``).

    Returns the core count set, or None where it changed nothing: JAX has started, ``n`` is not
    fewer than the usable cores, or the platform has no CPU affinity or refuses it.
    """
    if n < 1:
        raise ConfigError(f"cores must be a positive integer, got {n}")
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if n >= len(cores) or _backends_started():
        return None
    here = _current_cpu()
    start = cores.index(here) if here in cores else 0
    try:
        os.sched_setaffinity(0, [cores[(start + i) % len(cores)] for i in range(n)])
    except OSError:  # a sandbox that forbids it, a CPU set that just changed: only speed is lost
        return None
    return n


def cpu_only(environ=os.environ) -> bool:
    """Whether JAX will run on the CPU: ``JAX_PLATFORMS`` says so, or, unset, no accelerator plugin
    (CUDA/ROCm ``jax_plugins``, ``libtpu``) is installed."""
    import importlib.util

    platforms = environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return {p.strip() for p in platforms.split(",")} == {"cpu"}
    return all(importlib.util.find_spec(m) is None for m in ("jax_plugins", "libtpu"))


def one_core_models() -> list[str]:
    """The registered models whose default is one CPU core (``Model.cpu_cores == 1``)."""
    from .. import models

    return [n for n in models.names() if models.get(n).cpu_cores == 1]


def default_cores(model: str, *, devices: int = 1, cluster: bool = False, environ=os.environ) -> int | None:
    """The cores ``bpjax train`` gives ``model`` when ``--cores`` is not given: ``Model.cpu_cores``
    for one device of one process on a CPU, else None (every core). An unknown model: None."""
    from .. import models

    if devices != 1 or cluster or not cpu_only(environ):
        return None
    try:
        return models.get(model).cpu_cores
    except ConfigError:
        return None


def default_sweep_devices() -> int:
    """How many devices a sweep shards its models across by default: every local CPU device (one
    per core after :func:`use_every_core`), or one accelerator."""
    local = jax.local_devices()
    return len(local) if local[0].platform == "cpu" else 1


def initialize(
    coordinator: str, num_processes: int, process_id: int, *, bind: str | None = None, timeout: int = 120
) -> None:
    """``jax.distributed.initialize`` (on CPU with the gloo collectives). Call before any JAX work.

    Process 0's coordinator listens on ``bind`` (default: the ``coordinator`` address itself, not
    JAX's default of every interface). A process that cannot reach the others within ``timeout``
    seconds fails with one :class:`ConfigError` line."""
    if num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    if bind is not None and (not bind.rpartition(":")[0] or not bind.rpartition(":")[2].isdigit()):
        raise ConfigError(f"--bind must be HOST:PORT, got {bind!r}")
    rendezvous(host, int(port), num_processes, process_id, timeout, bind)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator,
            num_processes=num_processes,
            process_id=process_id,
            coordinator_bind_address=bind or coordinator,
            initialization_timeout=timeout,
        )
    except Exception as e:  # the coordination service's DEADLINE_EXCEEDED, UNAVAILABLE, ...
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else e.__class__.__name__
        raise ConfigError(
            f"could not join the {num_processes} processes through {coordinator} within "
            f"{timeout} s ({first}); start every process, or raise --timeout"
        ) from None


def rendezvous(
    host: str, port: int, num_processes: int, process_id: int, timeout: float, bind: str | None = None
) -> None:
    """Meet every process on the coordinator's port before ``jax.distributed.initialize``, which
    on a missing peer aborts the whole process from C++ (a stack trace, exit 134) once its timeout
    runs out. Process 0 listens (on ``bind`` or the coordinator's address) until the other
    ``num_processes - 1`` have connected and said who they are, then tells each to go and closes
    the port for JAX's coordinator; the others connect, retrying, until told. Whoever waits past
    ``timeout`` seconds raises one :class:`ConfigError` naming what is missing."""
    import socket
    import time

    if num_processes == 1:
        return
    deadline = time.monotonic() + timeout
    if process_id == 0:
        bhost, _, bport = (bind or f"{host}:{port}").rpartition(":")
        with socket.create_server((bhost.strip("[]"), int(bport)), reuse_port=False) as server:
            peers = {}
            try:
                while len(peers) < num_processes - 1:
                    server.settimeout(max(deadline - time.monotonic(), 0.001))
                    try:
                        conn, _ = server.accept()
                    except TimeoutError:
                        missing = sorted(set(range(1, num_processes)) - set(peers))
                        raise ConfigError(
                            f"process(es) {', '.join(map(str, missing))} of {num_processes} did not "
                            f"join {host}:{port} within {timeout:g} s; start them with "
                            "--process-id, or raise --timeout"
                        ) from None
                    conn.settimeout(5)
                    try:
                        peers[int(conn.recv(16).decode().strip())] = conn
                    except (OSError, ValueError):
                        conn.close()
                for conn in peers.values():
                    conn.sendall(b"go\n")
            finally:
                for conn in peers.values():
                    conn.close()
        return
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.001)) as c:
                c.sendall(f"{process_id}\n".encode())
                c.settimeout(max(deadline - time.monotonic(), 0.001))
                if c.recv(8).startswith(b"go"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ConfigError(
                f"could not meet process 0 at {host}:{port} within {timeout:g} s; start it "
                "(--process-id 0), or raise --timeout"
            )
        time.sleep(0.2)


def make_mesh(devices_per_process: int) -> Mesh:
    """A 1-D mesh over the first ``devices_per_process`` devices of every process."""
    if devices_per_process < 1:
        raise ConfigError(f"--devices must be >= 1, got {devices_per_process}")
    local = jax.local_devices()
    if devices_per_process > len(local):
        raise ConfigError(
            f"--devices {devices_per_process} but this process sees {len(local)} device(s) "
            f"({local[0].platform}); on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
            "makes N"
        )
    by_process = {}
    for d in jax.devices():
        by_process.setdefault(d.process_index, []).append(d)
    devs = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:devices_per_process]]
    return Mesh(np.array(devs), (AXIS,))


def check_batch(mesh: Mesh, batch_size: int) -> None:
    if batch_size % mesh.size:
        raise ConfigError(
            f"the batch size {batch_size} must divide by the {mesh.size} devices of the mesh "
            f"(each takes batch/{mesh.size} rows); try --batch-size "
            f"{max(mesh.size, batch_size // mesh.size * mesh.size)}"
        )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
    """Put a pytree of host or single-device arrays on every device of the mesh (every process
    passes the same values), as global ``jax.Array``s."""
    sharding = replicated(mesh)

    def put(x):
        x = np.asarray(local_value(x))
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(put, tree)


def local_value(x):
    """A replicated (or single-device) array's value on this host, as numpy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def to_local(tree):
    """Every leaf's value as a numpy array on this host (for eval, checkpoints, metrics)."""
    return jax.tree_util.tree_map(local_value, tree)
