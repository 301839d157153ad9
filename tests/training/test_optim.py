"""The optimizers: the notebook's step-decay SGD and AdamW, as optax transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpjax import Config, fit
from bpjax.training.optim import (
    OPTIMIZERS,
    adamw_step_decay,
    learning_rate,
    make_optimizer,
    scale_by_warmup_cosine,
    sgd_step_decay,
)


def test_schedule():
    tx = sgd_step_decay(0.1, 100, 0.1)
    g = {"w": jnp.ones(2)}
    state = tx.init(g)
    rates = []
    for _ in range(102):
        u, state = tx.update(g, state)
        rates.append(-float(u["w"][0]))
    assert rates[0] == rates[99] == np.float32(0.1)  # steps 0..99
    assert rates[100] == rates[101] == np.float32(0.01)  # from step 100: 0.01 exactly, not 0.1f * 0.1f
    assert Config(steps=200_000).decay_step == 100_000 and Config(steps=10, lr_decay_step=3).decay_step == 3


def test_adamw_is_optax_adamw_with_the_step_decay():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5])}
    grads = [jax.tree_util.tree_map(lambda p, i=i: jnp.sin(p * (i + 1)), params) for i in range(6)]
    ours, ref = (
        adamw_step_decay(1e-2, 3, 0.1, 0.01),
        [optax.adamw(r, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.01) for r in (1e-2, 1e-3)],
    )
    s, p = ours.init(params), params
    s_ref, p_ref = [r.init(params) for r in ref], params
    for i, g in enumerate(grads):
        u, s = ours.update(g, s, p)
        p = optax.apply_updates(p, u)
        # optax.adamw with rate 1e-2 for steps 0..2, then 1e-3: its moments are shared, so run both
        u_r = [r.update(g, sr, p_ref) for r, sr in zip(ref, s_ref, strict=True)]
        s_ref = [x[1] for x in u_r]
        p_ref = optax.apply_updates(p_ref, u_r[0 if i < 3 else 1][0])
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, p_ref)


def test_make_optimizer_builds_the_configs_optimizer_with_its_schedule():
    """Config(optimizer=...) gives that transformation with the config's rate, decay step and factor and,
    for AdamW, its weight decay (default 0.01): the same updates as the one built by hand."""
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = [{"w": jnp.array([0.5, -1.0, 2.0]) * (i + 1)} for i in range(4)]
    cases = [
        (Config(lr=0.2, lr_decay_step=2, lr_decay_factor=0.5), sgd_step_decay(0.2, 2, 0.5)),
        (Config(optimizer="adamw", lr=0.01, lr_decay_step=2), adamw_step_decay(0.01, 2, 0.1, 0.01)),
        (Config(optimizer="adamw", lr=0.01, steps=8, weight_decay=0.3), adamw_step_decay(0.01, 4, 0.1, 0.3)),
    ]
    for cfg, want in cases:
        got = make_optimizer(cfg)
        s_got, s_want, p_got, p_want = got.init(params), want.init(params), params, params
        for g in grads:
            u_got, s_got = got.update(g, s_got, p_got)
            u_want, s_want = want.update(g, s_want, p_want)
            np.testing.assert_array_equal(u_got["w"], u_want["w"])
            p_got, p_want = optax.apply_updates(p_got, u_got), optax.apply_updates(p_want, u_want)
    adamw, sgd = make_optimizer(cases[1][0]), make_optimizer(cases[0][0])
    u_a = adamw.update(grads[0], adamw.init(params), params)[0]["w"]
    u_s = sgd.update(grads[0], sgd.init(params), params)[0]["w"]
    assert not np.allclose(u_a, u_s) and set(OPTIMIZERS) == {"sgd", "adamw"}


def test_adamw_trains(names_path):
    run = fit(
        Config(n_hidden=32, steps=600, chunk=300, optimizer="adamw", lr=1e-2), data=names_path, out=False, verbose=False
    )
    assert run.metrics["val_loss"] < 2.7


def _nanogpt_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=2000):
    """nanoGPT's ``get_lr``, as its train.py writes it."""
    import math

    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_warmup_then_cosine_is_nanogpts_get_lr():
    from bpjax.training.optim import scale_by_warmup_cosine

    tx = scale_by_warmup_cosine(1e-3, 1e-4, 100, 2000)
    state = tx.init({"w": jnp.zeros(())})
    for it in range(2100):
        u, state = tx.update({"w": jnp.ones(())}, state)
        if it in (0, 1, 50, 99, 100, 101, 1000, 1999, 2000, 2050):
            assert abs(-float(u["w"]) - _nanogpt_lr(it)) <= 1e-7 * _nanogpt_lr(it), it


def test_nanogpts_adamw_decays_the_matrices_only_and_clips_first():
    """The GPT's defaults: AdamW (0.9, 0.99, 1e-8) with weight decay 0.1 on the 2-D parameters, after
    clipping at global norm 1.0: one update equals optax's adamw with that mask on clipped gradients."""
    from bpjax.training.optim import matrices

    cfg = Config("gpt", steps=10, warmup_steps=0, schedule="step", lr_decay_factor=1.0)
    params = {"W": jnp.ones((3, 2)), "ln_g": jnp.ones((2,)), "wte": jnp.full((4, 2), 2.0)}
    assert matrices(params) == {"W": True, "ln_g": False, "wte": True}
    grads = jax.tree_util.tree_map(lambda p: 3.0 * jnp.ones_like(p), params)
    ref = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(1e-3, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.1, mask=matrices)
    )
    mine, _ = make_optimizer(cfg).update(grads, make_optimizer(cfg).init(params), params)
    theirs, _ = ref.update(grads, ref.init(params), params)
    for k in params:
        np.testing.assert_allclose(mine[k], theirs[k], rtol=1e-6)
    assert Config("gpt").grad_clip == 1.0 and Config("gpt").weight_decay_on == "matrices"


def test_gpt_defaults_are_the_cpu_recipe():
    cfg = Config("gpt")
    assert (cfg.lr, cfg.weight_decay, cfg.schedule, cfg.warmup_steps, cfg.min_lr, cfg.steps, cfg.batch_size) == (
        1e-3,
        0.1,
        "cosine",
        100,
        1e-4,
        2000,
        12,
    )
    assert cfg.sizes == {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False}


@pytest.mark.parametrize(
    "kw",
    [
        dict(optimizer="sgd", lr=0.1, lr_decay_step=30, lr_decay_factor=0.1),
        dict(optimizer="adamw", lr=3e-3, schedule="cosine", warmup_steps=10, min_lr=1e-4),
    ],
)
def test_learning_rate_is_the_optimizers(kw):
    """Host-side rates against the optimizer's own: its update of a gradient of ones, SGD's -rate."""
    cfg = Config(steps=80, **kw)
    rates = [learning_rate(cfg, t) for t in range(cfg.steps)]
    if cfg.optimizer == "sgd":
        tx, p = make_optimizer(cfg), {"w": jnp.zeros(())}

        def step(state, _):
            u, state = tx.update({"w": jnp.ones(())}, state, p)
            return state, -u["w"]

        _, got = jax.lax.scan(step, tx.init(p), None, length=cfg.steps)
        np.testing.assert_array_equal(np.asarray(got), np.float32(rates))
        assert rates[29] == np.float32(0.1) and rates[30] == np.float32(0.01)
    else:
        tx, p = scale_by_warmup_cosine(cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.steps), {"w": jnp.zeros(())}
        state, got = tx.init(p), []
        for _ in range(cfg.steps):
            u, state = tx.update({"w": jnp.ones(())}, state, p)
            got.append(-float(u["w"]))
        np.testing.assert_allclose(got, rates, rtol=1e-6)
        assert rates[0] == pytest.approx(3e-3 / 11) and rates[10] == pytest.approx(3e-3) and rates[-1] < 1.1e-4
