"""makemore's Transformer: its forward is makemore.py's (numpy, on the state dict), heads and all."""

import numpy as np
import pytest

from bpjax import Config
from bpjax.errors import ConfigError
from conftest import assert_runs_makemores_forward, np_linear


def _np_layernorm(x, g, b):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def np_transformer_logits(sd, X, n_head):
    """makemore.py's Transformer.forward, in numpy, on its own state-dict keys ([out, in] weights)."""
    B, T = X.shape
    x = sd["transformer.wte.weight"][X] + sd["transformer.wpe.weight"][:T]
    n_layer = len({k.split(".")[2] for k in sd if k.startswith("transformer.h.")})
    for i in range(n_layer):
        h = f"transformer.h.{i}"
        a = _np_layernorm(x, sd[f"{h}.ln_1.weight"], sd[f"{h}.ln_1.bias"])
        C = a.shape[-1]
        q, k, v = np.split(np_linear(sd, a, f"{h}.attn.c_attn"), 3, axis=-1)

        def heads(t, C=C):
            return t.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)

        q, k, v = heads(q), heads(k), heads(v)
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // n_head)
        att = np.where(np.tril(np.ones((T, T), bool)), att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + np_linear(sd, (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C), f"{h}.attn.c_proj")
        m = _np_layernorm(x, sd[f"{h}.ln_2.weight"], sd[f"{h}.ln_2.bias"])
        fc = np_linear(sd, m, f"{h}.mlp.c_fc")
        gelu = 0.5 * fc * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (fc + 0.044715 * fc**3)))
        x = x + np_linear(sd, gelu, f"{h}.mlp.c_proj")
    x = _np_layernorm(x, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"])
    return np_linear(sd, x, "lm_head", bias=False)


@pytest.mark.parametrize("n_head", [4, 2])
def test_the_forward_is_makemores(n_head):
    assert_runs_makemores_forward(
        "transformer",
        lambda sd, X: np_transformer_logits(sd, X, n_head),
        sizes={"n_head": n_head, "n_layer": 2},
        n_head=n_head,
    )


def test_the_heads_must_divide_the_width():
    with pytest.raises(ConfigError, match=r"n-embd \(10\) must divide by n-head \(4\)"):
        Config("transformer", n_embd=10).validate()
