"""Data parallelism on a device mesh, several processes, CPU cores. Several CPU devices need XLA_FLAGS
before JAX starts: subprocesses."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from bpjax import Config, fit

FOUR = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
# Not JAX's persistent compilation cache (tests/conftest.py) in these subprocesses: a sharded CPU
# program loaded from it can deadlock in its first collective (the devices wait at different
# all-gathers until XLA aborts the process after 40 s). Measured with jax 0.10.2, the sharded-step
# test alone: 4 of 4 passed from a cold cache, 2 of 4 aborted from a warm one.
NO_CACHE = {"JAX_ENABLE_COMPILATION_CACHE": "false"}


def python(code, env=None, timeout=600):
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **NO_CACHE, **(env or {})},
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bpjax", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **NO_CACHE, **(env or {})},
    )


def test_sharded_step_equals_single_device_step(names_path):
    """The same chunk, sharded over 4 devices and on one: parameters within 1e-6 (float32)."""
    out = python(
        f"""
        import json, jax, jax.numpy as jnp, numpy as np
        from bpjax.data import Vocab, load_words, make_splits
        from bpjax.training.distributed import make_mesh, replicate, to_local
        from bpjax.training import Config
        from bpjax.training.chunk import make_train_chunk
        from bpjax.training.optim import make_optimizer
        from bpjax.training.step import gradient_fn, init_train_state
        assert jax.device_count() == 4
        w = load_words({str(names_path)!r}); v = Vocab.from_words(w)
        Xtr, Ytr = (jnp.asarray(a) for a in make_splits(w, v)["train"])
        res = {{}}
        for grad in ("manual", "autodiff"):
            cfg = Config(batch_size=64, grad=grad)
            params, opt, state, kd = init_train_state(cfg, v.size); tx = make_optimizer(cfg)
            args = (params, opt, state, kd, jnp.int32(0), Xtr, Ytr)
            one = make_train_chunk(gradient_fn("mlp", grad), tx, 64)(*args, 5)
            mesh = make_mesh(4)
            chunk4 = make_train_chunk(gradient_fn("mlp", grad), tx, 64, mesh)
            rargs = replicate(args, mesh)
            four = chunk4(*rargs, 5)
            hlo = chunk4.lower(*rargs, 5).compile().as_text()
            d = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                                       to_local(one[0]), to_local(four[0]))
            s = jax.tree_util.tree_map(lambda a: float(np.abs(np.asarray(a)).max()), to_local(one[0]))
            res[grad] = {{"diff": d, "scale": s, "all_reduce": "all-reduce" in hlo,
                          "devices": len(four[0]["W1"].sharding.device_set)}}
        print(json.dumps(res))
    """,
        env=FOUR,
    )
    for grad, r in out.items():
        assert r["devices"] == 4 and r["all_reduce"], r  # really split: the partitioner inserted all-reduces
        for k, d in r["diff"].items():
            assert d <= 1e-6 * max(1.0, r["scale"][k]), (grad, k, d)


def test_batch_not_divisible_by_devices_is_a_clear_error(tmp_path):
    r = cli("train", "--devices", "4", "--batch-size", "30", "--steps", "10", "--out", str(tmp_path / "r"), env=FOUR)
    assert r.returncode == 2 and "must divide by the 4 devices" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    r = cli("train", "--devices", "8", "--steps", "10", "--out", str(tmp_path / "r"), env=FOUR)
    assert r.returncode == 2 and "sees 4 device" in r.stderr


def test_four_devices_give_the_single_device_val_loss(names_path, tmp_path):
    args = ["train", "--data", str(names_path), "--steps", "500", "--batch-size", "128", "--no-progress"]
    one = cli(*args, "--out", str(tmp_path / "one"), env=FOUR)
    four = cli(*args, "--devices", "4", "--out", str(tmp_path / "four"), env=FOUR)
    assert one.returncode == 0 and four.returncode == 0, four.stderr
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m4 = json.loads((tmp_path / "four" / "metrics.json").read_text())
    assert m4["mesh_devices"] == 4 and m1["mesh_devices"] == 1
    assert abs(m1["val_loss"] - m4["val_loss"]) <= 1e-4, (m1["val_loss"], m4["val_loss"])
    parallel = json.loads((tmp_path / "four" / "config.json").read_text())["parallel"]
    assert parallel["mesh_devices"] == 4 and parallel["process_count"] == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_loopback_agree(names_path, tmp_path):
    port = _free_port()
    args = ["--data", str(names_path), "--steps", "200", "--batch-size", "64", "--no-progress"]
    env = {**os.environ, **NO_CACHE, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bpjax",
                "train",
                *args,
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--out",
                str(tmp_path / f"p{i}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errs
    m = [json.loads((tmp_path / f"p{i}" / "metrics.json").read_text()) for i in range(2)]
    assert m[0]["process_count"] == 2 and m[0]["mesh_devices"] == 2
    for k in ("train_loss", "val_loss", "test_loss"):
        assert m[0][k] == m[1][k]  # exactly
    assert (tmp_path / "p0" / "checkpoint.npz").exists() and not (tmp_path / "p1" / "checkpoint.npz").exists()
    single = fit(Config(steps=200, batch_size=64), data=names_path, out=False, verbose=False)
    assert abs(single.metrics["val_loss"] - m[0]["val_loss"]) <= 1e-3


def test_use_every_core_sets_one_device_per_core_unless_the_user_chose(monkeypatch):
    from bpjax.training import distributed as d

    monkeypatch.setattr(d, "usable_cores", lambda: 2)
    monkeypatch.setattr(d, "_backends_started", lambda: False)
    env = {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=true"}
    assert d.use_every_core(env) == 2
    assert env["XLA_FLAGS"] == f"--xla_cpu_use_thunk_runtime=true {d.HOST_DEVICES_FLAG}=2"
    mine = {"XLA_FLAGS": f"{d.HOST_DEVICES_FLAG}=3"}
    assert d.use_every_core(mine) is None and mine["XLA_FLAGS"] == f"{d.HOST_DEVICES_FLAG}=3"  # the user's count
    monkeypatch.setattr(d, "usable_cores", lambda: 1)
    assert d.use_every_core({}) is None  # one core: nothing to shard across
    monkeypatch.setattr(d, "usable_cores", lambda: 2)
    monkeypatch.setattr(d, "_backends_started", lambda: True)
    late = {}
    assert d.use_every_core(late) is None and late == {}  # too late once JAX has started


def test_use_cores_pins_the_process_before_jax_starts(monkeypatch):
    from bpjax.errors import ConfigError
    from bpjax.training import distributed as d

    here = d._current_cpu()  # the real one: /proc/self/stat's processor field, where there is one
    assert here is None or here in os.sched_getaffinity(0)
    pinned = []
    monkeypatch.setattr(d.os, "sched_getaffinity", lambda pid: {3, 1, 2})
    monkeypatch.setattr(d.os, "sched_setaffinity", lambda pid, cores: pinned.append(list(cores)))
    monkeypatch.setattr(d, "_backends_started", lambda: False)
    monkeypatch.setattr(d, "_current_cpu", lambda: 2)
    assert d.use_cores(1) == 1 and pinned == [[2]]  # the core it runs on, so side-by-side runs spread
    assert d.use_cores(2) == 2 and pinned[-1] == [2, 3]
    monkeypatch.setattr(d, "_current_cpu", lambda: 3)
    assert d.use_cores(2) == 2 and pinned[-1] == [3, 1]  # then the next usable ones, wrapping
    monkeypatch.setattr(d, "_current_cpu", lambda: None)
    assert d.use_cores(1) == 1 and pinned[-1] == [1]  # unknown: the first usable core
    assert d.use_cores(3) is None and d.use_cores(8) is None and len(pinned) == 4  # every core: nothing to do
    monkeypatch.setattr(d, "_backends_started", lambda: True)
    assert d.use_cores(1) is None and len(pinned) == 4  # too late once JAX has started
    with pytest.raises(ConfigError, match="positive"):
        d.use_cores(0)


def test_default_cores_and_the_train_command_s_choice(monkeypatch, tmp_path):
    """``default_cores``: the model's ``cpu_cores`` on one CPU device of one process only; the CLI
    reads a resumed run's model from its config.json and leaves a damaged one to resume's error."""
    import argparse

    from bpjax.cli import train as cli
    from bpjax.training import distributed as d

    cpu = {"JAX_PLATFORMS": "cpu"}
    assert d.default_cores("bow", environ=cpu) == 1 and d.default_cores("transformer", environ=cpu) is None
    assert d.default_cores("bow", devices=2, environ=cpu) is None
    assert d.default_cores("bow", cluster=True, environ=cpu) is None
    assert d.default_cores("bow", environ={"JAX_PLATFORMS": "cuda,cpu"}) is None
    assert d.default_cores("no-such-model", environ=cpu) is None
    assert d.one_core_models() == ["bigram", "bengio", "rnn", "gru", "bow"]
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    asked = []
    monkeypatch.setattr(d, "use_cores", asked.append)
    args = dict(cores=None, model=None, resume=None, devices=1, coordinator=None, num_processes=None, process_id=None)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"config": {"model": "gru"}}')
    for given, want in (
        (dict(model="bigram"), 1),
        (dict(model="bigram", cores=2), 2),
        (dict(), None),
        (dict(model="bow", devices=2), None),
        (dict(model="bow", process_id=0), None),
        (dict(resume=str(run)), 1),
        (dict(resume=str(tmp_path / "none")), None),
    ):
        asked.clear()
        cli._use_cores(argparse.Namespace(**{**args, **given}))
        assert asked == ([] if want is None else [want]), given
    (run / "config.json").write_text("{not json")
    cli._use_cores(argparse.Namespace(**{**args, "resume": str(run)}))  # damaged: resume says so, not this
    assert asked == []


def test_the_coordinator_binds_its_own_address_unless_told(monkeypatch):
    """jax binds [::]:PORT (every interface) unless given a bind address; bpjax passes the
    coordinator's own, or --bind, and bounds the wait for the other processes."""
    import jax

    from bpjax.errors import ConfigError
    from bpjax.training import distributed

    calls = []
    monkeypatch.setattr(distributed, "rendezvous", lambda *a, **k: None)  # no peers here
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(jax.config, "update", lambda *a: None)
    distributed.initialize("127.0.0.1:7777", 2, 0)
    distributed.initialize("10.0.0.1:7777", 2, 0, bind="0.0.0.0:7777", timeout=30)
    assert calls[0][1]["coordinator_bind_address"] == "127.0.0.1:7777"
    assert calls[1][1]["coordinator_bind_address"] == "0.0.0.0:7777" and calls[1][1]["initialization_timeout"] == 30
    with pytest.raises(ConfigError, match="--bind must be HOST:PORT"):
        distributed.initialize("127.0.0.1:7777", 2, 0, bind="7777")

    def unreachable(*a, **k):
        raise RuntimeError("DEADLINE_EXCEEDED: Deadline Exceeded\nRPC: RegisterTask")

    monkeypatch.setattr(jax.distributed, "initialize", unreachable)
    with pytest.raises(ConfigError, match="could not join the 2 processes .*DEADLINE_EXCEEDED"):
        distributed.initialize("127.0.0.1:7777", 2, 1)


@pytest.mark.parametrize(
    "process_id, needle", [("0", "process(es) 1 of 2 did not join"), ("1", "could not meet process 0")]
)
def test_a_missing_peer_is_one_line_after_the_timeout(tmp_path, names_path, process_id, needle):
    """Not jax's C++ abort after 300 s: bpjax's own rendezvous gives up after --timeout."""
    from conftest import assert_one_line_error, run_cli

    res = run_cli(
        "train",
        "--data",
        str(names_path),
        "--steps",
        "10",
        "--coordinator",
        f"127.0.0.1:{_free_port()}",
        "--num-processes",
        "2",
        "--process-id",
        process_id,
        "--timeout",
        "2",
        "--out",
        str(tmp_path / "r"),
        timeout=60,
    )
    assert_one_line_error(res, needle)
    assert not (tmp_path / "r").exists()
