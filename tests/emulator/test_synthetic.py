"""Synthetic actions: determinism, every class alive, classes tell apart, stream schedule."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import eventpipe.synthetic as synthetic
from eventpipe.events import EVENT_DTYPE
from eventpipe.synthetic import (
    CLASS_NAMES,
    SyntheticActionDataset,
    SyntheticStream,
    clip_seed,
    frame_times_us,
    make_clip,
    render_clip,
)
from eventpipe.synthetic.actors import hand_position
from eventpipe.synthetic.clips import sample_clip

SIZE = (128, 128)
SEEDS = (1, 2, 3)


@functools.lru_cache(maxsize=None)
def clip(label, seed):
    ev = make_clip(label, seed, SIZE)
    ev.flags.writeable = False
    return ev


def centroids(ev, bin_us=20_000, min_events=50):
    """Per-time-bin event centroids ``(t_mid, x, y)`` of bins with enough events."""
    edges = np.arange(0, ev["t"].max() + bin_us, bin_us)
    idx = np.searchsorted(ev["t"], edges)
    out = []
    for a, b, t in zip(idx[:-1], idx[1:], edges[:-1]):
        if b - a >= min_events:
            out.append((t + bin_us / 2, ev["x"][a:b].mean(), ev["y"][a:b].mean()))
    return np.array(out)


def test_all_names_exported():
    for name in synthetic.__all__:
        assert hasattr(synthetic, name)
    assert len(CLASS_NAMES) >= 10 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)


@pytest.mark.parametrize("label", CLASS_NAMES)
def test_every_class_produces_valid_events(label):
    ev = clip(label, 1)
    assert ev.dtype == EVENT_DTYPE and len(ev) > 2000
    assert ev["x"].max() < SIZE[0] and ev["y"].max() < SIZE[1]
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].min() > 0 and ev["t"].max() <= 1_000_000
    assert 0 < ev["p"].mean() < 1


def test_deterministic_by_seed():
    a = make_clip("clap", 11, (64, 48), 300_000)
    assert np.array_equal(a, make_clip("clap", 11, (64, 48), 300_000))
    assert not np.array_equal(a, make_clip("clap", 12, (64, 48), 300_000))
    f = render_clip("push", 4, (64, 48), 200_000, fps=100)
    assert f.shape == (21, 48, 64) and f.dtype == np.uint8
    assert np.array_equal(f, render_clip("push", 4, (64, 48), 200_000, fps=100))
    assert np.array_equal(frame_times_us(200_000, 100), np.arange(21) * 10_000)


@pytest.mark.parametrize("label,axis,sign", [("swipe_left", 0, -1), ("swipe_right", 0, 1),
                                             ("swipe_up", 1, -1), ("swipe_down", 1, 1)])
def test_swipes_move_the_way_they_say(label, axis, sign):
    for seed in SEEDS:
        c = centroids(clip(label, seed))
        v = np.diff(c[:, 1 + axis])  # median is robust to the wrap from one edge to the other
        across = np.diff(c[:, 2 - axis])
        assert sign * np.median(v) > 0.5, (seed, np.median(v))
        assert abs(np.median(v)) > 2 * abs(np.median(across))


@pytest.mark.parametrize("label,sign", [("circle_clockwise", 1), ("circle_anticlockwise", -1)])
def test_circles_turn_the_way_they_say(label, sign):
    for seed in SEEDS:
        c = centroids(clip(label, seed))
        pos = c[:-1, 1:] - c[:, 1:].mean(axis=0)
        vel = np.diff(c[:, 1:], axis=0)
        cross = pos[:, 0] * vel[:, 1] - pos[:, 1] * vel[:, 0]  # > 0: clockwise on screen (y down)
        assert sign * np.mean(np.sign(cross)) > 0.5, seed


def test_waving_hand_is_on_its_side():
    for seed in SEEDS + (4, 5):
        _, actor = sample_clip("wave_left_hand", seed, SIZE)  # same place for all three labels

        def mean_x(label):  # over the figure's box, so a passing distractor does not count
            ev = clip(label, seed)
            box = (np.abs(ev["x"] - actor.cx) < 0.45 * actor.size) & \
                (ev["y"] > actor.cy - 0.65 * actor.size) & (ev["y"] < actor.cy + 0.5 * actor.size)
            return ev["x"][box].mean()

        left, right, both = mean_x("wave_left_hand"), mean_x("wave_right_hand"), mean_x("clap")
        assert left < actor.cx - 3 and right > actor.cx + 3, (seed, left, actor.cx, right)
        assert left < both < right and abs(both - actor.cx) < 3


def test_jump_moves_vertically():
    for seed in SEEDS:
        c = centroids(clip("jump", seed))
        assert np.ptp(c[:, 2]) > 2 * np.ptp(c[:, 1]) and np.ptp(c[:, 2]) > 5, seed


def test_push_spreads_with_the_hand_size():
    for seed in SEEDS:
        ev = clip("push", seed)
        _, actor = sample_clip("push", seed, SIZE)
        spread, radius = [], []
        for t0 in range(0, 1_000_000, 40_000):
            e = ev[(ev["t"] >= t0) & (ev["t"] < t0 + 40_000)]
            near = np.hypot(e["x"] - actor.cx, e["y"] - actor.cy) < 3.5 * actor.size
            if near.sum() > 100:
                d = np.hypot(e["x"][near] - actor.cx, e["y"][near] - actor.cy)
                spread.append(np.median(d))
                radius.append(hand_position(actor, (t0 + 20_000) * 1e-6)[2])
        assert np.corrcoef(spread, radius)[0, 1] > 0.5, seed


def test_dataset_splits_and_items():
    train = SyntheticActionDataset(2, seed=5, sensor_size=(48, 48), duration_us=100_000)
    test = SyntheticActionDataset(2, seed=5, sensor_size=(48, 48), duration_us=100_000, split="test")
    n = len(CLASS_NAMES)
    assert len(train) == 2 * n
    assert [train.label_of(i) for i in range(len(train))] == list(range(n)) * 2
    seeds_train = {train.seed_of(i) for i in range(len(train))}
    seeds_test = {test.seed_of(i) for i in range(len(test))}
    assert len(seeds_train) == len(train) and not seeds_train & seeds_test
    assert not {clip_seed(s, "train", i) for s in range(4) for i in range(50)} & \
        {clip_seed(s, "test", i) for s in range(4) for i in range(50)}
    ev, label = train[n + 3]
    assert label == 3 and ev.dtype == EVENT_DTYPE and len(ev) > 0
    assert np.array_equal(train[-1][0], train[len(train) - 1][0])
    assert not np.array_equal(train[0][0], test[0][0])
    with pytest.raises(IndexError):
        train[len(train)]
    with pytest.raises(ValueError, match="split"):
        SyntheticActionDataset(1, split="val")
    sub = SyntheticActionDataset(1, classes=("swipe_left", "push"), transform=len,
                                 sensor_size=(32, 32), duration_us=50_000)
    assert len(sub) == 2 and isinstance(sub[1][0], int) and sub[1][1] == 1


def test_unknown_label_suggests():
    with pytest.raises(ValueError, match="swipe_left"):
        make_clip("swipe_lef", 0)


def test_stream_truth_switches_on_schedule():
    stream = SyntheticStream(seed=4, switch_every_s=0.5, sensor_size=(64, 64), duration_s=2.0)
    packets = list(stream)
    assert len(packets) == 200
    labels = stream.labels(4)
    assert all(a != b for a, b in zip(labels, labels[1:]))
    for k, pk in enumerate(packets):
        assert (pk.t_start_us, pk.t_end_us) == (k * 10_000, (k + 1) * 10_000)
        assert pk.truth == labels[k // 50] == stream.truth_at(pk.t_start_us)
        assert pk.truth_name == CLASS_NAMES[pk.truth]
        ev = pk.events
        assert np.all((ev["t"] >= pk.t_start_us) & (ev["t"] < pk.t_end_us))
    counts = np.array([len(p.events) for p in packets])
    # seamless: events keep flowing through each switch without a burst
    assert np.all(counts[1:] > 0)
    for b in (50, 100, 150):
        assert counts[b - 2:b + 22].max() < 4 * np.percentile(counts, 90)
    again = list(SyntheticStream(seed=4, switch_every_s=0.5, sensor_size=(64, 64), duration_s=0.3))
    assert all(np.array_equal(a.events, b.events) for a, b in zip(again, packets))


def test_stream_arguments():
    with pytest.raises(ValueError):
        SyntheticStream(classes=("push",))
    with pytest.raises(ValueError):
        SyntheticStream(switch_every_s=0.1, crossfade_s=0.2)
    s = SyntheticStream(seed=1, classes=("swipe_left", "swipe_right"), duration_s=0.05,
                        sensor_size=(32, 32))
    assert {p.truth_name for p in s} <= {"swipe_left", "swipe_right"}
