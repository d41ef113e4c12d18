"""DVS emulator behaviour: counts, timing, refractory, noise, leak, determinism, contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.emulator import DvsEmulator, EmulatorConfig, make_params, step
from eventpipe.emulator.kernel import emit_events, emit_events_reference, lin_log_reference
from eventpipe.events import EVENT_DTYPE, as_events

CLEAN = {"sigma_threshold": 0.0, "refractory_us": 0}


def run(emu, frames, dt_us=1000, t0=0):
    out = [emu.push(f, t0 + i * dt_us) for i, f in enumerate(frames)]
    return np.concatenate(out)


def check_contract(ev, sensor_size):
    assert ev.dtype == EVENT_DTYPE
    assert as_events(ev) is ev
    if len(ev):
        assert ev["x"].max() < sensor_size[0] and ev["y"].max() < sensor_size[1]
        assert set(np.unique(ev["p"])) <= {0, 1}
        assert np.all(np.diff(ev["t"]) >= 0)


def log_response(i, lin=20.0):
    """v2e lin_log, written out independently."""
    return i * math.log(lin) / lin if i <= lin else math.log(i)


@pytest.mark.parametrize("dark,bright", [(50, 200), (10, 180)])
def test_moving_edge_counts_and_polarity(dark, bright):
    W, H, width = 40, 6, 8
    n_expected = math.floor((log_response(bright) - log_response(dark)) / 0.2)
    frames = []
    for x0 in range(2, 2 + 25):
        f = np.full((H, W), dark, np.uint8)
        f[:, x0:x0 + width] = bright
        frames.append(f)
    emu = DvsEmulator((W, H), CLEAN, seed=0)
    emu.push(frames[0], 0)
    total_on = total_off = 0
    for k, f in enumerate(frames[1:], start=1):
        ev = emu.push(f, k * 1000)
        check_contract(ev, (W, H))
        lead, trail = 2 + k + width - 1, 2 + k - 1
        on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
        assert set(np.unique(on["x"])) == {lead}
        assert set(np.unique(off["x"])) == {trail}
        # every row: the predicted number of events per edge pixel
        assert len(on) == H * n_expected and len(off) == H * n_expected
        total_on += len(on)
        total_off += len(off)
    assert total_on == total_off == 24 * H * n_expected


def test_static_scene_gives_no_events():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (32, 48), dtype=np.uint8)
    emu = DvsEmulator((48, 32), {"refractory_us": 100}, seed=1)
    assert len(run(emu, [frame] * 50)) == 0


def test_static_scene_shot_noise_rate():
    W, H, rate, fps, n = 64, 64, 5.0, 100, 101
    emu = DvsEmulator((W, H), {"shot_noise_rate_hz": rate}, seed=7)
    frame = np.full((H, W), 90, np.uint8)
    ev = run(emu, [frame] * n, dt_us=1_000_000 // fps)
    check_contract(ev, (W, H))
    expected = rate * W * H * (n - 1) / fps
    assert abs(len(ev) - expected) < 5 * math.sqrt(expected)
    assert 0.45 < ev["p"].mean() < 0.55
    assert emu.stats.noise_events == len(ev)
    # spread over pixels and time, not clumped
    assert len(np.unique(ev["x"].astype(int) * H + ev["y"])) > 0.9 * W * H * (1 - math.exp(-rate))


def test_leak_events_are_on_at_the_leak_rate():
    W, H, rate = 32, 32, 2.0
    emu = DvsEmulator((W, H), {"leak_rate_hz": rate, "sigma_threshold": 0.0}, seed=2)
    frame = np.full((H, W), 120, np.uint8)
    ev = run(emu, [frame] * 201, dt_us=10_000)  # 2 s
    assert np.all(ev["p"] == 1)
    expected = rate * W * H * 2.0
    assert abs(len(ev) - expected) < 0.05 * expected


def test_linear_ramp_timestamps_interpolate():
    # log intensity rises 0.07 per ms: a crossing every 0.2 / 0.07 ms, across frame boundaries
    W, H, slope_per_us, dt = 4, 3, 0.07e-3, 10_000
    times = [i * dt for i in range(6)]
    frames = [np.full((H, W), 30.0 * math.exp(slope_per_us * t) / 255.0) for t in times]
    emu = DvsEmulator((W, H), CLEAN, seed=0)
    emu.push(frames[0], times[0])
    got = []
    for f, t_prev, t in zip(frames[1:], times, times[1:]):
        ev = emu.push(f, t)
        assert np.all((ev["t"] > t_prev) & (ev["t"] <= t))
        assert np.all(ev["p"] == 1)
        got.append(ev)
    ev = np.concatenate(got)
    k = np.arange(1, math.floor(slope_per_us * times[-1] / 0.2 + 1e-9) + 1)
    expected_t = k * 0.2 / slope_per_us
    assert len(ev) == W * H * len(k)
    per_pixel = ev["t"].reshape(len(k), W * H)  # sorted by time, ties in raster order
    assert np.all(np.abs(per_pixel - expected_t[:, None]) <= 1)


def test_refractory_period_respected():
    W, H, refr = 8, 4, 3000
    frames = [np.full((H, W), 20.0 * math.exp(1.5 * i)) / 255.0 for i in range(4)]
    cfg = {"sigma_threshold": 0.0, "refractory_us": refr}
    ev = run(DvsEmulator((W, H), cfg, seed=0), frames, dt_us=10_000)
    free = run(DvsEmulator((W, H), CLEAN, seed=0), frames, dt_us=10_000)
    assert 0 < len(ev) < len(free)
    for pix in np.unique(ev["x"].astype(int) * H + ev["y"]):
        t = np.sort(ev["t"][ev["x"].astype(int) * H + ev["y"] == pix])
        assert np.all(np.diff(t) >= refr)
    # suppressed crossings moved the reference: a steady scene afterwards stays silent
    emu = DvsEmulator((W, H), cfg, seed=0)
    run(emu, frames, dt_us=10_000)
    assert len(run(emu, [frames[-1]] * 5, dt_us=10_000, t0=40_000)) == 0
    assert emu.stats.suppressed_refractory == len(free) - len(ev)


def test_lowpass_delays_but_keeps_the_count():
    W, H = 4, 4
    frames = [np.full((H, W), 40, np.uint8)] + [np.full((H, W), 200, np.uint8)] * 100
    fast = run(DvsEmulator((W, H), CLEAN, seed=0), frames, dt_us=10_000)
    slow = run(DvsEmulator((W, H), {**CLEAN, "cutoff_hz": 5.0}, seed=0), frames, dt_us=10_000)
    assert len(slow) == len(fast) > 0
    assert np.median(slow["t"]) > np.median(fast["t"]) + 5_000


def test_deterministic_by_seed():
    cfg = {"shot_noise_rate_hz": 3.0, "leak_rate_hz": 0.5, "refractory_us": 200}
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 30), dtype=np.uint8) for _ in range(10)]
    a = run(DvsEmulator((30, 20), cfg, seed=5), frames)
    b = run(DvsEmulator((30, 20), cfg, seed=5), frames)
    c = run(DvsEmulator((30, 20), cfg, seed=6), frames)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    emu = DvsEmulator((30, 20), cfg, seed=5)
    run(emu, frames)
    emu.reset()
    assert np.array_equal(run(emu, frames), a)


def test_step_is_pure_and_matches_the_class():
    params = make_params((10, 10), {"shot_noise_rate_hz": 10.0}, seed=1)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (10, 10), dtype=np.uint8) for _ in range(5)]
    _, s0 = step(frames[0], 0, None, params)
    e1, s1 = step(frames[1], 1000, s0, params)
    e1b, _ = step(frames[1], 1000, s0, params)  # s0 untouched: same result again
    assert np.array_equal(e1, e1b) and s0.t_us == 0 and s1.t_us == 1000
    emu = DvsEmulator((10, 10), {"shot_noise_rate_hz": 10.0}, seed=1)
    emu.push(frames[0], 0)
    assert np.array_equal(emu.push(frames[1], 1000), e1)


def test_mismatch_spreads_thresholds():
    p = make_params((100, 100), {"sigma_threshold": 0.03}, seed=0)
    assert abs(p.pos_thr.mean() - 0.2) < 0.002 and abs(p.pos_thr.std() - 0.03) < 0.002
    assert not np.array_equal(p.pos_thr, p.neg_thr)
    assert np.array_equal(p.pos_thr, make_params((100, 100), None, seed=0).pos_thr)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), refractory=st.integers(0, 3000),
       dt=st.integers(1, 20_000), scale=st.floats(0.01, 3.0))
def test_kernel_matches_reference(seed, n, refractory, dt, scale):
    rng = np.random.default_rng(seed)
    w = int(rng.integers(1, 12))
    lp0 = rng.uniform(0, 5, n)
    lp1 = lp0 + rng.normal(0, scale, n)
    pos, neg = rng.uniform(0.05, 0.3, n), rng.uniform(0.05, 0.3, n)
    ref = lp0 + rng.uniform(-0.99, 0.99, n) * np.minimum(pos, neg)
    last = np.where(rng.random(n) < 0.5, -10**9, 1000 - int(rng.integers(0, 3000))).astype(np.int64)
    t0, t1 = 1000, 1000 + dt
    ref_a, last_a = ref.copy(), last.copy()
    x, y, t, p, _, _ = emit_events(lp0, lp1, ref_a, last_a, pos, neg, np.zeros(n), t0, t1,
                                   refractory, np.zeros(n + 1, np.int64), np.empty(0, np.int64),
                                   np.empty(0, np.uint8), w)
    ref_b, last_b = ref.copy(), last.copy()
    want = emit_events_reference(lp0, lp1, ref_b, last_b, pos, neg, t0, t1, refractory, w)
    assert list(zip(x.tolist(), y.tolist(), t.tolist(), p.tolist())) == want
    assert np.allclose(ref_a, ref_b) and np.array_equal(last_a, last_b)
    # invariant: afterwards every pixel sits less than one threshold from its reference
    d = lp1 - ref_a
    assert np.all((d < pos * (1 + 1e-9)) & (-d < neg * (1 + 1e-9)))
    assert np.all((t > t0) & (t <= t1))


def test_lin_log_is_continuous_and_log_above():
    i = np.array([0.0, 10.0, 20.0, 20.0001, 100.0])
    v = lin_log_reference(i, 20.0, 1e-3)
    assert v[0] == 0 and abs(v[2] - math.log(20)) < 1e-12 and abs(v[3] - v[2]) < 1e-4
    assert abs(v[4] - math.log(100)) < 1e-12


def test_frame_formats_agree():
    rng = np.random.default_rng(4)
    gray = [rng.integers(0, 256, (12, 16), dtype=np.uint8) for _ in range(4)]
    bgr = [np.repeat(g[:, :, None], 3, axis=2) for g in gray]
    flt = [g / 255.0 for g in gray]
    a = run(DvsEmulator((16, 12), None, seed=3), gray)
    assert np.array_equal(a, run(DvsEmulator((16, 12), None, seed=3), bgr))
    assert np.array_equal(a, run(DvsEmulator((16, 12), None, seed=3), flt))


def test_bad_input_raises():
    emu = DvsEmulator((16, 12))
    with pytest.raises(ValueError, match="16x12"):
        emu.push(np.zeros((16, 12), np.uint8), 0)
    with pytest.raises(ValueError, match="dtype"):
        emu.push(np.zeros((12, 16), np.int32), 0)
    emu.push(np.zeros((12, 16), np.uint8), 10)
    with pytest.raises(ValueError, match="not after"):
        emu.push(np.zeros((12, 16), np.uint8), 10)


def test_config_from_dict_errors():
    assert EmulatorConfig.from_dict({"pos_threshold": 0.3}).pos_threshold == 0.3
    with pytest.raises(ValueError, match="did you mean .pos_threshold"):
        EmulatorConfig.from_dict({"pos_thresold": 0.3})
    with pytest.raises(ValueError, match="must be > 0"):
        EmulatorConfig(neg_threshold=0)
    with pytest.raises(ValueError, match="finite"):
        EmulatorConfig(cutoff_hz=float("nan"))
    with pytest.raises(ValueError, match=">= 0"):
        EmulatorConfig(refractory_us=-1)


def test_counting_sort_is_stable_and_matches_argsort():
    from eventpipe.emulator.kernel import sort_by_time
    rng = np.random.default_rng(2)
    n = 5000
    t = rng.integers(101, 400, n).astype(np.int64)
    x = np.arange(n, dtype=np.uint16)
    y = rng.integers(0, 50, n).astype(np.uint16)
    p = rng.integers(0, 2, n).astype(np.uint8)
    xs, ys, ts, ps = sort_by_time(x, y, t, p, 100, 400)
    o = np.argsort(t, kind="stable")
    assert np.array_equal(xs, x[o]) and np.array_equal(ts, t[o])
    assert np.array_equal(ys, y[o]) and np.array_equal(ps, p[o])


def test_long_interval_uses_the_same_order():
    # a 10 s gap between frames with few events takes the argsort path
    f0 = np.full((6, 8), 40, np.uint8)
    f1 = f0.copy()
    f1[:, 3] = 200
    a = DvsEmulator((8, 6), CLEAN, seed=0)
    a.push(f0, 0)
    ev = a.push(f1, 10_000_000)
    assert len(ev) and np.all(np.diff(ev["t"]) >= 0)
    assert np.all(np.diff(ev["y"].astype(int))[np.diff(ev["t"]) == 0] >= 0)
