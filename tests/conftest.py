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
def shakespeare_path() -> Path:
    """tiny Shakespeare at data/tinyshakespeare.txt (``.ci/run`` copies it there); missing is a failure in CI."""
    p = ROOT / "data" / "tinyshakespeare.txt"
    if not p.is_file():
        missing(f"tinyshakespeare.txt not found at {p}; copy it to data/tinyshakespeare.txt")
    return p


SMALL_GPT = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}
"""A GPT the tests train for a few hundred steps (seconds): nanoGPT's recipe, smaller."""


@pytest.fixture(scope="session")
def gpt_run(shakespeare_path, tmp_path_factory):
    """A small GPT trained 300 steps on tiny Shakespeare, its run directory (one per session)."""
    from bpjax import Config, fit

    out = tmp_path_factory.mktemp("gpt") / "run"
    cfg = Config("gpt", steps=300, warmup_steps=30, eval_every=150, chunk=150, **SMALL_GPT)
    fit(cfg, data=shakespeare_path, out=out, verbose=False, save_plot=False)
    return out


def write(tmp_path, payload: bytes, name="words.txt"):
    """``payload`` written to ``tmp_path / name``; its path."""
    p = tmp_path / name
    p.write_bytes(payload)
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
    return subprocess.run(
        [sys.executable, "-m", "bpjax", *args], capture_output=True, text=True, env=e, timeout=timeout, **kw
    )


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


# --- layer inputs, shared by the layer families' tests ---------------------------------------
def layer_inputs(name, n, dtype, key, hidden=7, vocab=11, block=3, embd=5, leading=()):
    """Random inputs for one of the notebook's layers, with ``n`` rows (leading axes optional, for
    3-D inputs): ``(args, argnames)``."""
    import jax

    k = iter(jax.random.split(key, 6))

    def normal(shape, scale=1.0):
        return jax.random.normal(next(k), shape, dtype) * scale

    rows = (n, *leading)
    if name == "cross_entropy":
        return (normal((n, vocab), 3.0), jax.random.randint(next(k), (n,), 0, vocab)), ("logits", "Y")
    if name == "batchnorm":
        # With two rows, batch norm maps every column to +-1/sqrt(2) whatever the input, up to eps:
        # its true gradient is O(eps/var), so at unit scale both backwards (hand-written and
        # jax.grad's) are float32 cancellation noise (measured: hand-written 3.6e-7, jax.grad 7.2e-7
        # from the float64 truth, on a gradient of 1.5e-3). Two rows are tested where var ~ eps and
        # the gradient is O(1); float64 covers every scale.
        import jax.numpy as jnp

        scale = 3e-3 if n == 2 and dtype == jnp.float32 else 2.0
        return (
            (normal((*rows, hidden), scale) + 0.5, normal((1, hidden)) * 0.1 + 1.0, normal((1, hidden)) * 0.1),
            ("h_pre_bn", "bngain", "bnbias"),
        )
    if name == "tanh":
        return (normal((*rows, hidden), 1.5),), ("x",)
    if name == "linear":
        return (normal((*rows, embd * block)), normal((embd * block, hidden)), normal((hidden,))), ("x", "W", "b")
    if name == "embedding":
        # n rows of `block` ids over a vocabulary smaller than the ids used: repeats are certain
        return (normal((vocab, embd)), jax.random.randint(next(k), (n, block), 0, vocab)), ("C", "X")
    raise KeyError(name)


def seq_layer_inputs(name, B, T, dtype, seed):
    """``(hand-written layer, its plain twin, args, argnames)`` for one of the sequence models' layers on
    ``B`` rows of ``T`` positions."""
    import jax

    from bpjax import layers as L

    k = iter(jax.random.split(jax.random.key(seed), 12))

    def normal(shape, scale=1.0):
        return jax.random.normal(next(k), shape, dtype) * scale

    E, H, C, nh = 4, 6, 8, 2
    if name == "causal_mean_time_major":  # BoW's: time first, the average one [T, T] GEMM
        return (lambda x: L.causal_mean(x, 0)), (lambda x: L.causal_mean_plain(x, 0)), (normal((T, B, C)),), ["x"]
    if name == "causal_mean":
        args, names = (normal((B, T, C)),), ["x"]
    elif name == "rnn":
        args, names = (
            (normal((B, T, E)), normal((1, H), 0.5), normal((E + H, H), 0.4), normal((H,), 0.1)),
            ["x", "start", "W", "b"],
        )
    elif name == "gru":
        ws = [a for _ in range(3) for a in (normal((E + H, H), 0.4), normal((H,), 0.1))]
        args, names = (normal((B, T, E)), normal((1, H), 0.5), *ws), ["x", "start", "Wr", "br", "Wz", "bz", "Wn", "bn"]
    elif name == "layernorm":
        args, names = (normal((B, T, C), 2.0) + 0.5, 1 + normal((C,), 0.1), normal((C,), 0.1)), ["x", "g", "b"]
    elif name == "gelu":
        args, names = (normal((B, T, C), 2.0),), ["x"]
    elif name == "attention":
        args = (
            normal((B, T, C)),
            normal((C, 3, nh, C // nh), 0.3),
            normal((3, nh, C // nh), 0.1),
            normal((C, C), 0.3),
            normal((C,), 0.1),
        )
        names = ["x", "W_attn", "b_attn", "W_proj", "b_proj"]
    elif name == "context_linear":  # K = 3 context ids over a vocabulary of 7: repeats are certain
        args = (
            normal((7, E)),
            jax.random.randint(next(k), (B, T, 3), 0, 7),
            normal((3 * E, H), 0.4),
            normal((H,), 0.1),
        )
        names = ["wte", "ids", "W", "b"]
    else:
        raise KeyError(name)
    layer = getattr(L, name)
    return layer, layer.fun, args, names


def masked_inputs(shape, V, dtype, seed, all_masked_rows=(0,)):
    """Logits ``[*shape, V]`` and targets ``[*shape]`` in makemore's layout (``-1``: no target), with
    whole rows masked."""
    import jax

    k1, k2 = jax.random.split(jax.random.key(seed))
    logits = jax.random.normal(k1, (*shape, V), dtype) * 3
    Y = jax.random.randint(k2, shape, -1, V)
    for r in all_masked_rows:
        Y = Y.at[r].set(-1)
    return logits, Y


def assert_layer_checks(layer, plain, args, names, key=None, f64_bound=None):
    """The hand-written ``layer`` against ``jax.grad`` of ``plain`` on ``args``: the same forward bit for
    bit, every row ok (and within ``f64_bound`` in float64), one row per floating-point argument of
    its shape."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bpjax.check import check_vjp

    np.testing.assert_array_equal(jax.jit(layer)(*args), jax.jit(plain)(*args))  # the same forward
    table = check_vjp(layer, plain, args, argnames=names, key=key)
    assert table.ok, str(table)
    floats = [a for a in args if jnp.issubdtype(a.dtype, jnp.floating)]
    assert len(table) == len(floats) and all(r.shape == np.shape(a) for r, a in zip(table, floats, strict=True))
    if f64_bound is not None and floats[0].dtype == jnp.float64:
        assert max(r.maxdiff for r in table) <= f64_bound, str(table)
    return table


def assert_runs_makemores_forward(name, np_logits, sizes=None, **from_kw):
    """bpjax's logits of model ``name`` equal ``np_logits(state_dict, X)``, a numpy forward written from
    makemore.py on :func:`bpjax.models.makemore.to_state_dict`'s keys, in float64 (catches a missed
    transpose of a square weight or a wrong head order, which a round trip cannot); and so do those of
    the parameters read back with ``from_state_dict``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bpjax import Config, models
    from bpjax.models.makemore import from_state_dict, to_state_dict

    with jax.enable_x64(True):
        m = models.get(name)
        params, _ = m.init(
            jax.random.key(4),
            vocab_size=27,
            dtype=jnp.float64,
            **Config(name, **(sizes or {})).with_data({"block_size": 9}).sizes,
        )
        X = np.asarray(jax.random.randint(jax.random.key(5), (3, 9), 0, 27))
        sd = to_state_dict(name, params)
        ref = np_logits(sd, X)
        np.testing.assert_allclose(m.logits_eval(params, {}, jnp.asarray(X)), ref, rtol=1e-10, atol=1e-10)
        back = from_state_dict(name, sd, **from_kw)
        np.testing.assert_allclose(m.logits_eval(back, {}, jnp.asarray(X)), ref, rtol=1e-10, atol=1e-10)


def np_linear(sd, x, key, bias=True):
    """A PyTorch ``nn.Linear`` from its state-dict entries (weight ``[out, in]``), in numpy."""
    return x @ sd[key + ".weight"].T + (sd[key + ".bias"] if bias else 0)


def np_recurrent_logits(sd, X, cell):
    """makemore.py's RNN.forward with its RNNCell or GRUCell, in numpy, on its state-dict keys."""
    import numpy as np

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    emb = sd["wte.weight"][X]
    h = np.broadcast_to(sd["start"], (X.shape[0], sd["start"].shape[1]))
    hiddens = []
    for t in range(X.shape[1]):
        xh = np.concatenate([emb[:, t], h], 1)
        if cell == "rnn":
            h = np.tanh(np_linear(sd, xh, "cell.xh_to_h"))
        else:
            r = sigmoid(np_linear(sd, xh, "cell.xh_to_r"))
            hbar = np.tanh(np_linear(sd, np.concatenate([emb[:, t], r * h], 1), "cell.xh_to_hbar"))
            z = sigmoid(np_linear(sd, xh, "cell.xh_to_z"))
            h = (1 - z) * h + z * hbar
        hiddens.append(h)
    return np_linear(sd, np.stack(hiddens, 1), "lm_head")
