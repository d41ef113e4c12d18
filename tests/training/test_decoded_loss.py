"""The loss on the decoder-smoothed probabilities (eventpipe.training.decoded_loss), on
hand-made probabilities; the smoothing is checked against the runtime's own LabelDecoder."""

import numpy as np
import pytest
import torch

from eventpipe.labels import LabelDecoder
from eventpipe.training.decoded_loss import after_switch, decoded_margin_loss, smoothed
from eventpipe.training.stream_data import IGNORE

I = IGNORE


def test_smoothed_is_the_runtime_decoders_ema():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (1, 9, 4))
    p = torch.softmax(torch.tensor(logits), -1)
    ours = smoothed(p, 0.6)[0].numpy()
    dec = LabelDecoder(["a", "b", "c", "d"], ema=0.6, emit_every=1)
    for j in range(9):
        dec.step(logits[0, j])
        np.testing.assert_allclose(ours[j], dec.states[0].smooth, rtol=1e-9, atol=1e-12)


def test_after_switch_marks_the_windows_of_an_action_that_began_inside_the_run():
    y = torch.tensor([[I, I, 3, 3, I, I, 5, 5, 5],     # a switch 3 -> 5 inside the run
                      [I, I, 3, 3, 3, 3, 3, 3, 3],     # none
                      [I, I, I, I, I, I, 5, 5, 5]])    # the switch fell in the burn-in: from rest
    assert after_switch(y).int().tolist() == [[0, 0, 0, 0, 0, 0, 1, 1, 1], [0] * 9, [0] * 9]


def _logits(p0):
    """Two classes, class-0 probabilities ``p0`` per window of one run -> logits [R, 2]."""
    p0 = torch.tensor(p0, dtype=torch.float64)
    return torch.stack([p0, 1 - p0], -1).log()


def test_hinge_by_hand_with_no_smoothing():
    # ema 0: s = p; lead of the target = p_y - p_other = 2 p_y - 1; margin 0.4 -> hinge
    # relu(0.4 - (2 p_y - 1)) = relu(1.4 - 2 p_y)
    p0 = [0.9, 0.6, 0.5, 0.2, 0.4, 0.3]
    y = torch.tensor([[0, 0, 0, I, 1, 1]])
    # a run without a switch inside it? no: 0 then 1, so the class-1 windows are after a switch;
    # start=0: every valid window counts; focus 0..1 (held 1 window after the switch) weighs 3
    h = [max(0.0, 1.4 - 2 * v) for v in (0.9, 0.6, 0.5)] + [max(0.0, 1.4 - 2 * (1 - v)) for v in (0.4, 0.3)]
    w = [1, 1, 1, 3, 1]
    got = decoded_margin_loss(_logits(p0), y, ema=0.0, margin=0.4, start=0, focus_end=1, focus_weight=3.0)
    assert float(got) == pytest.approx(sum(a * b for a, b in zip(h, w)) / sum(w))
    # start=2: the first class-1 window (held 1) is free, the second (held 2) counts, unweighted
    # (focus 2..1 is empty)
    got = decoded_margin_loss(_logits(p0), y, ema=0.0, margin=0.4, start=2, focus_end=1, focus_weight=3.0)
    assert float(got) == pytest.approx((sum(h[:3]) + h[4]) / 4)


def test_hinge_on_the_ema_and_its_gradient_reaches_earlier_windows():
    # ema 0.5 over three windows of class 0: s = 0.8, 0.5*0.8+0.5*0.2 = 0.5, 0.5*0.5+0.5*0.6 = 0.55
    p0 = [0.8, 0.2, 0.6]
    logits = _logits(p0).requires_grad_(True)
    y = torch.tensor([[0, 0, 0]])
    got = decoded_margin_loss(logits, y, ema=0.5, margin=0.4, start=0, focus_end=-1)
    leads = [2 * s - 1 for s in (0.8, 0.5, 0.55)]
    assert float(got.detach()) == pytest.approx(sum(max(0.0, 0.4 - v) for v in leads) / 3)
    got.backward()
    # window 0 already leads by 0.6 >= 0.4 itself, but the smoothed windows after it do not:
    # raising its class-0 logit lowers the loss
    assert float(logits.grad[0, 0]) < 0


def test_a_window_shown_right_with_room_costs_nothing_and_no_counted_window_gives_zero():
    y = torch.tensor([[1, 1, 1]])
    assert float(decoded_margin_loss(_logits([0.05, 0.05, 0.05]), y, ema=0.6, margin=0.4)) == 0.0
    assert float(decoded_margin_loss(_logits([0.5, 0.5, 0.5]), torch.tensor([[I, I, I]]))) == 0.0


def test_transition_pairs_name_the_two_actions_of_a_switch_and_only_its_early_windows():
    y = torch.tensor([[I, I, 3, 3, I, I, 5, 5, 5, 5],    # 3 -> 5: grace windows 4, 5, then 5 held 1, 2, ...
                      [I, I, I, 3, 3, 3, 3, 3, 3, 3]])   # no switch inside the run
    from eventpipe.training.decoded_loss import transition_pairs

    mask, old, new = transition_pairs(y, start=3)
    assert mask.int().tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0], [0] * 10]
    assert old[0, 4:8].tolist() == [3] * 4 and new[0, 4:8].tolist() == [5] * 4
    assert old[1].tolist() == [-1] * 10 and new[1].tolist() == [-1] * 10


def test_transition_loss_charges_a_third_class_leading_while_the_label_turns():
    from eventpipe.training.decoded_loss import transition_loss

    # 3 classes, ema 0: s = p. One run: a a _ b (grace window 2; window 3 held 1 < start 2)
    y = torch.tensor([[0, 0, I, 1]])
    p = torch.tensor([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1],
                      [0.3, 0.2, 0.5],      # grace: the third class leads old by 0.2
                      [0.1, 0.6, 0.3]])     # new leads the third by 0.3: free at margin 0.1
    logits = p.log()
    got = transition_loss(logits, y, ema=0.0, margin=0.1, start=2)
    assert float(got) == pytest.approx(((0.5 - 0.3 + 0.1) + 0.0) / 2)
    # no switch in the run: nothing to charge
    assert float(transition_loss(logits, torch.tensor([[0, 0, 0, 0]]), ema=0.0, start=2)) == 0.0
