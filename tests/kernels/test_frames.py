"""to_frames against tonic (independent truth) on the real recordings, plus our fixes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tonic.functional import to_frame_numpy

from eventpipe.events import empty_events, make_events
from eventpipe.kernels import BinStats, time_windows, to_frames, to_frames_numpy
from tests.kernels._util import REAL, real, synthetic

# windows scaled to each recording (~30 frames) so the tonic comparison stays quick
MODES = {
    "time": lambda d, n: dict(time_window=d // 30 + 1),
    "time-overlap": lambda d, n: dict(time_window=d // 20 + 1, overlap=d // 50),
    "time-incomplete": lambda d, n: dict(time_window=d // 30 + 7, include_incomplete=True),
    "count": lambda d, n: dict(event_count=n // 30 + 1),
    "count-overlap-incomplete": lambda d, n: dict(event_count=n // 25 + 1, overlap=n // 80,
                                                  include_incomplete=True),
}


def _tonic_matches_us(ev, wh, kw):
    """True when tonic's slicing has none of the documented bugs for this input."""
    if "time_window" in kw and kw.get("include_incomplete"):
        tw = kw["time_window"]
        s = tw - kw.get("overlap", 0)
        d = int(ev["t"][-1] - ev["t"][0])
        return d < tw or (d - tw) % s != 0
    return True


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_matches_tonic_on_real_recordings(name, mode):
    ev, wh = real(name)
    kw = MODES[mode](int(ev["t"][-1] - ev["t"][0]), len(ev))
    ours, stats = to_frames(ev, wh, return_stats=True, **kw)
    theirs = to_frame_numpy(ev.copy(), (*wh, 2), **kw)
    assert ours.dtype == theirs.dtype == np.int16
    assert ours.flags.c_contiguous
    if _tonic_matches_us(ev, wh, kw):
        np.testing.assert_array_equal(ours, theirs)
    else:  # tonic dropped the last window; everything before agrees
        np.testing.assert_array_equal(ours[: len(theirs)], theirs)
    assert stats.events_in == len(ev) and stats.out_of_bounds == 0


@pytest.mark.parametrize("name", ["evt2_sample.raw", "dvs.es", "IMU_translBoxes.aedat"])
@pytest.mark.parametrize("kw", [dict(time_window=30000), dict(time_window=30000, include_incomplete=True),
                                dict(n_time_bins=7), dict(time_window=30000, overlap=10000)])
def test_two_threads_equal_one(name, kw):
    ev, wh = real(name)
    np.testing.assert_array_equal(to_frames(ev, wh, threads=2, **kw), to_frames(ev, wh, **kw))


def test_numpy_reference_matches_kernel():
    for name in ("sample.aedat4", "sample_nmnist.bin"):
        ev, wh = real(name)
        ref = to_frames_numpy(ev, wh, 7000, overlap=2000, include_incomplete=True)
        got = to_frames(ev, wh, time_window=7000, overlap=2000, include_incomplete=True, dtype=np.int64)
        np.testing.assert_array_equal(got, ref)


def test_tonic_drops_event_at_window_end_we_do_not():
    ev = make_events([0, 1, 2], [0, 0, 0], [0, 50, 100], [1, 1, 0])
    theirs = to_frame_numpy(ev.copy(), (3, 1, 2), time_window=100, include_incomplete=True)
    assert theirs.sum() == 2  # tonic loses the event at t=100
    ours = to_frames(ev, (3, 1), time_window=100, include_incomplete=True)
    assert ours.shape == (2, 2, 1, 3) and ours.sum() == 3 and ours[1, 0, 0, 2] == 1


def test_real_recording_last_event_kept_where_tonic_drops_it():
    ev, wh = real("dvs.es")  # t spans 0..999000: exact multiple of 3000
    ours = to_frames(ev, wh, time_window=3000, include_incomplete=True)
    theirs = to_frame_numpy(ev.copy(), (*wh, 2), time_window=3000, include_incomplete=True)
    assert len(ours) == len(theirs) + 1
    assert ours.sum() == len(ev) > theirs.sum()


def test_empty_input_shapes_and_dtype():
    e = empty_events()
    f = to_frames(e, (5, 4), time_window=100)
    assert f.shape == (0, 2, 4, 5) and f.dtype == np.int16
    f = to_frames(e, (5, 4), n_time_bins=3, dtype=np.float32)
    assert f.shape == (3, 2, 4, 5) and f.dtype == np.float32 and not f.any()
    f = to_frames(e, (5, 4), event_count=10)
    assert f.shape == (0, 2, 4, 5)
    f = to_frames(e, (5, 4), time_window=100, start_time=0, end_time=250, include_incomplete=True)
    assert f.shape == (3, 2, 4, 5)


def test_single_polarity_merges_and_does_not_mutate():
    ev, wh = real("sample.aedat4")
    before = ev["p"].copy()
    merged = to_frames(ev, wh, time_window=20000, polarities=1)
    np.testing.assert_array_equal(ev["p"], before)
    both = to_frames(ev, wh, time_window=20000)
    np.testing.assert_array_equal(merged[:, 0], both.sum(axis=1))
    on = ev[ev["p"] == 1]
    theirs_input = on.copy()
    theirs = to_frame_numpy(theirs_input, (*wh, 1), time_window=20000)
    assert not theirs_input["p"].any()  # tonic wrote p = 0 into its input
    np.testing.assert_array_equal(to_frames(on, wh, time_window=20000, polarities=1), theirs)


def test_n_time_bins_covers_every_event():
    ev, wh = real("sample.aedat4")
    ours = to_frames(ev, wh, n_time_bins=5)
    theirs = to_frame_numpy(ev.copy(), (*wh, 2), n_time_bins=5)
    assert ours.shape == theirs.shape
    assert ours.sum() == len(ev) > theirs.sum()
    # tonic's integer bin length: its windows are within ours up to rounding
    assert abs(int(ours[0].sum()) - int(theirs[0].sum())) < 0.01 * len(ev)


def test_n_event_bins_matches_tonic_when_divisible_and_keeps_remainder():
    ev, wh = real("sample_nmnist.bin")  # 4325 events
    np.testing.assert_array_equal(to_frames(ev, wh, n_event_bins=25),
                                  to_frame_numpy(ev.copy(), (*wh, 2), n_event_bins=25))
    ours = to_frames(ev, wh, n_event_bins=7)
    assert ours.sum() == len(ev)


def test_dtype_binary_clip_and_out():
    ev, wh = real("evt2_sample.raw")
    counts = to_frames(ev, wh, time_window=10000, dtype=np.int32)
    np.testing.assert_array_equal(to_frames(ev, wh, time_window=10000, binary=True, dtype=np.uint8),
                                  (counts > 0).astype(np.uint8))
    np.testing.assert_array_equal(to_frames(ev, wh, time_window=10000, clip=2), np.minimum(counts, 2))
    np.testing.assert_array_equal(to_frames(ev, wh, time_window=10000, clip=2, threads=2),
                                  np.minimum(counts, 2))
    f32 = to_frames(ev, wh, time_window=10000, dtype=np.float32)
    assert f32.dtype == np.float32 and np.array_equal(f32, counts)
    out = np.full(counts.shape, 7, np.int32)
    res = to_frames(ev, wh, time_window=10000, dtype=np.int32, out=out)
    assert res is out and np.array_equal(out, counts)
    with pytest.raises(ValueError):
        to_frames(ev, wh, time_window=10000, dtype=np.int32, out=out[:1])


def test_int16_saturates_instead_of_wrapping():
    n = 40000
    ev = make_events(np.zeros(n, int), np.zeros(n, int), np.arange(n), np.ones(n, int))
    f = to_frames(ev, (2, 2), n_time_bins=1)
    assert f[0, 1, 0, 0] == 32767
    assert to_frames(ev, (2, 2), n_time_bins=1, dtype=np.int32)[0, 1, 0, 0] == n


def test_out_of_bounds_dropped_and_counted():
    ev = make_events([0, 5, 1, 9], [0, 0, 7, 1], [0, 10, 20, 30], [1, 0, 1, 1])
    f, st = to_frames(ev, (4, 4), time_window=100, return_stats=True)
    assert f.sum() == 1 and st.out_of_bounds == 3 and st.binned == 1
    f, st = to_frames(ev, (4, 4), event_count=1, return_stats=True)
    assert f.shape[0] == 1 and st.out_of_bounds == 3


def test_backwards_time_policy():
    ev = make_events([0, 1, 2, 3, 0], [0, 0, 0, 0, 0], [0, 150, 140, 10, 160], [1, 1, 1, 1, 1])
    f, st = to_frames(ev, (4, 1), time_window=100, include_incomplete=True, time_tolerance_us=20,
                      return_stats=True)
    # t=140 is clamped to 150 (window 1); t=10 is 140 us back: dropped
    assert st.clamped == 1 and st.dropped_backwards == 1
    assert f[0].sum() == 1 and f[1, 1, 0, 2] == 1 and f[1, 1, 0, 3] == 0 and f.sum() == 4
    assert isinstance(st, BinStats) and st.dropped == 1


def test_backwards_real_evt3_equals_tonic_on_clamped_times():
    ev, wh = real("evt3_sample.raw")
    rng = np.random.default_rng(1)
    jit = ev.copy()
    idx = rng.integers(1, len(ev), 500)
    jit["t"][idx] -= rng.integers(1, 8, 500)  # TIME_LOW jitter of a few us
    ours, st = to_frames(jit, wh, time_window=1000, return_stats=True, threads=2)
    clamped = jit.copy()
    clamped["t"] = np.maximum.accumulate(jit["t"])
    np.testing.assert_array_equal(ours, to_frame_numpy(clamped, (*wh, 2), time_window=1000))
    assert st.clamped > 0 and st.dropped_backwards == 0


def test_parallel_falls_back_when_time_steps_back_across_chunks():
    ev = synthetic(10_000, t_max=50_000, seed=3)
    ev["t"][5000:5003] = ev["t"][4999] - 3
    np.testing.assert_array_equal(to_frames(ev, (32, 24), time_window=999, threads=2),
                                  to_frames(ev, (32, 24), time_window=999))


def test_parallel_split_checks_events_before_the_cut():
    # threads=2 cuts at window 1 (t=100) where a binary search lands after the t=30 step
    # back: the first chunk then holds t=150, which belongs to window 1
    ev = make_events(np.arange(8), np.zeros(8), [0, 10, 20, 150, 30, 160, 170, 180], np.ones(8))
    for tol in (10, 1000):  # t=30 dropped / clamped to 150
        kw = dict(time_window=100, include_incomplete=True, time_tolerance_us=tol,
                  return_stats=True)
        (f1, s1), (f2, s2) = to_frames(ev, (8, 1), **kw), to_frames(ev, (8, 1), threads=2, **kw)
        np.testing.assert_array_equal(f2, f1)
        assert s1 == s2 and f1[1].sum() == 4 + (tol == 1000)


def test_tonic_style_input_dtype_is_converted_not_mutated():
    ev, wh = real("sample_nmnist.bin")
    t = np.empty(len(ev), [("x", int), ("y", int), ("t", int), ("p", bool)])
    for f in "xyt":
        t[f] = ev[f]
    t["p"] = ev["p"].astype(bool)
    np.testing.assert_array_equal(to_frames(t, (*wh, 2), time_window=10000),
                                  to_frames(ev, wh, time_window=10000))


def test_zero_copy_torch():
    ev, wh = real("sample_nmnist.bin")
    f = to_frames(ev, wh, time_window=10000, dtype=np.float32)
    tt = torch.from_numpy(f)
    assert tt.data_ptr() == f.ctypes.data and tt.is_contiguous()


def test_bad_arguments():
    ev = synthetic(10)
    with pytest.raises(ValueError):
        to_frames(ev, (32, 24))
    with pytest.raises(ValueError):
        to_frames(ev, (32, 24), time_window=10, event_count=3)
    with pytest.raises(ValueError):
        to_frames(ev, (32, 24), time_window=10, overlap=10)
    with pytest.raises(ValueError):
        to_frames(ev, (32, 24), time_window=10, polarities=3)


def test_last_event_not_the_latest():
    ev = make_events([0, 1, 2], [0, 0, 0], [0, 250, 240], [1, 1, 1])
    f = to_frames(ev, (3, 1), time_window=100, include_incomplete=True)
    assert f.shape[0] == 3 and f[2].sum() == 2  # t=240 clamped to 250
    clamped = make_events([0, 1, 2], [0, 0, 0], [0, 250, 250], [1, 1, 1])
    for kw in (dict(time_window=100), dict(time_window=100, overlap=50), dict(time_window=70)):
        np.testing.assert_array_equal(to_frames(ev, (3, 1), **kw),
                                      to_frame_numpy(clamped, (3, 1, 2), **kw))
        np.testing.assert_array_equal(to_frames(ev, (3, 1), threads=2, **kw),
                                      to_frames(ev, (3, 1), **kw))


def test_out_shape_follows_the_latest_event_not_the_last():
    ev = make_events([0, 1, 2], [0, 0, 0], [0, 310, 290], [1, 1, 1])  # t[-1] gives 3 windows
    kw = dict(time_window=100, include_incomplete=True)
    ref = to_frames(ev, (3, 1), **kw)
    assert ref.shape[0] == 4 and ref[3].sum() == 2  # t=290 clamped to 310
    out = np.full(ref.shape, 5, ref.dtype)
    assert to_frames(ev, (3, 1), out=out, **kw) is out
    np.testing.assert_array_equal(out, ref)
    for wrong in (3, 5):
        with pytest.raises(ValueError, match="out has shape"):
            to_frames(ev, (3, 1), out=np.zeros((wrong, 2, 1, 3), ref.dtype), **kw)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**16), window=st.integers(50, 30_000),
       overlap_frac=st.sampled_from([0.0, 0.3, 0.75]), incomplete=st.booleans(),
       threads=st.sampled_from([1, 2]))
def test_random_time_windows_match_tonic(n, seed, window, overlap_frac, incomplete, threads):
    ev = synthetic(n, seed=seed)
    overlap = int(window * overlap_frac)
    kw = dict(time_window=window, overlap=overlap, include_incomplete=incomplete)
    ours = to_frames(ev, (32, 24), threads=threads, **kw)
    theirs = to_frame_numpy(ev.copy(), (32, 24, 2), **kw)
    if _tonic_matches_us(ev, (32, 24), kw):
        np.testing.assert_array_equal(ours, theirs)
    else:
        np.testing.assert_array_equal(ours[: len(theirs)], theirs)
        assert len(ours) == len(theirs) + 1 and ours.sum() >= theirs.sum()
    if incomplete:
        ref = to_frames_numpy(ev, (32, 24), window, overlap=overlap, include_incomplete=True)
        np.testing.assert_array_equal(ours, ref)


def _policy_reference(ev, wh, ws, we, tol):
    """Plain Python: the time policy of ``_common`` and windows ``[ws, we)`` (an event goes
    to every window holding its clamped time), with the stats ``to_frames`` reports."""
    W, H = wh
    out = np.zeros((len(ws), 2, H, W), np.int64)
    st = BinStats(events_in=len(ev))
    t_max = None
    for x, y, t, p in zip(*(ev[f].tolist() for f in "xytp"), strict=True):
        if t_max is not None and t < t_max:
            if t_max - t > tol:
                st.dropped_backwards += 1
                continue
            st.clamped += 1
            t = t_max
        t_max = t
        if x >= W or y >= H:
            st.out_of_bounds += 1
            continue
        ks = [k for k in range(len(ws)) if ws[k] <= t < we[k]]
        st.binned += bool(ks)
        st.out_of_range += not ks
        for k in ks:
            out[k, int(p != 0), y, x] += 1
    return out, st


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 400), seed=st.integers(0, 2**16), window=st.integers(50, 20_000),
       overlap_frac=st.sampled_from([-1.5, -0.2, 0.0, 0.0, 0.4]), incomplete=st.booleans(),
       jitter=st.sampled_from([0, 20, 5000]), start=st.sampled_from([None, -300, 2000]),
       threads=st.sampled_from([1, 2]), use_out=st.booleans())
def test_time_windows_follow_the_time_policy(n, seed, window, overlap_frac, incomplete, jitter,
                                            start, threads, use_out):
    """The per-window kernels (serial, parallel, and the general one for overlapping
    windows) against plain Python, with backwards time (clamped and dropped), out-of-bounds
    events, gaps between windows (negative overlap), a start_time and a dirty out=."""
    rng = np.random.default_rng(seed)
    wh = (12, 8)
    ev = synthetic(n, W=14, H=9, t_max=200_000, seed=seed)
    if jitter:
        idx = rng.integers(0, n, max(1, n // 20))
        ev["t"][idx] -= rng.integers(0, jitter, len(idx))
    overlap = int(window * overlap_frac)
    t0 = int(ev["t"][0]) if start is None else int(ev["t"][0]) + start
    ws, we = time_windows(t0, int(ev["t"].max()), window, window - overlap, incomplete)
    ref, ref_stats = _policy_reference(ev, wh, ws, we, tol=100)
    kw = dict(time_window=window, overlap=overlap, include_incomplete=incomplete, dtype=np.int32,
              start_time=None if start is None else t0, time_tolerance_us=100, threads=threads)
    out = np.full(ref.shape, 7, np.int32) if use_out else None
    ours, stats = to_frames(ev, wh, out=out, return_stats=True, **kw)
    np.testing.assert_array_equal(ours, ref)
    assert stats == ref_stats
    assert out is None or ours is out
