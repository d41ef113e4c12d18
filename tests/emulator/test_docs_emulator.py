"""docs/emulator.md, the claims no other test held: the parameter table's defaults, the
worked "3.5 thresholds give 3 events and leave half a threshold", a return to the old
intensity giving as many OFF as ON events, noise not changing the mismatch, and the first
frame returning no events."""

from __future__ import annotations

import math

import numpy as np

from eventpipe.emulator import DvsEmulator, EmulatorConfig, make_params

DEFAULTS = {"pos_threshold": 0.2, "neg_threshold": 0.2, "sigma_threshold": 0.03,
            "min_threshold": 0.01, "lin_log_threshold": 20.0, "log_eps": 1e-3,
            "refractory_us": 0, "cutoff_hz": 0.0, "shot_noise_rate_hz": 0.0,
            "leak_rate_hz": 0.0, "leak_jitter_fraction": 0.1}


def test_parameter_table_defaults():
    cfg = EmulatorConfig()
    assert {k: getattr(cfg, k) for k in DEFAULTS} == DEFAULTS


def _frame(intensity):  # one pixel, float frames are 0-1 x 255
    return np.full((1, 1), intensity / 255.0, np.float64)


def test_three_and_a_half_thresholds_give_three_events_and_keep_the_half():
    """Above `lin_log_threshold` the response is log(I): steps of exact multiples of the
    0.2 threshold, hand-worked."""
    emu = DvsEmulator((1, 1), {"sigma_threshold": 0.0}, seed=0)
    i0 = 100.0
    steps = [3.5, 4.0, 0.0]  # log-intensity above i0, in thresholds
    assert len(emu.push(_frame(i0), 0)) == 0  # the first frame initialises, no events
    out = [emu.push(_frame(i0 * math.exp(0.2 * k)), 1000 * (n + 1)) for n, k in enumerate(steps)]
    assert [len(e) for e in out] == [3, 1, 4]  # 3 (half left), +1 (the half + 0.5), back: 4
    assert out[0]["p"].tolist() == [1, 1, 1] and out[1]["p"].tolist() == [1]
    assert out[2]["p"].tolist() == [0, 0, 0, 0]  # as many OFF as ON on the way back
    # the crossings of the 3.5-threshold ramp sit at 1/3.5, 2/3.5, 3/3.5 of the interval
    assert out[0]["t"].tolist() == [round(1000 * k / 3.5) for k in (1, 2, 3)]


def test_turning_noise_on_does_not_change_the_mismatch():
    quiet = make_params((20, 10), None, seed=3)
    noisy = make_params((20, 10), {"shot_noise_rate_hz": 5.0, "leak_rate_hz": 0.1}, seed=3)
    np.testing.assert_array_equal(quiet.pos_thr, noisy.pos_thr)
    np.testing.assert_array_equal(quiet.neg_thr, noisy.neg_thr)


def test_frame_intensity_scales_each_dtype_to_0_255():
    """Step 1: "uint8 as is, uint16 x 255/65535, float taken as 0-1 x 255 (negatives clipped).
    BGR/BGRA frames go to gray with `cv2.cvtColor`"."""
    import cv2

    from eventpipe.emulator.emulator import frame_intensity

    u8 = np.array([[0, 51, 255]], np.uint8)
    assert frame_intensity(u8, (3, 1)).tolist() == [0.0, 51.0, 255.0]
    u16 = np.array([[0, 13107, 65535]], np.uint16)  # 13107 = 65535 / 5
    np.testing.assert_allclose(frame_intensity(u16, (3, 1)), [0.0, 51.0, 255.0])
    flt = np.array([[-0.5, 0.2, 1.0]])
    np.testing.assert_allclose(frame_intensity(flt, (3, 1)), [0.0, 51.0, 255.0])
    rng = np.random.default_rng(0)
    bgra = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)  # distinct channels, alpha ignored
    want = cv2.cvtColor(bgra[:, :, :3], cv2.COLOR_BGR2GRAY).astype(np.float64).reshape(-1)
    np.testing.assert_array_equal(frame_intensity(bgra, (5, 4)), want)
    np.testing.assert_array_equal(frame_intensity(bgra[:, :, :3], (5, 4)), want)


def test_lin_log_threshold_0_is_the_pure_log_of_i_plus_eps():
    """Step 2: "`lin_log_threshold = 0` switches to `log(I + log_eps)`": one pixel going from
    I = 0 to I = 1 crosses log(1 + eps) - log(eps) = 6.9 log units, 34 thresholds of 0.2 (the
    linear response below 20 would give log(20)/20 = 0.15, no event)."""
    eps = 1e-3
    n = math.floor((math.log(1 + eps) - math.log(eps)) / 0.2)
    got = []
    for thr in (0.0, 20.0):
        emu = DvsEmulator((1, 1), {"sigma_threshold": 0.0, "lin_log_threshold": thr}, seed=0)
        emu.push(np.zeros((1, 1), np.uint8), 0)
        got.append(len(emu.push(np.ones((1, 1), np.uint8), 1000)))
    assert got == [n, 0] and n == 34


def test_leak_starts_each_reference_a_random_fraction_of_a_threshold_below():
    """Step 8: "With leak on, the first frame starts each `R` a random fraction of a threshold
    below `L`, so leak events are not synchronised across the array": on a static scene the
    pixels' first leak events are spread over the leak period, not all at one time."""
    from eventpipe.emulator import step

    cfg = {"leak_rate_hz": 10.0, "leak_jitter_fraction": 0.0, "sigma_threshold": 0.0}
    params = make_params((32, 32), cfg, seed=4)
    frame = np.full((32, 32), 120, np.uint8)
    _, state = step(frame, 0, None, params)
    below = state.lp_log - state.ref_log
    assert np.all(below >= 0) and np.all(below < 0.2) and below.std() > 0.04  # U(0, 0.2)
    ev, _ = step(frame, 100_000, state, params)  # one leak period: 100 ms
    first = {}
    for x, y, t in zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist()):
        first.setdefault((x, y), t)
    assert np.all(ev["p"] == 1) and len(first) > 0.95 * 32 * 32
    times = np.array(list(first.values()))
    assert times.std() > 0.2 * 100_000  # uniform over 100 ms: std ~ 29 ms


def test_shot_noise_obeys_the_refractory_rule_and_does_not_move_the_reference():
    """Step 7: "Noise events obey the refractory rule and do not move `R`"."""
    from eventpipe.emulator import step

    cfg = {"shot_noise_rate_hz": 2000.0, "refractory_us": 5000, "sigma_threshold": 0.0}
    params = make_params((8, 8), cfg, seed=2)
    frame = np.full((8, 8), 120, np.uint8)
    _, state = step(frame, 0, None, params)
    ref0 = state.ref_log.copy()
    ev, state = step(frame, 200_000, state, params)
    assert len(ev) > 100
    np.testing.assert_array_equal(state.ref_log, ref0)  # noise moved no reference
    for pix in set(zip(ev["x"].tolist(), ev["y"].tolist())):
        t = ev["t"][(ev["x"] == pix[0]) & (ev["y"] == pix[1])]
        assert np.all(np.diff(t) >= 5000), pix  # one pixel's events 5 ms apart at least
    free = make_params((8, 8), {**cfg, "refractory_us": 0}, seed=2)
    _, s = step(frame, 0, None, free)
    assert len(step(frame, 200_000, s, free)[0]) > len(ev)  # the rule suppressed some


def test_lowpass_bandwidth_grows_with_intensity_so_dark_pixels_lag():
    """Step 3: `eps = min(1, (I + 20)/275 * dt/tau)`: "the bandwidth grows with intensity, so
    dark pixels lag": two pixels stepping by the same factor (x4), one dark (25 -> 100) and
    one bright (60 -> 240), emit the same number of events, the dark one later."""
    frames = [np.array([[25, 60]], np.uint8)] + [np.array([[100, 240]], np.uint8)] * 60
    cfg = {"sigma_threshold": 0.0, "cutoff_hz": 5.0}
    emu = DvsEmulator((2, 1), cfg, seed=0)
    ev = np.concatenate([emu.push(f, 10_000 * i) for i, f in enumerate(frames)])
    dark, bright = ev[ev["x"] == 0], ev[ev["x"] == 1]
    assert len(dark) == len(bright) == math.floor(math.log(4) / 0.2)
    assert np.all(dark["t"] > bright["t"])  # each crossing of the dark pixel comes later
