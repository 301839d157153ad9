"""experiments/gpt_speed.py's report: per-round ratios, their median and range (no torch, no training)."""

import importlib.util

from conftest import ROOT


def _module():
    spec = importlib.util.spec_from_file_location("gpt_speed", ROOT / "experiments" / "gpt_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_ratios_are_per_round_and_the_table_shows_every_round():
    gs = _module()
    rounds = [
        {"float32": 25.0, "bfloat16": 15.0, "nanogpt": 24.0},
        {"float32": 30.0, "bfloat16": 20.0, "nanogpt": 36.0},  # a slow phase slows all three
        {"float32": 26.0, "bfloat16": 16.0, "nanogpt": 24.0},
    ]
    s = gs.summarise(rounds)
    assert s["nanogpt_ms"] == 24.0 and s["bfloat16"]["ms"] == 16.0
    assert s["bfloat16"]["over_nanogpt_median"] == 1.6 and s["bfloat16"]["over_nanogpt_max"] == 1.8
    assert s["float32"]["over_nanogpt_min"] == 24.0 / 26.0
    md = gs.markdown({"machine": "cpu", "steps": 300, "rounds": rounds, "summary": s})
    assert "| bpjax, bfloat16 products | 16.0 | 1.60x (1.50-1.80) |" in md
    assert "| 2 | 30.0 | 20.0 | 36.0 |" in md and "3 alternated rounds" in md and "autocast" not in md
    for r in rounds:
        r["nanogpt_autocast"] = 30.0
    s = gs.summarise(rounds)
    md = gs.markdown({"machine": "cpu", "steps": 300, "rounds": rounds, "summary": s})
    assert s["nanogpt_autocast_ms"] == 30.0 and "| 2 | 30.0 | 20.0 | 36.0 | 30.0 |" in md
