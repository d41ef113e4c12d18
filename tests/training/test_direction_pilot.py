"""The direction pilot (docs/training.md, issue #16) feeds both representations the same events."""

import torch

from eventpipe.training.direction_pilot import circle_clips


def test_both_inputs_hold_the_same_events_and_only_halves_show_the_order():
    pol, yp = circle_clips("polarity", 7, 2, windows=3, sensor=(32, 32))
    hal, yh = circle_clips("halves", 7, 2, windows=3, sensor=(32, 32))
    assert pol.shape == hal.shape == (2, 3, 2, 32, 32) and yp.tolist() == yh.tolist() == [0, 1]
    # undo log1p: per window, OFF + ON counts == first-half + second-half counts (no saturation)
    torch.testing.assert_close(torch.expm1(pol).sum(2), torch.expm1(hal).sum(2), rtol=1e-4, atol=1e-4)
    # a moving hand: the halves differ (the first half is not the second)
    assert (hal[:, :, 0] - hal[:, :, 1]).abs().sum() > 1.0
