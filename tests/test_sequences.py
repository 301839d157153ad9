"""makemore's data layout (padded words, masked targets), the sequence layers (masked
cross-entropy, causal mean, RNN and GRU through time, layer norm, GELU, causal self-attention) and
makemore's six models."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bpjax import Config, bengio, fit, models
from bpjax import layers as L
from bpjax import layers_seq as S
from bpjax.check import check_vjp
from bpjax.data import Vocab, make_sequences, make_splits
from bpjax.step import split_losses
from conftest import assert_one_line_error, check_grads_on_floats, run_cli


# --- data ------------------------------------------------------------------------------------
def test_sequences_layout():
    words = ["emma", "ava", "x", "olivia", "mia", "bo", "zoe", "ann", "li", "kai"]
    v = Vocab.from_words(words)
    s = make_sequences(words, v, seed=1)
    X, Y = s["train"]
    assert X.dtype == Y.dtype == np.int32 and X.shape[1] == Y.shape[1] == 7  # "olivia" + 1
    for x, y in zip(X, Y, strict=True):
        n = int((y >= 0).sum()) - 1  # the word's length
        word = v.decode(y[:n])
        assert x[0] == 0 and list(x[1:n + 1]) == list(y[:n]) and (x[n + 1:] == 0).all()
        assert y[n] == 0 and (y[n + 1:] == -1).all() and word in words


def test_sequences_use_the_notebook_word_split(names_splits):
    words, vocab, windows = names_splits
    seqs = make_sequences(words, vocab)
    assert seqs["train"][0].shape == (25626, 16)
    for k in ("train", "val", "test"):
        # every split predicts the same characters: the windows' targets are the sequences' real ones
        X, Y = seqs[k]
        assert int((Y >= 0).sum()) == len(windows[k][1])
        assert np.array_equal(np.sort(Y[Y >= 0]), np.sort(windows[k][1]))


# --- masked cross-entropy -------------------------------------------------------------------
def masked_inputs(shape, V, dtype, seed, all_masked_rows=(0,)):
    k1, k2 = jax.random.split(jax.random.key(seed))
    logits = jax.random.normal(k1, (*shape, V), dtype) * 3
    Y = jax.random.randint(k2, shape, -1, V)
    for r in all_masked_rows:
        Y = Y.at[r].set(-1)
    return logits, Y


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(5, 1), (3, 7), (32, 16), (11,)])
def test_masked_cross_entropy_matches_jax_grad(dtype, shape):
    with jax.enable_x64(dtype == jnp.float64):
        logits, Y = masked_inputs(shape, 27, dtype, seed=sum(shape))
        np.testing.assert_array_equal(L.cross_entropy_masked(logits, Y), L.cross_entropy_masked_plain(logits, Y))
        t = check_vjp(L.cross_entropy_masked, L.cross_entropy_masked_plain, (logits, Y), argnames=["logits", "Y"])
        assert t.ok, str(t)
        if dtype == jnp.float64:
            assert t["logits"].maxdiff <= 1e-12
            check_grads(lambda lg: L.cross_entropy_masked(lg, Y), (logits,), order=1, modes=["rev"])


def test_masked_targets_get_exactly_zero_gradient_and_do_not_count():
    logits, Y = masked_inputs((6, 5), 9, jnp.float32, seed=3, all_masked_rows=(0, 4))
    g = jax.grad(L.cross_entropy_masked)(logits, Y)
    assert (g[Y < 0] == 0).all() and (g[0] == 0).all() and (g[4] == 0).all()
    valid = Y >= 0
    ref = -jax.nn.log_softmax(logits)[valid, Y[valid]].mean()  # the mean over real targets only
    np.testing.assert_allclose(L.cross_entropy_masked(logits, Y), ref, rtol=1e-6)
    none = -jnp.ones((6, 5), jnp.int32)  # no target at all: loss 0 and gradient 0, not NaN
    assert L.cross_entropy_masked(logits, none) == 0 and (jax.grad(L.cross_entropy_masked)(logits, none) == 0).all()


# --- the models ----------------------------------------------------------------------------
ZOO = ("bigram", "bengio", "rnn", "gru", "bow", "transformer")


def test_registered_with_makemore_parameter_counts():
    assert set(ZOO) <= set(models.names())
    counts = {}
    for name in ZOO:
        m = models.get(name)
        assert m.data == "sequences"
        params, _ = m.init(jax.random.key(0), vocab_size=27, **Config(name).with_data({"block_size": 16}).sizes)
        counts[name] = models.n_params(params)
    assert counts == {"bigram": 729, "bengio": 69_147, "rnn": 11_803, "gru": 28_315, "bow": 12_827,
                      "transformer": 204_544}


def test_context_linear_is_embedding_concatenation_then_linear():
    """bengio's per-token projections compute makemore's embcat @ W1 + b1."""
    with jax.enable_x64(True):
        wte, ids, W, b = seq_layer_inputs("context_linear", 4, 6, jnp.float64, seed=2)[2]
        direct = L.linear_plain(L.embedding_plain(wte, ids).reshape(4, 6, -1), W, b)
        np.testing.assert_allclose(S.context_linear(wte, ids, W, b), direct, rtol=1e-13, atol=1e-14)


def test_bengio_context_is_the_previous_characters_with_a_blank():
    """ids[b, t, k] is X[b, t - k], the blank before the start: makemore's k rolls, by hand."""
    X = np.array([[0, 5, 1, 13], [0, 2, 2, 3]])
    ids = np.asarray(bengio.context_ids(jnp.asarray(X), blank=27))
    for b in range(2):
        for t in range(4):
            for k in range(4):
                assert ids[b, t, k] == (X[b, t - k] if t - k >= 0 else 27)


def _bengio_batch(dtype, n_words=6, T=7, seed=3):
    """Words of random lengths 1..T/2 in makemore's layout (X from 0, Y then 0, then -1): as with
    names.txt, fewer than half the positions have a target."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    lengths = jax.random.randint(k1, (n_words, 1), 1, T // 2 + 1)
    chars = jax.random.randint(k2, (n_words, T), 1, 27)
    t = jnp.arange(T)[None, :]
    Y = jnp.where(t < lengths, chars, jnp.where(t == lengths, 0, -1))
    X = jnp.concatenate([jnp.zeros((n_words, 1), Y.dtype), jnp.maximum(Y[:, :-1], 0)], 1)
    params, _ = bengio.init(jax.random.key(seed + 1), vocab_size=27, n_embd=5, n_embd2=6, block_size=T, dtype=dtype)
    return params, X, Y


@pytest.mark.parametrize("head", [None, 8], ids=["half", "overflow"])
def test_bengio_packed_rows_are_the_whole_padded_batch(head):
    """The training loss runs the MLP on the positions with a target only (the first ``head`` packed
    rows when they fit, every row otherwise): its value and gradient, from the plain layers and from
    the hand-written ones, are the whole padded batch's. (Which branch runs, and the boundary
    ``n = head``: the next test.)"""
    with jax.enable_x64(True):
        params, X, Y = _bengio_batch(jnp.float64)
        n = int((Y >= 0).sum())
        assert 8 < n <= bengio.head_rows(Y.size) == 24  # 6 words x 7 = 42 positions
        none = jnp.full_like(Y, -1)  # no target at all: loss 0, no gradient
        whole = jax.jit(jax.value_and_grad(lambda p, Y: bengio.loss(p, {}, X, Y)[0]))  # every position
        ref, g_ref = whole(params, Y)
        for ly, cl in ((L.PLAIN, S.context_linear_plain), (L.MANUAL, S.context_linear)):
            packed = jax.jit(jax.value_and_grad(lambda p, Y, ly=ly, cl=cl: bengio._packed_loss(p, {}, X, Y, ly, cl,
                                                                                                head)[0]))
            got, g = packed(params, Y)
            np.testing.assert_allclose(got, ref, rtol=1e-13)
            for k in params:
                np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-12, atol=1e-14, err_msg=k)
            loss0, g0 = packed(params, none)
            assert loss0 == 0 and all(not jnp.any(v) for v in g0.values())


@pytest.mark.parametrize("n, head, rows_used", [(3, 4, 4), (4, 4, 4), (5, 4, 6), (2, 6, 6)])
def test_packed_rows_loss_takes_the_head_only_when_the_real_rows_fit(n, head, rows_used):
    """A rows loss that sees every row it is given tells which branch ran: the first ``head`` rows
    when ``n <= head``, all six otherwise; its gradient is the same branch's, scaled by the cotangent."""
    def rows_loss(w, rows, Y):  # counts the rows, padded ones too
        return w * rows.shape[0] + 0 * Y.sum()

    rows, Y = jnp.zeros((6, 1)), jnp.where(jnp.arange(6) < n, 1, -1)
    def f(w):
        return bengio.packed_rows_loss(rows_loss, w, rows, Y, jnp.int32(n), head)

    assert f(1.0) == rows_used and jax.jit(f)(1.0) == rows_used
    assert jax.grad(lambda w: 3 * f(w))(1.0) == 3 * rows_used
    under_vmap = jax.vmap(lambda w, n: bengio.packed_rows_loss(rows_loss, w, rows, Y, n, head))
    both = under_vmap(jnp.ones(2), jnp.array([min(n, head), n], jnp.int32))  # one model overflowing: all rows
    assert both.tolist() == [rows_used, rows_used]


def test_bengio_packed_rows_under_vmap():
    """Stacked models, with their own batches (a sweep) or one shared batch, keep one cond (its
    predicate: every model's rows fit) and each model's own value and gradient."""
    with jax.enable_x64(True):
        p0, X0, Y0 = _bengio_batch(jnp.float64, seed=3)
        p1, X1, Y1 = _bengio_batch(jnp.float64, seed=7)
        P = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), p0, p1)
        Xs, Ys = jnp.stack([X0, X1]), jnp.stack([Y0, Y1])
        vg = jax.value_and_grad(lambda p, X, Y: bengio.loss_manual(p, {}, X, Y)[0])
        whole = jax.value_and_grad(lambda p, X, Y: bengio.loss(p, {}, X, Y)[0])
        for in_axes, X, Y in (((0, 0, 0), Xs, Ys), ((0, None, None), X0, Y0)):
            f = jax.vmap(vg, in_axes=in_axes)
            jaxpr = str(jax.make_jaxpr(f)(P, X, Y))
            assert jaxpr.count("cond[") == 1 and "select_n" not in jaxpr.split("cond[")[1][:200]
            loss, g = jax.jit(f)(P, X, Y)
            for i, p in enumerate((p0, p1)):
                Xi, Yi = (X[i], Y[i]) if in_axes[1] == 0 else (X, Y)
                ref, g_ref = whole(p, Xi, Yi)
                np.testing.assert_allclose(loss[i], ref, rtol=1e-13)
                for k in p:
                    np.testing.assert_allclose(g[k][i], g_ref[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_bengio_autodiff_differentiates_the_packed_loss_and_checks_against_every_position():
    """``--grad autodiff`` gets the packing too (manual against autodiff times the backward alone);
    the oracle, ``loss``, runs every position, so the checks compare against an unpacked forward."""
    from bpjax.step import gradient_fn

    params, X, Y = _bengio_batch(jnp.float32)
    def conds(f):
        return str(jax.make_jaxpr(f)(params, {}, X, Y)).count("cond[")

    assert conds(gradient_fn("bengio", "autodiff")) == conds(gradient_fn("bengio", "manual")) == 1
    assert conds(jax.value_and_grad(lambda *a: models.get("bengio").loss(*a)[0])) == 0
    # and jax.grad of the oracle still composes with forward mode (a Hessian-vector product)
    with jax.enable_x64(True):
        params, X, Y = _bengio_batch(jnp.float64)
        g = lambda p: jax.grad(lambda p: bengio.loss(p, {}, X, Y)[0])(p)  # noqa: E731
        _, hvp = jax.jvp(g, (params,), (jax.tree_util.tree_map(jnp.ones_like, params),))
        assert all(jnp.isfinite(v).all() for v in hvp.values())


SMALL = {"bengio": {"n_embd": 5, "n_embd2": 6}, "rnn": {"n_embd": 5, "n_embd2": 6}, "gru": {"n_embd": 5, "n_embd2": 6},
         "bow": {"n_embd": 5, "n_embd2": 6}, "transformer": {"n_layer": 1, "n_embd": 8, "n_head": 2}}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("x64", [False, True], ids=["f32", "f64"])
def test_check_tables(name, x64):
    m = models.get(name)
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        sizes = Config(name, **SMALL.get(name, {})).with_data({"block_size": 7}).sizes
        params, state = m.init(jax.random.key(1), vocab_size=27, dtype=dtype, **sizes)
        if name == "bigram":  # the zero init has a trivial gradient: check at a random table
            params = {"logits": jax.random.normal(jax.random.key(2), (27, 27), dtype)}
        X, Y = masked_inputs((8, 7), 27, jnp.float32, seed=5)[1], masked_inputs((8, 7), 27, jnp.float32, seed=6)[1]
        X = jnp.maximum(X, 0)
        # the same forward (bengio's oracle runs every position, its two training losses the packed ones)
        assert m.training_loss("autodiff")(params, state, X, Y)[0] == m.loss_manual(params, state, X, Y)[0]
        np.testing.assert_allclose(m.loss(params, state, X, Y)[0], m.loss_manual(params, state, X, Y)[0],
                                   rtol=1e-13 if x64 else 1e-6)
        tables = m.tables(params, state, X, Y)
        assert all(t.ok for t in tables), "\n".join(map(str, tables))
        if x64:
            assert max(r.maxdiff for t in tables for r in t) <= 1e-12


def test_split_loss_is_the_mean_over_real_targets():
    words = ["emma", "ava", "x", "olivia", "mia", "bo", "zoe", "ann", "li", "kai"] * 3
    v = Vocab.from_words(words)
    s = make_sequences(words, v)
    params = {"logits": jax.random.normal(jax.random.key(0), (v.size, v.size))}
    X, Y = s["val"]
    logp = np.asarray(jax.nn.log_softmax(params["logits"]))
    valid = Y >= 0
    ref = -logp[X[valid], Y[valid]].mean()  # bigram: position t's logits are row X[t]
    got = split_losses("bigram", params, {}, s, ("val",), rows=2)["val_loss"]
    assert got == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("name", ZOO)
def test_a_few_hundred_steps_lower_the_loss_and_sample(names_path, name):
    run = fit(Config(name, steps=300, chunk=150, **SMALL.get(name, {})), data=names_path, out=False, verbose=False)
    lossi = run.history["lossi"]
    assert 10 ** lossi[:20].mean() > 10 ** lossi[-20:].mean() + 0.05
    assert run.config.block_size == 16
    assert run.metrics["val_loss"] < math.log(27) - 0.04  # learnt something beyond the uniform guess
    names = run.sample(n=4, seed=1)
    assert len(names) == 4 and all(n.endswith((".", "…")) for n in names)


@pytest.mark.parametrize("name", ZOO)
def test_training_loss_is_the_eval_logits_loss(name):
    """The training loss (BoW's time-major, the others batch-first) equals the masked cross-entropy
    of ``logits_eval``'s [N, T, V] against Y: the layouts pair every position with its own target."""
    with jax.enable_x64(True):
        spec = models.get(name)
        T, V = 5, 7
        sizes = {k: v for k, v in spec.sizes.items() if k != "block_size"}
        sizes = {k: (8 if k in ("n_embd", "n_embd2") else v) for k, v in sizes.items()}
        params, state = spec.init(jax.random.key(0), vocab_size=V, block_size=T, dtype=jnp.float64, **sizes)
        X = jax.random.randint(jax.random.key(1), (3, T), 0, V)
        Y = jnp.where(jnp.arange(T)[None, :] < jnp.array([[5], [2], [4]]), jnp.roll(X, -1, 1), -1)
        ref = L.cross_entropy_masked_plain(spec.logits_eval(params, state, X), Y)
        assert spec.logits_eval(params, state, X).shape == (3, T, V)
        for f in (spec.loss, spec.loss_manual):
            np.testing.assert_allclose(f(params, state, X, Y)[0], ref, rtol=1e-13)


def test_sequence_sampling_reads_each_position_once():
    """A bigram table that always predicts the next letter (and '.' after 'e') samples 'abcde.'; with
    max_len 3 the name is cut and marked."""
    from bpjax.sample import sample_names

    v = Vocab.from_words(["abcdefg"])
    table = jnp.full((v.size, v.size), -1e9).at[jnp.arange(5), jnp.arange(1, 6)].set(0.0).at[5, 0].set(0.0)
    logits = lambda params, stats, X: params[X]  # noqa: E731
    assert sample_names(logits, table, {}, v, 8, n=3, layout="sequences") == ["abcde."] * 3
    assert sample_names(logits, table, {}, v, 8, n=1, max_len=3, layout="sequences") == ["abc…"]


def test_with_data_leaves_the_callers_config_alone():
    cfg = Config("bigram", steps=4)
    filled = cfg.with_data({"block_size": 16})
    assert filled.block_size == 16 and cfg.block_size is None


def test_block_size_of_a_sequence_model_is_the_datas(names_path, tmp_path):
    r = run_cli("train", "--model", "bengio", "--block-size", "5", "--steps", "10", "--data", str(names_path),
                "--out", str(tmp_path / "r"))
    assert_one_line_error(r, "block-size is the data's")


def test_windows_and_sequences_split_the_same_words(names_splits):
    words, vocab, _ = names_splits
    w = make_splits(words[:50], vocab, block_size=2)
    s = make_sequences(words[:50], vocab)
    assert len(w["val"][1]) == int((s["val"][1] >= 0).sum())


# --- the sequence layers against jax.grad and finite differences ---------------------------
def seq_layer_inputs(name, B, T, dtype, seed):
    k = iter(jax.random.split(jax.random.key(seed), 12))
    normal = lambda shape, scale=1.0: jax.random.normal(next(k), shape, dtype) * scale  # noqa: E731
    E, H, C, nh = 4, 6, 8, 2
    if name == "causal_mean":
        return (S.causal_mean, S.causal_mean_plain, (normal((B, T, C)),), ["x"])
    if name == "causal_mean_time_major":  # BoW's: time first, the average one [T, T] GEMM
        return (lambda x: S.causal_mean(x, 0), lambda x: S.causal_mean_plain(x, 0), (normal((T, B, C)),), ["x"])
    if name == "rnn":
        return (S.rnn, S.rnn_plain, (normal((B, T, E)), normal((1, H), 0.5), normal((E + H, H), 0.4),
                                     normal((H,), 0.1)), ["x", "start", "W", "b"])
    if name == "gru":
        ws = [a for _ in range(3) for a in (normal((E + H, H), 0.4), normal((H,), 0.1))]
        return (S.gru, S.gru_plain, (normal((B, T, E)), normal((1, H), 0.5), *ws),
                ["x", "start", "Wr", "br", "Wz", "bz", "Wn", "bn"])
    if name == "layernorm":
        return (S.layernorm, S.layernorm_plain, (normal((B, T, C), 2.0) + 0.5, 1 + normal((C,), 0.1),
                                                 normal((C,), 0.1)), ["x", "g", "b"])
    if name == "gelu":
        return (S.gelu, S.gelu_plain, (normal((B, T, C), 2.0),), ["x"])
    if name == "attention":
        return (S.attention, S.attention_plain, (normal((B, T, C)), normal((C, 3, nh, C // nh), 0.3),
                                                 normal((3, nh, C // nh), 0.1), normal((C, C), 0.3), normal((C,), 0.1)),
                ["x", "W_attn", "b_attn", "W_proj", "b_proj"])
    if name == "context_linear":  # K = 3 context ids over a vocabulary of 7: repeats are certain
        return (S.context_linear, S.context_linear_plain, (normal((7, E)), jax.random.randint(next(k), (B, T, 3), 0, 7),
                                                           normal((3 * E, H), 0.4), normal((H,), 0.1)),
                ["wte", "ids", "W", "b"])
    raise KeyError(name)


SEQ_LAYERS = ["causal_mean", "causal_mean_time_major", "rnn", "gru", "layernorm", "gelu", "attention", "context_linear"]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("name", SEQ_LAYERS)
def test_sequence_layer_matches_jax_grad(name, T, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f_man, f_ref, args, names = seq_layer_inputs(name, 3, T, dtype, seed=T)
        np.testing.assert_array_equal(f_man(*args), f_ref(*args))  # the custom forward is the plain one
        t = check_vjp(f_man, f_ref, args, argnames=names, key=jax.random.key(T))
        assert t.ok, str(t)
        if dtype == jnp.float64:
            assert max(r.maxdiff for r in t) <= 1e-12, str(t)


@pytest.mark.parametrize("name", SEQ_LAYERS)
def test_sequence_layer_finite_differences(name):
    with jax.enable_x64(True):
        f_man, _, args, _ = seq_layer_inputs(name, 2, 3, jnp.float64, seed=7)
        check_grads_on_floats(f_man, args)  # the integer ids stay fixed


@pytest.mark.parametrize("name", ["causal_mean", "rnn", "gru", "attention"])
def test_future_positions_get_exactly_zero_gradient(name):
    """Position t's output does not depend on inputs after t: through the hand-written backward, the
    gradient of output t with respect to every later input is exactly 0."""
    f_man, _, args, _ = seq_layer_inputs(name, 2, 6, jnp.float32, seed=3)
    x, rest = args[0], args[1:]
    for t in range(6):
        g = jax.grad(lambda x, t=t: f_man(x, *rest)[:, t].sum())(x)
        assert (g[:, t + 1:] == 0).all(), (name, t)
        assert (g[:, t] != 0).any()


def test_time_major_causal_mean_is_the_batch_first_one_transposed():
    """The same averages and gradients along axis 0 of x.T as along axis 1 of x (float64: the two
    layouts are different GEMMs); the future of a time-major position gets exactly zero gradient."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(5), (3, 6, 4), jnp.float64)
        xt = jnp.swapaxes(x, 0, 1)
        np.testing.assert_allclose(jnp.swapaxes(S.causal_mean(xt, 0), 0, 1), S.causal_mean(x), rtol=0, atol=1e-14)
        w = jax.random.normal(jax.random.key(6), x.shape, jnp.float64)
        g1 = jax.grad(lambda x: (S.causal_mean(x) * w).sum())(x)
        g0 = jax.grad(lambda xt: (S.causal_mean(xt, 0) * jnp.swapaxes(w, 0, 1)).sum())(xt)
        np.testing.assert_allclose(jnp.swapaxes(g0, 0, 1), g1, rtol=0, atol=1e-14)
    x = jax.random.normal(jax.random.key(5), (3, 6, 4))
    xt = jnp.swapaxes(x, 0, 1)
    for t in range(6):
        g = jax.grad(lambda xt, t=t: S.causal_mean(xt, 0)[t].sum())(xt)
        assert (g[t + 1:] == 0).all() and (g[t] != 0).all()


# --- makemore state dicts -------------------------------------------------------------------
MAKEMORE_SHAPES = {  # a few of makemore.py's state_dict() entries, with names.txt (V 27, T 16)
    "bengio": {"wte.weight": (28, 64), "mlp.0.weight": (64, 1024), "mlp.2.bias": (27,)},
    "rnn": {"start": (1, 64), "cell.xh_to_h.weight": (64, 128), "lm_head.weight": (27, 64)},
    "gru": {"cell.xh_to_hbar.weight": (64, 128), "cell.xh_to_z.bias": (64,)},
    "bow": {"wpe.weight": (16, 64), "context_block.mlp.c_fc.weight": (64, 64)},
    "transformer": {"transformer.h.3.attn.c_attn.weight": (192, 64), "transformer.h.0.mlp.c_proj.weight": (64, 256),
                    "lm_head.weight": (27, 64), "transformer.ln_f.bias": (64,)},
    "bigram": {"logits": (27, 27)},
}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("x64", [False, True], ids=["f32", "f64"])
def test_makemore_state_dict_round_trip_is_exact(name, x64):
    from bpjax.makemore import from_state_dict, to_state_dict

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        params, _ = models.get(name).init(jax.random.key(0), vocab_size=27, dtype=dtype,
                                          **Config(name).with_data({"block_size": 16}).sizes)
        sd = to_state_dict(name, params)
        for k, shape in MAKEMORE_SHAPES[name].items():
            assert sd[k].shape == shape, k
        assert sum(a.size for a in sd.values()) == models.n_params(params)
        back = from_state_dict(name, {**sd, "transformer.h.0.attn.bias": np.ones((1, 1, 16, 16))}
                               if name == "transformer" else sd)  # a buffer is accepted and ignored
        flat = lambda t: jax.tree_util.tree_leaves(t)  # noqa: E731
        assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
        for a, b in zip(flat(params), flat(back), strict=True):
            assert b.dtype == a.dtype and np.array_equal(np.asarray(a), b)


def test_makemore_state_dict_errors():
    from bpjax.errors import CheckpointError
    from bpjax.makemore import from_state_dict

    with pytest.raises(CheckpointError, match="not a makemore rnn state dict"):
        from_state_dict("rnn", {"logits": np.zeros((27, 27))})
    with pytest.raises(CheckpointError, match="makemore has no model"):
        from_state_dict("mlp", {})


def _np_layernorm(x, g, b):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def _np_transformer_logits(sd, X, n_head):
    """makemore.py's Transformer.forward, in numpy, on its own state-dict keys ([out, in] weights)."""
    lin = lambda x, k, bias=True: x @ sd[k + ".weight"].T + (sd[k + ".bias"] if bias else 0)  # noqa: E731
    B, T = X.shape
    x = sd["transformer.wte.weight"][X] + sd["transformer.wpe.weight"][:T]
    L_ = len({k.split(".")[2] for k in sd if k.startswith("transformer.h.")})
    for i in range(L_):
        h = f"transformer.h.{i}"
        a = _np_layernorm(x, sd[f"{h}.ln_1.weight"], sd[f"{h}.ln_1.bias"])
        C = a.shape[-1]
        q, k, v = np.split(lin(a, f"{h}.attn.c_attn"), 3, axis=-1)
        heads = lambda t, C=C: t.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // n_head)
        att = np.where(np.tril(np.ones((T, T), bool)), att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + lin((att @ v).transpose(0, 2, 1, 3).reshape(B, T, C), f"{h}.attn.c_proj")
        m = _np_layernorm(x, sd[f"{h}.ln_2.weight"], sd[f"{h}.ln_2.bias"])
        fc = lin(m, f"{h}.mlp.c_fc")
        gelu = 0.5 * fc * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (fc + 0.044715 * fc**3)))
        x = x + lin(gelu, f"{h}.mlp.c_proj")
    x = _np_layernorm(x, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"])
    return lin(x, "lm_head", bias=False)


def _np_bow_logits(sd, X):
    """makemore.py's BoW.forward, in numpy, on its own state-dict keys."""
    lin = lambda x, k: x @ sd[k + ".weight"].T + sd[k + ".bias"]  # noqa: E731
    T = X.shape[1]
    x = sd["wte.weight"][X] + sd["wpe.weight"][:T]
    A = np.tril(np.ones((T, T)))
    x = x + (A / A.sum(1, keepdims=True)) @ x
    x = x + lin(np.tanh(lin(x, "context_block.mlp.c_fc")), "context_block.mlp.c_proj")
    return lin(x, "lm_head")


@pytest.mark.parametrize("name, n_head", [("transformer", 4), ("transformer", 2), ("bow", None)])
def test_state_dict_runs_makemores_forward(name, n_head):
    """bpjax's logits equal a numpy forward written from makemore.py on to_state_dict's keys: catches
    a missed transpose of a square weight or a wrong head order, which a round trip cannot."""
    from bpjax.makemore import from_state_dict, to_state_dict

    with jax.enable_x64(True):
        m = models.get(name)
        sizes = Config(name, **({"n_head": n_head, "n_layer": 2} if n_head else {})).with_data({"block_size": 9}).sizes
        params, _ = m.init(jax.random.key(4), vocab_size=27, dtype=jnp.float64, **sizes)
        X = np.asarray(jax.random.randint(jax.random.key(5), (3, 9), 0, 27))
        sd = to_state_dict(name, params)
        ref = _np_transformer_logits(sd, X, n_head) if n_head else _np_bow_logits(sd, X)
        np.testing.assert_allclose(m.logits_eval(params, {}, jnp.asarray(X)), ref, rtol=1e-10, atol=1e-10)
        back = from_state_dict(name, sd, **({"n_head": n_head} if n_head else {}))
        np.testing.assert_allclose(m.logits_eval(back, {}, jnp.asarray(X)), ref, rtol=1e-10, atol=1e-10)
