"""The training chunk: many steps inside one ``lax.scan``, one host round trip each. Written once:
``fit`` runs it, ``bench`` times it, ``sweep`` runs it under ``vmap``, and ``--diagnose-every`` /
``--verify-every`` plug their recorded step and check into it (:class:`Hooks`).

    chunk = chunk_fn(grad_fn, tx, batch_size, hooks=None)
    params, opt_state, state, losses, finite, extras = chunk(params, opt_state, state, key_data, step0,
                                                             Xtr, Ytr, length, head, verify)

``length``, ``head`` and ``verify`` are static (:func:`plan` gives them for every chunk of a run):
``length`` steps from ``step0``; with hooks, ``head`` plain steps before the first recorded one, and
``verify`` 0 (no check), -1 (one check at the first step) or V (a check every V steps). ``losses``
[length] are the minibatch losses before each update (the notebook's ``loss.item()``), ``finite``
whether every parameter is still finite, ``extras`` the hooks' ``records`` and ``verify`` outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .step import all_finite, sample_batches, train_step_fn

MAX_CHUNK_ROWS = 1 << 22
"""A chunk's minibatches are drawn before its scan: cap them at ~4M rows (16 MiB of int32 ids per
context position) whatever ``--chunk`` says."""


class Hooks(NamedTuple):
    """What a chunk does besides training (:mod:`bpjax.training.diagnostics.hooks` makes them).

    * ``every``: a recorded step every ``every`` steps (0: none);
    * ``record(carry, batch, step) -> (carry, loss, (step, packed))``: the recorded step, used in
      place of the plain one (the same update, plus a packed vector of statistics);
    * ``unpack(steps, packed) -> dict``: the records, unpacked after the scan;
    * ``verify(carry, batch) -> dict``: a check on the parameters and minibatch of the step about
      to be taken.
    """

    every: int
    record: Callable | None
    unpack: Callable | None
    verify: Callable | None


def _at(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def _slice(tree, i, j):
    return jax.tree_util.tree_map(lambda a: a[i:j], tree)


def _recorded_run(hooks: Hooks, plain_scan: Callable, carry, batches, steps, head: int):
    """``head`` plain steps, a ``lax.scan`` over groups of one recorded step and ``every - 1`` plain
    ones, then a partial group: ``(carry, losses, packed records)``."""
    every, n = hooks.every, steps.shape[0]

    def group(carry, xs):  # one recorded step, then every - 1 plain ones
        b, s = xs
        carry, l0, rec = hooks.record(carry, _at(b, 0), s)
        if every == 1:
            return carry, (l0[None], rec)
        carry, ls = plain_scan(carry, _slice(b, 1, None))
        return carry, (jnp.concatenate([l0[None], ls]), rec)

    losses, records = [], []
    if head:
        carry, ls = plain_scan(carry, _slice(batches, 0, head))
        losses.append(ls)
    full, rem = divmod(n - head, every)
    if full:
        end = head + full * every
        grouped = jax.tree_util.tree_map(lambda a: a[head:end].reshape(full, every, *a.shape[1:]), batches)
        carry, (ls, rec) = jax.lax.scan(group, carry, (grouped, steps[head:end:every]))
        losses.append(ls.reshape(-1))
        records.append(rec)
    if rem:
        i = head + full * every
        carry, l0, rec = hooks.record(carry, _at(batches, i), steps[i])
        losses.append(l0[None])
        records.append(jax.tree_util.tree_map(lambda x: x[None], rec))
        if rem > 1:
            carry, ls = plain_scan(carry, _slice(batches, i + 1, n))
            losses.append(ls)
    if not records:  # no recorded step here: an empty stack of the same structure
        shape = jax.eval_shape(hooks.record, carry, _at(batches, 0), steps[0])[2]
        records = [jax.tree_util.tree_map(lambda x: jnp.zeros((0, *x.shape), x.dtype), shape)]
    return carry, jnp.concatenate(losses), jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *records)


def _checked_cycles(hooks: Hooks, run: Callable, carry, batches, steps, verify: int):
    """A ``lax.scan`` over cycles of ``verify`` steps, each checked at its first step:
    ``(carry, losses, packed records or None, checks)``."""
    cycles = steps.shape[0] // verify

    def split(a):
        return a.reshape(cycles, verify, *a.shape[1:])

    def cycle(carry, xs):
        b, s = xs
        check = hooks.verify(carry, b)
        carry, ls, rec = run(carry, b, s, 0)
        return carry, (ls, rec, {"step": s[0], **check})

    carry, (losses, rec, checks) = jax.lax.scan(cycle, carry, (jax.tree_util.tree_map(split, batches), split(steps)))
    rec = None if rec is None else jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), rec)
    return carry, losses.reshape(-1), rec, checks


def chunk_fn(
    grad_fn: Callable,
    tx: optax.GradientTransformation,
    batch_size: int,
    *,
    hooks: Hooks | None = None,
    unroll: int = 2,
    mesh=None,
    sampler: Callable | None = None,
) -> Callable:
    """The pure chunk (see the module docstring): ``grad_fn`` from
    :func:`~bpjax.training.step.gradient_fn`, ``tx`` the optimizer, ``mesh`` splits every step's rows
    across devices (data parallelism, :mod:`bpjax.training.distributed`), ``sampler(key, steps, Xtr,
    Ytr)`` draws the chunk's minibatches (default: ``batch_size`` rows a step,
    :func:`~bpjax.training.step.sample_batches`; a run's: :func:`~bpjax.training.step.batch_sampler`).

    Two steps per loop iteration (``unroll`` 2) let XLA schedule across a step boundary: measured
    +12% on the WaveNet, even on the MLP; 4 was slower. With hooks the chunk is ``head`` plain steps,
    a ``lax.scan`` over groups of one recorded step and ``every - 1`` plain ones, then a partial
    group; with checks, a scan over cycles of ``verify`` steps, each checked at its first. No
    ``lax.cond`` and no call of its own: on the CPU either costs more than the work; the plain
    steps are the very program of the plain chunk.
    """
    one_step = train_step_fn(grad_fn, tx, mesh)
    if sampler is None:

        def sampler(key, steps, Xtr, Ytr):
            return sample_batches(key, steps, Xtr, Ytr, batch_size)

    def plain_scan(carry, batches):
        return jax.lax.scan(one_step, carry, batches, unroll=unroll)

    def run(carry, batches, steps, head: int):
        """``(carry, losses, packed records (steps [R], [R, F]) or None)``."""
        if hooks is None or not hooks.every:
            carry, ls = plain_scan(carry, batches)
            return carry, ls, None
        return _recorded_run(hooks, plain_scan, carry, batches, steps, head)

    def chunk(params, opt_state, state, key_data, step0, Xtr, Ytr, length, head=0, verify=0):
        steps = step0 + jnp.arange(length, dtype=jnp.int32)
        batches = sampler(jax.random.wrap_key_data(key_data), steps, Xtr, Ytr)
        if mesh is not None:  # the rows split; a step's dropout key (batches[2]) is every device's
            batches = (*_split_rows(batches[:2], mesh), *batches[2:])
        carry, extras = (params, opt_state, state), {}
        if verify > 0:
            carry, losses, rec, extras["verify"] = _checked_cycles(hooks, run, carry, batches, steps, verify)
        else:
            if verify == -1:  # one check, at the first step
                check = {"step": steps[0], **hooks.verify(carry, batches)}
                extras["verify"] = jax.tree_util.tree_map(lambda a: a[None], check)
            carry, losses, rec = run(carry, batches, steps, head)
        if rec is not None:
            extras["records"] = hooks.unpack(*rec)
        params, opt_state, state = carry
        return params, opt_state, state, losses, all_finite(params), extras

    return chunk


def _split_rows(batches, mesh):
    """The chunk's minibatches [steps, B, ...] with each step's rows split across the mesh: each
    device draws its own rows."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from .distributed import AXIS

    return jax.lax.with_sharding_constraint(batches, NamedSharding(mesh, P(None, AXIS)))


STATIC = (7, 8, 9)
"""The chunk's static arguments: ``length``, ``head``, ``verify``."""


def jit_chunk(fn: Callable, mesh=None) -> Callable:
    """A chunk function jitted with its static arguments; with a ``mesh``, every input and output
    replicated (the same program, partitioned by XLA). No donation: the previous state stays valid,
    so a diverging chunk can be rolled back to it."""
    if mesh is None:
        return jax.jit(fn, static_argnums=STATIC)
    from .distributed import replicated

    return jax.jit(fn, static_argnums=STATIC, in_shardings=replicated(mesh), out_shardings=replicated(mesh))


def make_train_chunk(
    grad_fn: Callable,
    tx: optax.GradientTransformation,
    batch_size: int,
    mesh=None,
    hooks: Hooks | None = None,
    sampler: Callable | None = None,
) -> Callable:
    """:func:`chunk_fn`, jitted (:func:`jit_chunk`)."""
    return jit_chunk(chunk_fn(grad_fn, tx, batch_size, hooks=hooks, mesh=mesh, sampler=sampler), mesh)


def vmapped_chunk(fn: Callable, in_shardings=None, out_shardings=None) -> Callable:
    """A chunk function under ``vmap`` over stacked models (params, optimizer states, model states and
    keys; the data, the step and the static arguments shared), jitted. The rates live in the optimizer
    states, so one program serves models of different learning rates (``bpjax sweep``)."""
    vm = jax.vmap(fn, in_axes=(0, 0, 0, 0, None, None, None, None, None, None))
    if in_shardings is None:
        return jax.jit(vm, static_argnums=STATIC)
    return jax.jit(vm, static_argnums=STATIC, in_shardings=in_shardings, out_shardings=out_shardings)


class ChunkRunner:
    """A jitted chunk function compiled ahead of time, once per static arguments: the one compile
    cache of train, sweep and bench. ``runner.compile(static, *args)`` gives the compiled chunk (time
    its calls, not this); ``compile_seconds`` adds up the compiling. ``static`` is ``(length, head,
    verify)`` (:func:`plan`) or a length."""

    def __init__(self, jitted: Callable):
        self.jitted, self.compiled, self.compile_seconds = jitted, {}, 0.0

    def compile(self, static, *args):
        static = (static, 0, 0) if isinstance(static, int) else tuple(static)
        if static not in self.compiled:
            t = time.perf_counter()
            self.compiled[static] = self.jitted.lower(*args, *static).compile()
            self.compile_seconds += time.perf_counter() - t
        return self.compiled[static]

    def __call__(self, static, *args):
        return self.compile(static, *args)(*args)


# --------------------------------------------------------------------------------------------
# The plan: where a run's chunks begin and end, and each one's static arguments
# --------------------------------------------------------------------------------------------
def chunk_length(cfg, models: int = 1) -> int:
    """``cfg.chunk``, capped so that a chunk's pre-drawn minibatches stay under :data:`MAX_CHUNK_ROWS`."""
    return min(cfg.chunk, max(1, MAX_CHUNK_ROWS // (cfg.batch_size * models)))


def segments(start: int, end: int, cut_every: list[int]) -> list[tuple[int, int]]:
    """Split [start, end) at every multiple of each positive entry of ``cut_every``."""
    cuts = {start, end}
    for k in cut_every:
        if k > 0:
            cuts.update(range((start // k + 1) * k, end, k))
    pts = sorted(c for c in cuts if start <= c <= end)
    return list(zip(pts[:-1], pts[1:], strict=True))


def verified_segments(segs: list[tuple[int, int]], verify_every: int) -> list[tuple[int, int]]:
    """Chunks ``[a, b)`` split so that each holds its checks where the chunk can make them: up to
    the first multiple of ``verify_every`` (no check inside), then whole cycles of ``verify_every``
    steps (a check at each start), then the rest (a check at its start)."""
    if not verify_every:
        return list(segs)
    out = []
    for a, b in segs:
        first = min(-(-a // verify_every) * verify_every, b)
        last = max(b // verify_every * verify_every, first)
        out += [(x, y) for x, y in ((a, first), (first, last), (last, b)) if y > x]
    return out


def static_args(a: int, b: int, diagnose_every: int, verify_every: int) -> tuple[int, int, int]:
    """The chunk's static arguments for steps ``[a, b)``: ``(length, head, verify)``, ``head`` the
    plain steps before the first multiple of ``diagnose_every``, ``verify`` 0 (no check), -1 (one
    check, at step ``a``) or ``verify_every`` (a check every ``verify_every`` steps from ``a``)."""
    head = min((-a) % diagnose_every, b - a) if diagnose_every else 0
    verify = 0
    if verify_every and a % verify_every == 0:
        verify = verify_every if (b - a) % verify_every == 0 else -1
    return b - a, head, verify


def plan(cfg, start: int, end: int, models: int = 1) -> list[tuple[int, int, tuple[int, int, int]]]:
    """A run's chunks from ``start`` to ``end`` and their static arguments: ``[(a, b, (length, head,
    verify))]``. Cut every ``chunk`` steps (capped by :func:`chunk_length`) and at every eval; with
    diagnostics or checks, ``chunk`` is rounded down to a multiple of ``verify_every`` (else
    ``diagnose_every``) so that every chunk starts on one and a run compiles one program (not one per
    ``head``), and the chunks are split by :func:`verified_segments`."""
    n = chunk_length(cfg, models)
    d, v = cfg.diagnose_every, cfg.verify_every
    period = v or d
    if period and period <= n:
        n = n // period * period
    segs = verified_segments(segments(start, end, [n, cfg.eval_every]), v)
    return [(a, b, static_args(a, b, d, v)) for a, b in segs]


def run_chunk(compiled, carry, key, step: int, Xtr, Ytr, fetch):
    """One compiled chunk from ``step``: ``(outputs, losses on the host, seconds)``, the seconds those
    of the call and the losses' one round trip (``fetch``), not of compiling."""
    t = time.perf_counter()
    out = compiled(*carry, key, jnp.int32(step), Xtr, Ytr)
    losses = fetch(out[3])
    return out, losses, time.perf_counter() - t
