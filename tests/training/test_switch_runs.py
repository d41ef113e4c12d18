"""Stream training runs cut around a switch (``data.switch_runs``, issue #16 stage 5)."""

import numpy as np
import pytest
import torch

from eventpipe.training.config import load_train_config
from eventpipe.training.stream_data import SyntheticStreamFrames, switch_offset, switch_windows

from .test_stream_data import stream_overrides


def test_switch_windows_are_the_first_windows_ending_after_a_switch():
    # switches every 1000 us; a window ending exactly on a switch still holds the old action
    t_end = np.array([500, 1000, 1500, 2000, 2001, 2500, 3000, 3050])
    assert switch_windows(t_end, 1000).tolist() == [2, 4, 7]


def test_switch_offset_puts_burn_in_and_lead_windows_before_the_switch():
    seen = set()
    for seed in range(200):
        off = switch_offset(np.array([20]), 100, 32, 8, 6, np.random.default_rng(seed))
        seen.add(20 - off - 8)              # windows of the old action after the burn-in
    assert seen == {1, 2, 3, 4, 5, 6}
    # a switch too early (no room for the burn-in) or too late (the run would overrun) is skipped
    for seed in range(50):
        assert switch_offset(np.array([5, 60, 95]), 100, 32, 8, 2, np.random.default_rng(seed)) in (50, 51)
    assert switch_offset(np.array([5, 95]), 100, 32, 8, 2, np.random.default_rng(0)) is None


def test_training_runs_hold_a_switch_after_the_burn_in(tmp_path):
    """With switch_runs = 1 every training run starts burn_in + 1..lead windows before a switch
    of its stream (found by matching the run's frames in the stream); its targets are the old
    action, then (after the grace windows) the new one."""
    lead = 2
    d = load_train_config(None, stream_overrides(tmp_path, **{
        "data.switch_runs": 1.0, "data.switch_run_lead": lead, "data.augment.hflip": 0.0,
        "data.augment.event_drop": 0.0})).data
    ds = SyntheticStreamFrames(d, "train")
    base = SyntheticStreamFrames(load_train_config(None, stream_overrides(tmp_path)).data, "train")
    leads = set()
    for i in range(len(ds)):
        x, y, _ = ds[i]
        s = ds.index[i][0]
        a0, n = int(ds.starts[s]), int(ds.lengths[s])
        raw = torch.log1p(torch.from_numpy(ds.frames.astype(np.float32)) * ds.scale)
        hits = [o for o in range(n - d.run_windows + 1)
                if torch.equal(raw[a0 + o:a0 + o + d.run_windows], x)]
        assert len(hits) == 1
        (off,) = hits
        sw = [w - off for w in switch_windows(ds.t_end[a0:a0 + n], ds.switch_us).tolist()
              if d.burn_in < w - off <= d.burn_in + lead]
        assert len(sw) == 1, (i, off)
        leads.add(sw[0] - d.burn_in)
        yy = y.numpy()
        old = yy[d.burn_in:sw[0]]
        assert (old >= 0).all() and len(set(old.tolist())) == 1
        new = yy[sw[0]:][yy[sw[0]:] >= 0]
        assert len(new) and (new == ds.truth[a0 + off + d.run_windows - 1]).all() and new[0] != old[0]
    assert leads == {1, 2}
    # switch_runs = 0 (the default) keeps the random offsets
    assert not all(torch.equal(base[i][0], ds[i][0]) for i in range(len(ds)))


@pytest.mark.parametrize("key, value", [("data.switch_runs", 1.5), ("data.switch_run_lead", 0)])
def test_bad_switch_run_settings_are_named(tmp_path, key, value):
    d = load_train_config(None, stream_overrides(tmp_path, **{key: value})).data
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SyntheticStreamFrames(d, "train")


def test_direction_loss_by_hand():
    from eventpipe.training.decoded_loss import direction_loss

    # classes: 0 cw, 1 acw, 2 wave (no partner); partner = time reversal
    partner = torch.tensor([1, 0, 2])
    logits = torch.tensor([[3.0, 2.5, 0.0],    # cw leads acw by 0.5: hinge 2 - 0.5 = 1.5
                           [0.0, 4.0, 9.0],    # acw leads cw by 4: 0 (wave's 9 does not count)
                           [5.0, 5.0, 0.0],    # wave: no partner, not counted
                           [1.0, 0.0, 0.0]])   # ignored target
    y = torch.tensor([[0, 1], [2, -100]])
    assert float(direction_loss(logits, y, partner, margin=2.0)) == pytest.approx((1.5 + 0.0) / 2)
    assert float(direction_loss(logits, y, partner, margin=0.5)) == 0.0
    # no window with a partner: 0, with a gradient path
    z = torch.zeros(2, 3, requires_grad=True)
    out = direction_loss(z, torch.tensor([[2, -100]]), partner)
    out.backward()
    assert float(out.detach()) == 0.0 and z.grad is not None
