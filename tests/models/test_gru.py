"""makemore's GRU: its forward is makemore.py's (numpy, on the state dict), gates and all."""

from conftest import assert_runs_makemores_forward, np_recurrent_logits


def test_the_forward_is_makemores():
    assert_runs_makemores_forward("gru", lambda sd, X: np_recurrent_logits(sd, X, "gru"))
