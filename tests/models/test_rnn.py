"""makemore's RNN: its forward is makemore.py's (numpy, on the state dict)."""

from conftest import assert_runs_makemores_forward, np_recurrent_logits


def test_the_forward_is_makemores():
    assert_runs_makemores_forward("rnn", lambda sd, X: np_recurrent_logits(sd, X, "rnn"))
