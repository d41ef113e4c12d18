"""The one-shot time-window kernel's fast loop (``_window_loop._bin_window_fast``: ordinary
events two at a time with one test per pair, no saturation test while the frame cannot
reach the maximum, everything else through the per-event rules).

Truth: plain Python (the time policy, windows, saturation as ``min(count, clip)``), and
the per-event loop ``_window_loop._bin_window`` (itself tested against tonic) on the real
recordings with backwards, out-of-bounds and boundary events injected.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.events import make_events
from eventpipe.kernels import to_frames
from eventpipe.kernels._common import I64_MIN, N_COUNTERS
from eventpipe.kernels._windows import time_windows
from eventpipe.kernels.frames import _bin_windows, _room
from tests.kernels._util import REAL, real
from tests.kernels.test_frames import _policy_reference


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 500), seed=st.integers(0, 2**16), window=st.integers(5, 400),
       clip=st.sampled_from([None, 1, 2, 3, 7, 60]),
       dtype=st.sampled_from([np.int8, np.int16, np.uint8]),
       jitter=st.sampled_from([0, 30]), oob=st.booleans(), threads=st.sampled_from([1, 2]),
       use_out=st.booleans())
def test_saturating_windows_follow_the_rules(n, seed, window, clip, dtype, jitter, oob, threads,
                                             use_out):
    """Few pixels, many events each: counts reach the clip or the dtype maximum inside a
    window at any parity of the pair loop; with backwards time, out-of-bounds events,
    events on window edges (integer times, windows of a few us) and a dirty out=."""
    rng = np.random.default_rng(seed)
    wh = (3, 2)
    t = np.sort(rng.integers(0, 2000, n))
    ev = make_events(rng.integers(0, 4 if oob else 3, n), rng.integers(0, 2, n), t,
                     rng.integers(0, 2, n))
    if jitter:
        idx = rng.integers(0, n, max(1, n // 10))
        ev["t"][idx] -= rng.integers(0, jitter, len(idx))
    ws, we = time_windows(int(ev["t"][0]), int(ev["t"].max()), window, window, True)
    ref, ref_stats = _policy_reference(ev, wh, ws, we, tol=20)
    top = np.iinfo(dtype).max if clip is None else min(clip, np.iinfo(dtype).max)
    ref = np.minimum(ref, top)
    out = np.full(ref.shape, 5, dtype) if use_out else None
    ours, stats = to_frames(ev, wh, time_window=window, include_incomplete=True, dtype=dtype,
                            clip=clip, time_tolerance_us=20, threads=threads, out=out,
                            return_stats=True)
    np.testing.assert_array_equal(ours, ref)
    assert stats == ref_stats


def _bin(ev, wh, window, room):
    ws, we = time_windows(int(ev["t"][0]), int(ev["t"].max()), window, window, True)
    out = np.zeros((len(ws), 2, wh[1], wh[0]), np.int16)
    counters = np.zeros(N_COUNTERS, np.int64)
    runmax = _bin_windows(ev, 0, len(ev), ws, we, out, 0, len(ws), 2, np.int64(100),
                          np.int16(32767), np.int64(I64_MIN), False, counters, np.int64(room))
    return out, counters, runmax


@pytest.mark.parametrize("name", REAL)
def test_fast_loop_equals_the_per_event_loop_on_real_recordings(name):
    ev, wh = real(name)
    t0 = int(ev["t"][0])
    edges = t0 + 5000 * np.arange(1, (int(ev["t"][-1]) - t0) // 5000 + 1)
    ev = np.concatenate([ev, make_events(np.zeros(len(edges), int), np.zeros(len(edges), int),
                                         edges, np.ones(len(edges), int))])  # on window edges
    ev = ev[np.argsort(ev["t"], kind="stable")]
    rng = np.random.default_rng(3)
    n = len(ev)
    k = max(1, n // 200)
    ev["t"][rng.integers(1, n, k)] -= rng.integers(0, 300, k)  # clamped and dropped (tol 100)
    ev["x"][rng.integers(0, n, k)] = wh[0]  # out of bounds
    room = int(_room(ev, np.int16(32767)))
    assert room == 32767
    fast = _bin(ev, wh, 5000, room)
    slow = _bin(ev, wh, 5000, -1)  # -1: the per-event loop only
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    assert fast[2] == slow[2]
    assert fast[1][2] > 0 and fast[1][4] > 0  # the injected cases were met


def test_room():
    ev = make_events([0], [0], [0], [1])
    assert _room(ev, np.int16(32767)) == 32767
    assert _room(ev, np.uint8(3)) == 3
    assert _room(ev, np.float32(np.inf)) == 1 << 62
    assert _room(ev, np.float32(2.5)) == 2  # 0 -> 1 -> 2: both under 2.5, as the rule says
    float_t = np.zeros(1, [("x", "<i2"), ("y", "<i2"), ("p", "i1"), ("t", "<f8")])
    assert _room(float_t, np.int16(32767)) == -1  # float times: the per-event loop


SIGNED = {
    "tonic-struct": np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")]),
    "int64": np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")]),
    "contract": None,
}


@settings(max_examples=80, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**16), window=st.integers(3, 200),
       kind=st.sampled_from(sorted(SIGNED)), bad=st.sampled_from([0.0, 0.03, 0.3]),
       jitter=st.sampled_from([0, 150]), threads=st.sampled_from([1, 2]))
def test_pair_loop_rejects_each_bad_event_in_either_place_of_a_pair(n, seed, window, kind, bad,
                                                                    jitter, threads):
    """The pair test (``_window_loop._bin_pairs``) against plain Python and the per-event loop:
    x or y below zero (signed dtypes: tonic's int16 struct, int64) or at/above the sensor
    size (W, W+1, 65535), times on window edges (windows of a few us over integer times),
    repeated, clamped and dropped backwards, at any position, so each kind of event falls
    on the first and on the second event of a pair."""
    rng = np.random.default_rng(seed)
    W, H = 5, 4
    t = np.sort(rng.integers(0, 1000, n))
    x, y = rng.integers(0, W, n), rng.integers(0, H, n)
    low = -2 if SIGNED[kind] is not None else W  # (uint16: no negative coordinates)
    for c, size in ((x, W), (y, H)):
        m = rng.random(n) < bad
        c[m] = rng.choice([low, -1 if low < 0 else 65535, size, size + 1], int(m.sum()))
    if jitter:
        idx = rng.integers(0, n, max(1, n // 10))
        t[idx] -= rng.integers(0, jitter, len(idx))  # tolerance 100: clamped and dropped
    p = rng.integers(0, 2, n)
    dt = SIGNED[kind]
    if dt is None:
        ev = make_events(x, y, t, p)
    else:
        ev = np.empty(n, dt)
        ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    ws, we = time_windows(int(t[0]), int(t.max()), window, window, True)
    oob = (x < 0) | (x >= W) | (y < 0) | (y >= H)  # the reference's events: bad -> x = W
    ref, ref_stats = _policy_reference(make_events(np.where(oob, W, x), np.where(oob, 0, y), t, p),
                                       (W, H), ws, we, tol=100)
    ours, stats = to_frames(ev, (W, H), time_window=window, include_incomplete=True,
                            time_tolerance_us=100, threads=threads, return_stats=True)
    np.testing.assert_array_equal(ours, ref)
    assert stats == ref_stats
    fast, slow = _bin(ev, (W, H), window, 32767), _bin(ev, (W, H), window, -1)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)
