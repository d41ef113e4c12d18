"""The per-step profile of a model's raw output around a switch, on hand-made logits."""

import numpy as np
import pytest

from eventpipe.training.switch_profile import format_profile, switch_profile


def onehot_logits(said, n_classes=3, p=0.8):
    """Logits whose softmax gives ``p`` to the said class and the rest evenly to the others."""
    q = (1 - p) / (n_classes - 1)
    return np.log(np.where(np.eye(n_classes)[said] > 0, p, q))


def test_profile_counts_steps_after_each_switch():
    # stream 1: truth 0 x4, then 1 x4; the model says 0, 0, 2, 1 after the switch
    # stream 2: truth 2 x3, then 0 x4; the model says 0 from the first new window on
    truth1 = np.array([0] * 4 + [1] * 4)
    said1 = [0, 0, 0, 0, 0, 0, 2, 1]
    truth2 = np.array([2] * 3 + [0] * 4)
    said2 = [2, 2, 2, 0, 0, 0, 0]
    t = lambda n: np.arange(1, n + 1) * 50_000  # noqa: E731
    streams = [(onehot_logits(said1), truth1, t(8)), (onehot_logits(said2), truth2, t(7))]
    prof = switch_profile(streams, steps=4)
    assert prof["switches"] == 2
    assert prof["first_new"] == [3, 0]
    assert prof["argmax_new"] == pytest.approx([0.5, 0.5, 0.5, 1.0])
    # p(new): stream 1 gives 0.1, 0.1, 0.1, 0.8; stream 2 0.8 each step
    assert prof["p_new"] == pytest.approx([0.45, 0.45, 0.45, 0.8])
    # p(old): stream 1 0.8, 0.8, 0.1, 0.1; stream 2 (old = 2) 0.1 each step
    assert prof["p_old"] == pytest.approx([0.45, 0.45, 0.1, 0.1])
    text = format_profile(prof)
    assert text.startswith("2 switches") and "  3  200 ms  0.800   0.100   1.000" in text


def test_a_switch_without_enough_windows_of_the_new_action_is_left_out():
    truth = np.array([0, 0, 1, 1, 0, 0, 0])   # the 1 segment is 2 windows: shorter than steps=3
    said = [0, 0, 1, 1, 0, 0, 0]
    prof = switch_profile([(onehot_logits(said), truth, np.arange(7))], steps=3)
    assert prof["switches"] == 1 and prof["first_new"] == [0]   # only 1 -> 0 counts
    never = switch_profile([(onehot_logits([1] * 7), truth, np.arange(7))], steps=3)
    assert never["first_new"] == [None] and never["argmax_new"] == [0.0, 0.0, 0.0]
