"""The glue that runs nanoGPT's train.py: its data files, its flags, what it prints, parsed (no torch)."""

import importlib.util
import pickle

import numpy as np
import pytest

from bpjax import Config
from conftest import ROOT


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("nanogpt_peer", ROOT / "experiments" / "nanogpt_peer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_data_is_nanogpts_prepare_py(peer, tmp_path):
    text = "hello world\n" * 10  # 120 characters
    vocab = peer.prepare(tmp_path, text)
    d = tmp_path / "data" / "bpjax_text"
    train, val = (np.fromfile(d / f, np.uint16) for f in ("train.bin", "val.bin"))
    assert len(train) == 108 and len(val) == 12 and vocab.decode(train[:5]) == "hello"
    meta = pickle.loads((d / "meta.pkl").read_bytes())
    assert meta["vocab_size"] == vocab.size and meta["itos"][0] == "\n" and meta["stoi"]["w"] == vocab.stoi["w"]


def test_the_flags_are_the_configs_recipe(peer, tmp_path):
    flags = peer.flags(Config("gpt"), 2000, 250, 20, tmp_path, "d")
    for f in (
        "--n_layer=4",
        "--n_head=4",
        "--n_embd=128",
        "--block_size=64",
        "--batch_size=12",
        "--dropout=0.0",
        "--bias=False",
        "--learning_rate=0.001",
        "--min_lr=0.0001",
        "--warmup_iters=100",
        "--max_iters=2000",
        "--lr_decay_iters=2000",
        "--grad_clip=1.0",
        "--weight_decay=0.1",
        "--device=cpu",
        "--compile=False",
    ):
        assert f in flags, f


def test_its_output_is_parsed_and_rates_come_in_equal_blocks(peer):
    assert peer.ITER.match("iter 12: loss 2.5039, time 66.07ms, mfu 0.02%").groups() == ("12", "2.5039", "66.07")
    assert peer.EVAL.match("step 250: train loss 1.9757, val loss 2.0747").groups() == ("250", "1.9757", "2.0747")
    rates = peer.iteration_rates([500.0, 300.0] + [50.0] * 10, 5)  # the first two (warm-up) left out
    assert rates == [20.0] * 5
    with pytest.raises(SystemExit, match="not a nanoGPT checkout"):
        peer.check_checkout(ROOT)


def test_a_relative_checkout_is_made_absolute(peer, tmp_path, monkeypatch):
    # train.py runs from a temporary directory, where a relative path names nothing
    for name in ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py"):
        (tmp_path / "ng" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ng" / name).write_text("")
    monkeypatch.chdir(tmp_path)
    got = peer.check_checkout("ng")
    assert got.is_absolute() and got == tmp_path.resolve() / "ng"


def test_the_shakespeare_reports_table_and_figure(tmp_path, require):
    spec = importlib.util.spec_from_file_location("shakespeare", ROOT / "experiments" / "shakespeare.py")
    sh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sh)
    b = {"val_loss": 1.88, "ms_per_step": 20.0, "evals": [[250, 2.1], [500, 1.9]], "sample": "ROMEO:\nAy."}
    n = {
        "val_loss_estimate": 1.89,
        "ms_per_step": 50.0,
        "evals": [[0, 4.2], [500, 1.95]],
        "best_checkpoint_iter": 500,
        "best_checkpoint_val_estimate": 1.95,
        "best_checkpoint_val_bpjax_whole_split": 1.94,
        "bpjax_100_more_steps_val": 1.93,
    }
    bf = {**b, "val_loss": 1.9, "ms_per_step": 12.5, "sample": "ROMEO:\nNay."}
    md = sh.markdown({"steps": 500, "machine": "cpu", "bpjax": b, "bpjax_bfloat16": bf, "nanogpt": n})
    assert "| bpjax (hand-written backward) | 1.8800 | 20.0 | 50.0 |" in md and "2.50x as fast" in md
    assert "| bpjax, bfloat16 products | 1.9000 | 12.5 | 80.0 |" in md and "products: 4.00x as fast" in md
    assert "| nanoGPT train.py | 1.8900 | 50.0 | 20.0 |" in md and "ROMEO:\nAy." in md and "ROMEO:\nNay." in md
    only = sh.markdown({"steps": 500, "machine": "cpu", "bpjax": b})  # no nanoGPT, float32 only
    assert "bfloat16" not in only and "as fast" not in only
    require("matplotlib")  # the plot extra: a failure in CI, a skip elsewhere
    sh.figure({"bpjax": b, "nanogpt": n}, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
