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
