"""docs/synthetic.md "Classes" and "What is randomised": the ranges each seed draws from,
checked over many seeds against the numbers the doc states (class tempos, push growth,
scene texture, flicker and distractor, actor size and brightness, sensor settings), the
actor draws not depending on the label, ``config=`` fixing the sensor, and
``realtime=True`` pacing packets to the wall clock (a fake clock: no timing in tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventpipe.synthetic import SyntheticStream, make_clip
from eventpipe.synthetic import stream as stream_mod
from eventpipe.synthetic.actors import hand_position, sample_actor
from eventpipe.synthetic.clips import sample_clip, sample_emulator_config
from eventpipe.synthetic.scene import sample_scene

N = 300
TEMPO = {"wave_left_hand": (1.5, 3), "wave_right_hand": (1.5, 3), "clap": (1.5, 3),
         "jump": (1.2, 2), "circle_clockwise": (0.8, 1.6), "circle_anticlockwise": (0.8, 1.6),
         "swipe_up": (1.1, 2), "swipe_down": (1.1, 2), "swipe_left": (1.1, 2),
         "swipe_right": (1.1, 2), "push": (0.8, 1.6)}


def _rng(i):
    return np.random.default_rng(1000 + i)


@pytest.mark.parametrize("label", sorted(TEMPO))
def test_class_tempos_are_the_tables(label):
    lo, hi = TEMPO[label]
    f = np.array([sample_actor(label, _rng(i)).freq_hz for i in range(N)])
    assert f.min() >= lo and f.max() <= hi
    assert f.min() < lo + 0.1 * (hi - lo) and f.max() > hi - 0.1 * (hi - lo)  # spans the range


def test_push_palm_grows_to_2_3_times_and_back():
    a = sample_actor("push", _rng(0))
    r = np.array([hand_position(a, t)[2] for t in np.linspace(0, 1 / a.freq_hz, 401)])
    assert r.min() == pytest.approx(a.size, rel=1e-3)
    assert r.max() / r.min() == pytest.approx(2.3, rel=1e-3)


def test_scene_draws_are_in_the_stated_ranges():
    scenes = [sample_scene(_rng(i), (128, 128)) for i in range(N)]
    means = np.array([s.mean_intensity for s in scenes])
    assert means.min() >= 60 and means.max() <= 140
    for s in scenes[:40]:  # contrast 8-35: the texture's spread around the mean
        dev = np.abs(s.background.astype(float) - s.mean_intensity)
        assert np.percentile(dev, 99) <= 35 * 4 and dev.mean() > 8 * 0.2
    amp = np.array([s.flicker_amp for s in scenes])
    hz = np.array([s.flicker_hz for s in scenes])
    assert amp.min() >= 0 and amp.max() <= 0.06 and hz.min() >= 0.3 and hz.max() <= 4
    with_blob = [s for s in scenes if s.distractors]
    assert all(len(s.distractors) <= 1 for s in scenes)
    assert abs(len(with_blob) / N - 0.6) < 4 * math.sqrt(0.24 / N)  # probability 0.6
    for s in with_blob:
        d = s.distractors[0]
        assert 1.5 <= d.radius <= 4 and 10 <= math.hypot(d.vx, d.vy) <= 40
        # the level is a whole number, truncated: within one level of 25-60 off the mean
        assert 25 - 1 < abs(d.intensity - s.mean_intensity) < 60 + 1


def test_actor_size_and_brightness_are_in_the_stated_ranges():
    for i in range(N):
        scene = sample_scene(_rng(i), (128, 96))
        fig = sample_actor("clap", _rng(5000 + i), (128, 96), scene.mean_intensity)
        hand = sample_actor("push", _rng(5000 + i), (128, 96), scene.mean_intensity)
        assert 0.55 * 96 <= fig.size <= 0.80 * 96  # figure 55-80 % of the height
        assert 0.06 * 96 <= hand.size <= 0.09 * 96  # palm radius 6-9 % (of the smaller side)
        lvl, mean = fig.intensity, scene.mean_intensity
        if lvl >= 180:  # bright: 180-250 and at least 2x the background mean, capped at 250
            # (a whole level, truncated: at most one level under 2x the mean)
            assert lvl <= 250 and (lvl > 2 * mean - 1 or lvl == 250), (lvl, mean)
        else:  # dark: 3-30 and at most 0.4x the mean
            assert 3 <= lvl <= 30 and lvl <= 0.4 * mean, (lvl, mean)


def test_sensor_draws_are_in_the_stated_ranges():
    cfgs = [sample_emulator_config(_rng(i)) for i in range(N)]
    for c in cfgs:
        assert 0.15 <= c.neg_threshold <= 0.3
        assert 0.9 - 1e-12 <= c.pos_threshold / c.neg_threshold <= 1.1 + 1e-12
        assert c.sigma_threshold == 0.03 and 0 <= c.refractory_us <= 500
        assert 0 <= c.shot_noise_rate_hz <= 0.2 and 0 <= c.leak_rate_hz <= 0.1
    assert len({c.neg_threshold for c in cfgs}) == N  # drawn, not fixed


def test_two_labels_with_one_seed_share_scene_place_size_and_tempo():
    for seed in range(5):
        (s1, a1), (s2, a2) = sample_clip("wave_left_hand", seed), sample_clip("wave_right_hand", seed)
        assert np.array_equal(s1.background, s2.background) and s1.distractors == s2.distractors
        assert (a1.cx, a1.cy, a1.size, a1.freq_hz, a1.phase) == (a2.cx, a2.cy, a2.size,
                                                                 a2.freq_hz, a2.phase)
    a, b = sample_clip("wave_left_hand", 0)[1], sample_clip("wave_left_hand", 1)[1]
    assert (a.cx, a.size) != (b.cx, b.size)


def test_make_clip_config_fixes_the_sensor():
    quiet = {"pos_threshold": 50.0, "neg_threshold": 50.0, "sigma_threshold": 0.0}
    assert len(make_clip("clap", 3, (32, 32), 100_000, config=quiet)) == 0
    fine = {"pos_threshold": 0.05, "neg_threshold": 0.05, "sigma_threshold": 0.0}
    a = make_clip("clap", 3, (32, 32), 100_000, config=fine)
    b = make_clip("clap", 4, (32, 32), 100_000, config=fine)
    assert len(a) > len(make_clip("clap", 3, (32, 32), 100_000)) and not np.array_equal(a, b)


class _FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, s):
        assert s > 0
        self.now += s
        self.slept += s


def test_realtime_paces_packets_to_the_wall_clock(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(stream_mod, "time", clock)
    stream = SyntheticStream(seed=1, sensor_size=(16, 16), duration_s=0.05, realtime=True)
    seen = [(pk.t_end_us, clock.now) for pk in stream]
    assert len(seen) == 5
    for t_end_us, wall in seen:  # each packet is yielded no earlier than its end time
        assert wall - 100.0 >= t_end_us * 1e-6 - 1e-9
    assert clock.slept == pytest.approx(0.05, abs=1e-6)  # and no later (rendering takes 0 fake s)
    clock2 = _FakeClock()
    monkeypatch.setattr(stream_mod, "time", clock2)
    list(SyntheticStream(seed=1, sensor_size=(16, 16), duration_s=0.05))
    assert clock2.slept == 0.0


@pytest.mark.parametrize("label,axis,sign", [("swipe_right", 0, 1), ("swipe_left", 0, -1),
                                             ("swipe_down", 1, 1), ("swipe_up", 1, -1)])
def test_swipe_crosses_the_whole_frame_and_reenters_from_the_far_edge(label, axis, sign):
    a = sample_actor(label, _rng(7), (96, 64))
    extent = (96, 64)[axis]
    period = 1 / a.freq_hz
    t0 = (1 - a.phase) * period  # the start of a pass
    pos = [hand_position(a, t0 + f * period)[axis] for f in (0.0, 0.5, 0.999, 1.0)]
    start, mid, end, again = pos
    if sign < 0:
        start, end, again = extent - 1 - start, extent - 1 - end, extent - 1 - again
    assert start < -a.size and end > extent - 1 + a.size  # off one edge to off the far one
    assert abs(again - start) < 1e-6 and abs(mid - (extent / 2)) < 1  # and back at the start


def test_stream_uses_stream_config_unless_given_and_crossfades_at_switches():
    from eventpipe.synthetic.stream import STREAM_CONFIG

    assert SyntheticStream().config is STREAM_CONFIG
    assert SyntheticStream(config={"leak_rate_hz": 0.0}).config == {"leak_rate_hz": 0.0}
    kw = {"seed": 2, "switch_every_s": 0.3, "sensor_size": (32, 32), "duration_s": 0.45}
    fade = list(SyntheticStream(crossfade_s=0.1, **kw))
    cut = list(SyntheticStream(crossfade_s=0.0, **kw))
    same = [np.array_equal(a.events, b.events) for a, b in zip(fade, cut)]
    # before the switch the two streams are one (packet 29 holds the ramp to the frame at the
    # switch, where the cut stream shows the new performer already)
    assert all(same[:29])
    assert not all(same[30:40])  # the fade window renders both performers blended


def test_preview_writes_the_class_grid(tmp_path):
    from eventpipe.synthetic.preview import event_image, main

    out = tmp_path / "grid.png"
    assert main([str(out), "--duration-ms", "20"]) == 0
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    ev = np.zeros(2, dtype=[("x", "u2"), ("y", "u2"), ("t", "i8"), ("p", "u1")])
    ev[0] = (0, 0, 10, 1)
    ev[1] = (1, 0, 20, 0)
    pic = event_image(ev, (2, 1))
    assert pic[0, 0].tolist() == [1, 0, 0] and pic[0, 1].tolist() == [0, 0, 1]  # ON red, OFF blue
