"""Time-reversal augmentation, per-class stream weights and the consistency loss."""

import numpy as np
import pytest
import torch

from eventpipe.synthetic import CLASS_NAMES
from eventpipe.training.augment import FrameAugment, reverse_frames, time_reverse_map
from eventpipe.training.config import AugmentConfig, load_train_config
from eventpipe.training.stream_data import IGNORE, SyntheticStreamFrames, reversed_run, step_targets
from eventpipe.training.trainer import consistency_loss, held_for

from .test_stream_data import stream_overrides


def test_time_reverse_map_swaps_motions_not_places():
    m = time_reverse_map(CLASS_NAMES)
    back = {a: CLASS_NAMES[b] for a, b in zip(CLASS_NAMES, m)}
    assert back["circle_clockwise"] == "circle_anticlockwise"
    assert back["circle_anticlockwise"] == "circle_clockwise"
    assert back["swipe_up"] == "swipe_down" and back["swipe_left"] == "swipe_right"
    # the waving hand's side is a place, not a motion; periodic actions look the same backwards
    for same in ("wave_left_hand", "wave_right_hand", "clap", "jump", "push", "idle"):
        assert back[same] == same
    # a motion whose reverse is not a class cannot be reversed
    assert time_reverse_map(["swipe_left", "rotate_clockwise"]).tolist() == [-1, -1]
    assert time_reverse_map(["move_up", "move_down", "counter_clockwise", "clockwise"]).tolist() == [1, 0, 3, 2]


def test_reverse_frames_reverses_order_and_swaps_polarity():
    x = torch.arange(3 * 2 * 1 * 2, dtype=torch.float32).reshape(3, 2, 1, 2)
    r = reverse_frames(x)
    for t in range(3):
        assert torch.equal(r[t, 0], x[2 - t, 1]) and torch.equal(r[t, 1], x[2 - t, 0])
    with pytest.raises(ValueError, match="T, 2, H, W"):
        reverse_frames(torch.zeros(3, 1, 4, 4))


def test_reversed_run_targets_follow_the_backwards_switch():
    """Windows of 100 ms every 50 ms around a switch at 3.0 s (action 4 then 7).  Backwards, a
    window's truth is the action where it began, and the 100 ms grace follows the switch
    in backwards time."""
    S = 3_000_000
    t_end = np.arange(2_800_000, 3_400_001, 50_000)
    truth = np.where(t_end <= S, 4, 7)
    tr, te = reversed_run(truth, t_end, 100_000, S)
    # backwards window j is forwards window 12 - j; it began at t_end - 100 ms
    starts = (t_end - 100_000)[::-1]
    assert tr.tolist() == [7 if s >= S else 4 for s in starts]
    y = step_targets(tr, te, S, 0, 100_000)
    # forwards windows starting 50 and 100 ms before the switch end (backwards) within the grace
    assert y.tolist() == [7] * 7 + [IGNORE, IGNORE] + [4] * 4


def test_reversed_run_without_the_start_segment_is_unknown():
    S = 1_000_000
    t_end = np.array([1_050_000, 1_100_000, 1_150_000])  # the first begins in segment 0 (unseen)
    tr, _ = reversed_run(np.array([2, 2, 2]), t_end, 100_000, S)
    assert tr.tolist() == [2, 2, -1]


def test_clip_augment_time_reverse_swaps_the_label():
    cfg = AugmentConfig(hflip=0.0, event_drop=0.0, crop_scale=(1.0, 1.0), crop_aspect=0.0,
                        time_reverse=1.0)
    aug = FrameAugment(cfg, CLASS_NAMES)
    x = torch.rand(4, 2, 8, 8)
    y, lab = aug(x.clone(), CLASS_NAMES.index("swipe_up"), np.random.default_rng(0))
    assert CLASS_NAMES[lab] == "swipe_down" and torch.allclose(y, reverse_frames(x))
    y, lab = aug(x.clone(), CLASS_NAMES.index("clap"), np.random.default_rng(0))
    assert CLASS_NAMES[lab] == "clap" and torch.allclose(y, reverse_frames(x))


def test_stream_items_reversed_and_class_weighted(tmp_path):
    base = stream_overrides(tmp_path, **{"data.augment.hflip": 0.0, "data.augment.event_drop": 0.0})
    plain = SyntheticStreamFrames(load_train_config(None, base).data, "train")
    # weight a class these (seeded, short) reversed runs really hold, so the check below runs
    rev0 = SyntheticStreamFrames(load_train_config(None, base + [
        "data.augment.time_reverse=1.0"]).data, "train")
    held = np.concatenate([rev0[i][1].numpy() for i in range(len(rev0))])
    weighted = CLASS_NAMES[int(np.bincount(held[held >= 0]).argmax())]
    rev = SyntheticStreamFrames(load_train_config(None, base + [
        "data.augment.time_reverse=1.0", f"data.class_weights={{{weighted}=3.0}}"]).data, "train")
    rmap = time_reverse_map(CLASS_NAMES)
    seen_weight = False
    for i in range(len(plain)):
        x0, y0, w0 = plain[i]
        x1, y1, w1 = rev[i]
        assert torch.allclose(x1, reverse_frames(x0))        # the same run, played backwards
        fwd_truth = y0[y0 >= 0]
        back = y1[y1 >= 0]
        # every action seen backwards is the reverse of one seen forwards in that run
        assert set(back.tolist()) <= {int(rmap[t]) for t in fwd_truth.tolist()} | set(
            rmap[plain.truth].tolist())
        cw = y1 == CLASS_NAMES.index(weighted)
        if cw.any():
            seen_weight = True
            assert torch.all(w1[cw] >= 3.0)
        assert torch.all(w1[(y1 >= 0) & ~cw] <= 4.0)
    assert seen_weight, "no run held the weighted class: the weight check never ran"
    with pytest.raises(ValueError, match="not a class"):
        SyntheticStreamFrames(load_train_config(None, base + ["data.class_weights={spin=2.0}"]).data,
                              "train")


def test_consistency_loss_counts_only_same_target_neighbours():
    # two runs of 3 windows, 2 classes; probabilities through softmax of hand-made logits
    p = torch.tensor([[[0.9, 0.1], [0.5, 0.5], [0.5, 0.5]],
                      [[0.2, 0.8], [0.6, 0.4], [0.6, 0.4]]])
    logits = p.log().reshape(6, 2)
    y = torch.tensor([[0, 0, IGNORE], [1, 0, 0]])
    # qualifying pairs: run 0 (0,1): change 0.4 per class -> 0.32; run 1 (1,2): 0
    assert float(consistency_loss(logits, y)) == pytest.approx((0.32 + 0.0) / 2)
    assert float(consistency_loss(logits, torch.tensor([[0, 1, 0], [IGNORE] * 3]))) == 0.0


def test_held_for_counts_windows_of_one_valid_target_in_a_row():
    y = torch.tensor([[0, 0, 0, IGNORE, IGNORE, 1, 1, 1], [2, 2, 1, 1, 1, 1, IGNORE, 1]])
    assert held_for(y).tolist() == [[1, 2, 3, 0, 0, 1, 2, 3], [1, 2, 1, 2, 3, 4, 0, 1]]


def test_consistency_settle_frees_the_windows_just_after_a_switch():
    # one run of 6 windows, 2 classes: truth a, a, a, b, b, b; the probabilities of class 0 by
    # window (class 1 = 1 - p): a 0.9, 0.5, 0.9, then b windows 0.5, 0.1, 0.3
    p0 = torch.tensor([0.9, 0.5, 0.9, 0.5, 0.1, 0.3])
    logits = torch.stack([p0, 1 - p0], -1).log()
    y = torch.tensor([[0, 0, 0, 1, 1, 1]])
    sq = lambda a, b: 2 * (a - b) ** 2  # noqa: E731  (squared change summed over both classes)
    # settle 0: every same-target pair (0,1) (1,2) (3,4) (4,5)
    every = [sq(0.9, 0.5), sq(0.5, 0.9), sq(0.5, 0.1), sq(0.1, 0.3)]
    assert float(consistency_loss(logits, y)) == pytest.approx(sum(every) / 4)
    # settle 3: only pairs whose later window's target has held 3 windows: (1,2) and (4,5);
    # the change from 0.5 to 0.1 right after the switch (the label turning) is free
    assert float(consistency_loss(logits, y, settle=3)) == pytest.approx((sq(0.5, 0.9) + sq(0.1, 0.3)) / 2)
    # settle longer than any run of one target: no pair, no loss
    assert float(consistency_loss(logits, y, settle=4)) == 0.0


def test_decoder_tuning_scores_settings_with_the_runtime_figures_and_picks_by_the_rule():
    from eventpipe.training.decoder_tune import decode, grid, pick

    names = ["a", "b"]
    # 2 s of windows every 100 ms: truth a for 1 s, then b; the model says b from 1.3 s on
    # with one-window blips of the wrong class in both segments
    t_end = np.arange(1, 21) * 100_000
    truth = np.array([0] * 10 + [1] * 10)
    said = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]
    logits = np.log(np.where(np.eye(2)[said] > 0, 0.9, 0.1))
    raw = decode(logits, truth, t_end, names, ema=0.0)
    assert [m["label"] for m in raw] == [names[k] for k in said]
    rows = grid([(logits, truth, t_end)], names,
                grid=dict(ema=(0.0,), hysteresis=(0.0,), dwell=(1, 2)))
    by = {r["dwell"]: r for r in rows}
    # raw: blips a->b->a, switch at 1.4 s (400 ms after the last a window), blip b->a->b
    assert by[1]["label_changes_per_switch"] == 5.0 and by[1]["switch_catch_rate"] == 1.0
    # dwell 2: no blips; b needs two wins in a row -> labelled at 1.5 s (500 ms: caught)
    assert by[2]["label_changes_per_switch"] == 1.0 and by[2]["switch_catch_rate"] == 1.0
    assert by[2]["settled_accuracy"] == 1.0 and by[1]["settled_accuracy"] < 1.0
    assert pick(rows)["dwell"] == 2
    # the rule: within the flicker limit first, then min(settled, caught)
    fake = [dict(ema=0, hysteresis=0, dwell=1, settled_accuracy=0.99, switch_catch_rate=0.99,
                 label_changes_per_switch=3.0),
            dict(ema=0.5, hysteresis=0, dwell=1, settled_accuracy=0.9, switch_catch_rate=0.7,
                 label_changes_per_switch=1.4),
            dict(ema=0.6, hysteresis=0, dwell=1, settled_accuracy=0.95, switch_catch_rate=0.6,
                 label_changes_per_switch=1.2)]
    assert pick(fake)["ema"] == 0.5 and pick(fake, max_changes=5)["ema"] == 0
