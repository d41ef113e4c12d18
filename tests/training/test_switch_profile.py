"""The per-step profile of a model's raw output around a switch, on hand-made logits."""

import numpy as np
import pytest
import torch

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


class WarmsUp(torch.nn.Module):
    """Says class 2 for its first two steps from rest, then the class the window encodes
    (its first pixel holds class + 1): a network that needs steps of the new action."""

    def step(self, x, state):
        n = 0 if state is None else state
        said = 2 if n < 2 else int(round(float(x.reshape(-1)[0]))) - 1
        return torch.from_numpy(onehot_logits([said])).float(), n + 1


def test_from_rest_starts_every_switch_without_state():
    from eventpipe.represent import InputRecipe
    from eventpipe.training.switch_profile import rest_profile

    recipe = InputRecipe(size=(2, 2), window_us=100_000, stride_us=50_000, channels="halves")
    truth = np.array([0] * 5 + [1] * 6 + [0] * 6)
    frames = np.zeros((len(truth), 2, 2, 2), np.int16)
    frames[:, 0, 0, 0] = truth + 1
    prof = rest_profile(WarmsUp(), [(frames, truth, 1.0)], recipe, start=1, steps=5)
    # two switches (0 -> 1 at window 5, 1 -> 0 at 11); from rest at k = 1 the first two steps
    # say class 2, so the new class is said from k = 3 at both: the state did not carry over
    assert prof["switches"] == 2 and prof["first_new"] == [3, 3]
    assert prof["argmax_new"] == [None, 0.0, 0.0, 1.0, 1.0]
    assert prof["p_old"][:1] == [None] and prof["p_old"][1] == pytest.approx(0.1)
    assert "  0   50 ms    -       -       -  " in format_profile(prof)
    carried = rest_profile(WarmsUp(), [(frames, truth, 1.0)], recipe, start=0, steps=5)
    assert carried["first_new"] == [2, 2]
    with pytest.raises(ValueError, match="from rest at window 5"):
        rest_profile(WarmsUp(), [(frames, truth, 1.0)], recipe, start=5, steps=5)


@pytest.mark.parametrize("args, msg", [(["--from-rest", "14"], "--from-rest must be in"),
                                       (["--steps", "0"], "--steps must be >= 1")])
def test_bad_profile_options_are_usage_errors(args, msg, capsys):
    from eventpipe.training.switch_profile import main

    with pytest.raises(SystemExit) as e:
        main(["--config", "missing.toml", "--checkpoint", "default"] + args)
    assert e.value.code == 2 and msg in capsys.readouterr().err
