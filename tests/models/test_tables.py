"""bpjax check's tables, built from a model's forward: every layer it calls, named, in backward order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpjax import Config, Model, models
from bpjax import layers as L
from bpjax.models.tables import layer_table
from conftest import batch, masked_inputs

SMALL = {
    "wavenet": {"n_embd": 4, "n_hidden": 6},
    "deep": {"n_hidden": 12, "n_blocks": 2},
    "bengio": {"n_embd": 5, "n_embd2": 6},
    "rnn": {"n_embd": 5, "n_embd2": 6},
    "gru": {"n_embd": 5, "n_embd2": 6},
    "bow": {"n_embd": 5, "n_embd2": 6},
    "transformer": {"n_layer": 1, "n_embd": 8, "n_head": 2},
    "gpt": {"n_layer": 1, "n_embd": 8, "n_head": 2, "block_size": 7, "bias": True},
}


def model_batch(name, dtype, seed=5):
    """A model at small sizes (its parameters in ``dtype``) and a batch of its layout."""
    m = models.get(name)
    sizes = Config(name, **SMALL.get(name, {})).with_data({"block_size": 7}).sizes
    params, state = m.init(jax.random.key(1), vocab_size=27, dtype=dtype, **sizes)
    if name == "bigram":  # the zero init has a trivial gradient: check at a random table
        params = {"logits": jax.random.normal(jax.random.key(2), (27, 27), dtype)}
    if m.data == "sequences":
        X = jnp.maximum(masked_inputs((8, 7), 27, jnp.float32, seed=seed)[1], 0)
        Y = masked_inputs((8, 7), 27, jnp.float32, seed=seed + 1)[1]
    elif m.data == "text":  # windows of a stream: X [B, T], Y the next characters
        ids = jax.random.randint(jax.random.key(seed), (8, 8), 0, 27)
        X, Y = ids[:, :7], ids[:, 1:]
    else:
        X, Y = batch(jax.random.key(seed), 16, block=sizes["block_size"])
    return m, params, state, X, Y


@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("x64", [False, True], ids=["f32", "f64"])
def test_every_models_tables_pass(name, x64):
    """bpjax check on each registered model: its layers and the whole model pass the rule; in float64
    every row is within 1e-12."""
    with jax.enable_x64(x64):
        m, params, state, X, Y = model_batch(name, jnp.float64 if x64 else jnp.float32)
        tables = m.tables(params, state, X, Y)
        assert [t.rows[0].table for t in tables][-2:] == ["layers", "model"]
        assert all(t.ok for t in tables), "\n".join(map(str, tables))
        if x64:
            assert max(r.maxdiff for t in tables for r in t) <= 1e-12
            assert tables[-1].dtype == "float64"


def test_the_layer_table_names_each_input_by_what_it_is():
    """The notebook's MLP: in backward order, each input named after its tap or its parameter."""
    m, params, state, X, Y = model_batch("mlp", jnp.float32)
    t = layer_table(m, params, state, X, Y)
    assert [r.name for r in t] == [
        "logits",
        "h",
        "W2",
        "b2",
        "h_preact",
        "h_pre_bn",
        "bngain",
        "bnbias",
        "embcat",
        "W1",
        "b1",
        "C",
    ]
    for r in t:
        shape = params[r.name].shape if r.name in params else None
        assert shape is None or r.shape == shape


def test_a_layer_of_your_own_is_in_the_table_and_a_wrong_backward_fails_it():
    """A model over bpjax's layers plus one of its own: the table checks the new layer like bpjax's,
    and a planted bug (a dropped factor 2) fails its row and the whole-model table."""

    def square_plain(x):
        return x * x

    def fwd(x):
        return x * x, x

    def forward(ly, params, state, X, tap):
        h = tap("h", ly.square(ly.linear(ly.embedding(params["C"], X).reshape(X.shape[0], -1), params["W"])))
        return ly.linear(h, params["W2"]), state

    def init(key, *, vocab_size, block_size, dtype=jnp.float32):
        k = jax.random.split(key, 3)
        return {
            "C": jax.random.normal(k[0], (vocab_size, 4), dtype),
            "W": jax.random.normal(k[1], (4 * block_size, 5), dtype) * 0.3,
            "W2": jax.random.normal(k[2], (5, vocab_size), dtype) * 0.3,
        }, {}

    X, Y = batch(jax.random.key(0), 8)
    for bwd, ok in ((lambda x, d: (2 * x * d,), True), (lambda x, d: (x * d,), False)):
        square = L.with_backward(square_plain, fwd, bwd)
        m = Model(
            name="squared", init=init, forward=forward, sizes={"block_size": 3}, layers=L.MANUAL.extend(square=square)
        )
        params, state = m.init(jax.random.key(1), vocab_size=27, block_size=3)
        layers, whole = m.tables(params, state, X, Y)
        assert [r.name for r in layers] == ["cross_entropy.logits", "h", "W2", "square.x", "linear.x", "W", "C"]
        assert layers["square.x"].ok == ok and whole.ok == ok
        assert all(r.ok for r in layers if r.name != "square.x")  # only the square's row


def test_an_integer_or_static_argument_is_held_fixed():
    """The WaveNet's flatten factor and a missing bias are static; the token ids are integers: no rows."""
    m, params, state, X, Y = model_batch("wavenet", jnp.float32)
    t = layer_table(m, params, state, X, Y)
    names = [r.name for r in t]
    assert "emb" in names and "C" in names and not any(n.endswith((".X", ".n", ".b")) for n in names)
    np.testing.assert_equal(t["stage0.flat"].shape, (16, 4, 8))
