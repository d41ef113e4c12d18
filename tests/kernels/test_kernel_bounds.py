"""Binning and filter kernels at their boundaries, every code path.

Truth: hand-counted tiny cases (a count saturates *at* ``clip``; an event stepping back by
exactly the tolerance is clamped, one microsecond more is dropped), the NumPy reference
``to_frames_numpy``, and tonic's own ``denoise_numpy`` for the background-activity filter.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.events import make_events
from eventpipe.kernels import StreamingBinner, denoise, refractory_period, suppress_hot_pixels, \
    to_frames
from eventpipe.kernels._chunkplan import _search
from eventpipe.kernels.filters import StreamingDenoise, StreamingRefractory
from eventpipe.kernels.frames import to_frames_numpy

SIZE = (4, 3)


def burst(n, x=1, y=2, t0=0, p=1):
    return make_events([x] * n, [y] * n, np.arange(t0, t0 + n), [p] * n)


# -- saturation ---------------------------------------------------------------------------

PATHS = {
    "time": dict(time_window=1000),
    "time_overlap": dict(time_window=1000, overlap=500),
    "time_threads": dict(time_window=1000, threads=2),
    "count": dict(event_count=1000, include_incomplete=True),
    "bins": dict(n_event_bins=1),
}


def _one_frame(frames):
    return frames[0, 1, 2, 1]  # ON plane, y=2, x=1


def _frames(path, events, **kw):
    """``to_frames`` on one of the paths; ``time_overlap`` gets events at t = -600 and 500
    so that the burst lies in two overlapping windows ([-600, 400) and [-100, 900)): the
    general kernel for overlapping windows, not the disjoint-window fast path."""
    opts = {k: v for k, v in PATHS[path].items() if k != "include_incomplete"}
    if path == "time_overlap":
        events = np.concatenate([make_events([0], [0], [-600], [0]), events,
                                 make_events([0], [0], [500], [0])])
    fr = to_frames(events, SIZE, include_incomplete=True, **opts, **kw)
    if path == "time_overlap":
        assert fr.shape[0] >= 2 and int(fr[1, 1, 2, 1]) == int(fr[0, 1, 2, 1])
    return fr


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("n,clip,want", [(5, 3, 3), (3, 3, 3), (2, 3, 2), (5, 5, 5), (6, 5, 5)])
def test_counts_saturate_exactly_at_clip(path, n, clip, want):
    fr = _frames(path, burst(n), clip=clip)
    assert int(_one_frame(fr)) == want


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("dtype,n,want", [(np.int8, 130, 127), (np.uint8, 256, 255),
                                          (np.uint8, 255, 255), (np.int8, 127, 127)])
def test_counts_saturate_at_the_dtype_maximum(path, dtype, n, want):
    fr = _frames(path, burst(n), dtype=dtype)
    assert fr.dtype == dtype and int(_one_frame(fr)) == want


@pytest.mark.parametrize("path", sorted(PATHS))
def test_binary_frames_hold_ones(path):
    fr = _frames(path, burst(4), binary=True)
    assert int(_one_frame(fr)) == 1 and int(fr.max()) == 1


@pytest.mark.parametrize("stride", [100, 50, 150])
@pytest.mark.parametrize("n,clip,want", [(5, 3, 3), (3, 3, 3), (2, 3, 2)])
def test_streaming_counts_saturate_exactly_at_clip(stride, n, clip, want):
    b = StreamingBinner(SIZE, 100, stride, clip=clip)
    b.push(burst(n))
    fr = b.flush()
    assert int(_one_frame(fr)) == want


# -- the time tolerance ---------------------------------------------------------------------

def _back_events():
    # running max 100; then 90 (back by 10 = tol: clamped to 100), 89 (back by 11: dropped)
    return make_events([1, 1, 1, 1], [2, 2, 2, 2], [0, 100, 90, 89], [1, 1, 1, 1])


@pytest.mark.parametrize("kw", [dict(time_window=1000), dict(time_window=1000, overlap=500),
                                dict(event_count=10, include_incomplete=True)])
def test_back_by_tol_is_clamped_and_one_more_is_dropped(kw):
    fr, st = to_frames(_back_events(), SIZE, time_tolerance_us=10, return_stats=True,
                       include_incomplete=True, **{k: v for k, v in kw.items()
                                                   if k != "include_incomplete"})
    assert (st.clamped, st.dropped_backwards) == (1, 1)
    assert int(_one_frame(fr)) == 3


@pytest.mark.parametrize("stride", [1000, 500])
def test_streaming_back_by_tol_is_clamped_and_one_more_is_dropped(stride):
    b = StreamingBinner(SIZE, 1000, stride, time_tolerance_us=10)
    b.push(_back_events())
    st = b.stats
    assert (st.clamped, st.dropped_backwards) == (1, 1)
    assert int(_one_frame(b.flush())) == 3


def test_clamped_event_lands_in_the_window_of_the_running_max():
    # windows of 100: an event at 95 after one at 100 (tol 10) is binned at 100: window 1
    ev = make_events([1, 2, 3], [2, 2, 2], [0, 100, 95], [1, 1, 1])
    fr = to_frames(ev, SIZE, time_window=100, time_tolerance_us=10, include_incomplete=True)
    assert fr[0, 1].sum() == 1 and fr[1, 1, 2, 3] == 1 and fr[1, 1].sum() == 2


# -- the parallel chunk search ----------------------------------------------------------------

def test_search_is_a_lower_bound():
    t = np.array([1, 2, 2, 2, 3, 5], np.int64)
    assert [_search(t, 0, len(t), v) for v in (0, 1, 2, 3, 4, 5, 6)] == [0, 0, 1, 4, 5, 5, 6]
    assert _search(t, 2, len(t), 2) == 2 and _search(t, 0, 3, 3) == 3
    for v in (0, 2, 3, 6):
        assert _search(t, 0, len(t), v) == np.searchsorted(t, v, side="left")


def test_parallel_binning_with_events_exactly_on_window_starts():
    """Every window's first event lies exactly on its start: a chunk cut at an upper bound
    would hand those events to the previous chunk (outside its windows) and lose them."""
    rng = np.random.default_rng(3)
    T, win = 24, 100
    t = np.sort(np.concatenate([np.arange(T) * win, np.arange(T) * win,
                                rng.integers(0, T * win, 200)]))
    ev = make_events(rng.integers(0, 4, len(t)), rng.integers(0, 3, len(t)), t,
                     rng.integers(0, 2, len(t)))
    ref = to_frames_numpy(ev, SIZE, win, include_incomplete=True)
    for threads in (1, 2, 4):
        fr, st = to_frames(ev, SIZE, time_window=win, include_incomplete=True, threads=threads,
                           dtype=np.int64, return_stats=True)
        np.testing.assert_array_equal(fr, ref)
        assert st.binned == len(ev) and st.out_of_range == 0


# -- the streaming windower's state -----------------------------------------------------------

@pytest.mark.parametrize("stride", [100, 50])
def test_reset_clears_the_open_window(stride):
    b = StreamingBinner(SIZE, 100, stride)
    assert len(b.push(burst(5, x=1, y=2, t0=0))) == 0   # all inside the open window
    b.reset()
    assert not b.started and b.next_window is None
    assert len(b.push(burst(2, x=3, y=0, t0=1000))) == 0
    fr = b.flush()
    assert fr.shape == (1, 2, 3, 4)
    assert int(fr[0, 1, 0, 3]) == 2 and int(fr.sum()) == 2


def test_reset_keeps_a_fixed_start_time():
    b = StreamingBinner(SIZE, 100, start_time=50)
    b.push(burst(1, t0=60))
    b.reset()
    b.push(burst(1, t0=170))
    assert b.next_window == (150, 250)


@pytest.mark.parametrize("stride", [1000, 500])
def test_advance_moves_the_running_max_so_late_events_follow_the_time_policy(stride):
    """After ``advance_to(1000)`` closed [0, 1000), an event at 700 is 300 us behind the
    running max: with a tolerance of 500 it is clamped to 1000 and binned in the next
    window, not counted as before the window."""
    b = StreamingBinner(SIZE, 1000, stride, time_tolerance_us=500, start_time=0)
    b.push(make_events([0], [0], [600], [1]))
    closed = b.advance_to(1000)
    assert len(closed) == 1 and int(closed.sum()) == 1
    b.push(make_events([1], [2], [700], [1]))
    assert b.stats.clamped == 1 and b.stats.out_of_range == 0
    fr = b.flush()
    assert int(fr[0, 1, 2, 1]) == 1


def test_advance_then_too_late_event_is_dropped_backwards():
    b = StreamingBinner(SIZE, 1000, time_tolerance_us=0, start_time=0)
    b.push(make_events([0], [0], [600], [1]))
    b.advance_to(1000)
    b.push(make_events([1], [2], [700], [1]))
    assert b.stats.dropped_backwards == 1 and b.stats.out_of_range == 0


def test_poll_timeout_closes_exactly_after_timeout():
    clock = [0.0]
    b = StreamingBinner(SIZE, 1000, timeout_s=1.0, clock=lambda: clock[0])
    b.push(burst(2))
    clock[0] = 0.5
    assert len(b.poll()) == 0
    clock[0] = 1.0                  # silent for exactly timeout_s: closes
    assert len(b.poll()) == 1 and b.timeouts == 1
    clock[0] = 1.5
    assert len(b.poll()) == 0       # 0.5 s since the last close
    clock[0] = 2.0
    assert len(b.poll()) == 1 and b.timeouts == 2


@pytest.mark.parametrize("stride", [100, 50, 150])
def test_streaming_equals_one_shot_for_any_split(stride):
    rng = np.random.default_rng(11)
    t = np.sort(rng.integers(0, 2000, 600))
    ev = make_events(rng.integers(0, 4, 600), rng.integers(0, 3, 600), t,
                     rng.integers(0, 2, 600))
    want = to_frames(ev, SIZE, time_window=100, overlap=100 - stride, include_incomplete=True)
    for cuts in ([], [1, 2, 3], list(rng.integers(0, 600, 20))):
        parts = np.split(ev, sorted(cuts))
        b = StreamingBinner(SIZE, 100, stride, initial_capacity=2)
        got = np.concatenate([b.push(p) for p in parts] + [b.flush()])
        np.testing.assert_array_equal(got[:len(want)], want)


# -- filters --------------------------------------------------------------------------------

def _tonic_denoise(ev, ft):
    from tonic.functional.denoise import denoise_numpy
    return denoise_numpy(ev.copy(), ft)


EDGE = make_events(
    # corners, edges and interior of a 4x3 grid, neighbours exactly ft apart and ft - 1 apart
    [0, 1, 3, 2, 3, 3, 0, 0, 1, 2, 2, 1],
    [0, 0, 2, 2, 1, 1, 2, 1, 1, 1, 0, 2],
    [0, 99, 100, 150, 249, 250, 300, 400, 500, 599, 700, 800],
    [1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0])


@pytest.mark.parametrize("ft", [1, 99, 100, 101, 150])
def test_denoise_equals_tonic_at_edges_and_exact_times(ft):
    want = _tonic_denoise(EDGE, ft)
    got = denoise(EDGE, ft).events
    np.testing.assert_array_equal(got, want)
    s = StreamingDenoise((4, 3), ft)
    np.testing.assert_array_equal(np.concatenate([s(EDGE[:5]).events, s(EDGE[5:]).events]),
                                  want)


def test_denoise_neighbour_exactly_filter_time_ago_does_not_support():
    ev = make_events([1, 2], [1, 1], [1000, 1100], [1, 1])   # 100 us apart, ft = 100
    assert denoise(ev, 100).events["t"].tolist() == []
    ev = make_events([1, 2], [1, 1], [1000, 1099], [1, 1])   # 99 us apart
    assert denoise(ev, 100).events["t"].tolist() == [1099]


def test_denoise_random_against_tonic():
    rng = np.random.default_rng(5)
    n = 400
    ev = make_events(rng.integers(0, 6, n), rng.integers(0, 5, n),
                     np.sort(rng.integers(0, 20_000, n)), rng.integers(0, 2, n))
    for ft in (50, 500, 3000):
        np.testing.assert_array_equal(denoise(ev, ft).events, _tonic_denoise(ev, ft))


def test_refractory_boundary_is_strictly_greater():
    ev = make_events([1] * 4, [1] * 4, [0, 10, 21, 31], [1] * 4)
    # 10 - 0 = 10: dropped; 21 - 10 = 11 (previous event, kept or not): kept; 31 - 21: dropped
    assert refractory_period(ev, 10).events["t"].tolist() == [0, 21]
    s = StreamingRefractory((4, 3), 10)
    assert np.concatenate([s(ev[:2]).events, s(ev[2:]).events])["t"].tolist() == [0, 21]


def _hot_case(hot_count):
    # 9 pixels with one event each, one pixel with ``hot_count``; over exactly 1 s
    xs = list(range(9)) + [9] * hot_count
    return make_events(xs, [0] * len(xs), np.arange(len(xs)), [1] * len(xs))


def test_hot_pixels_are_judged_against_the_median_rate():
    # median rate 1 Hz -> limit 50 Hz: 100 Hz is hot.  (Against the mean, 10.9 Hz, the limit
    # would be 545 Hz and nothing would be hot.)
    r = suppress_hot_pixels(_hot_case(100), (10, 1), duration_us=1_000_000, min_events=20)
    assert r.info["hot_pixels"].tolist() == [[9, 0]] and r.n_removed == 100
    assert r.info["rate_limit_hz"] == pytest.approx(50.0)


@pytest.mark.parametrize("count,hot", [(50, False), (51, True)])
def test_hot_pixel_rate_must_exceed_the_limit(count, hot):
    r = suppress_hot_pixels(_hot_case(count), (10, 1), duration_us=1_000_000, min_events=1)
    assert (r.n_removed == count) is hot and (len(r.info["hot_pixels"]) == 1) is hot


@pytest.mark.parametrize("min_events,hot", [(100, True), (101, False)])
def test_hot_pixel_min_events_is_inclusive(min_events, hot):
    r = suppress_hot_pixels(_hot_case(100), (10, 1), duration_us=1_000_000,
                            min_events=min_events)
    assert (r.n_removed == 100) is hot


@pytest.mark.parametrize("count,hot", [(30, False), (31, True)])
def test_hot_pixel_absolute_rate_limit(count, hot):
    r = suppress_hot_pixels(_hot_case(count), (10, 1), duration_us=1_000_000, min_events=1,
                            max_rate_hz=30, rel_factor=None)
    assert (r.n_removed == count) is hot


@pytest.mark.parametrize("stride", [100, 50])
def test_advance_far_moves_the_open_window_when_the_buffer_grows(stride):
    """A window closed (the open one now sits past the buffer's front), then event time
    jumps 9 windows ahead with a buffer of 2: the open window's counts move with it."""
    b = StreamingBinner(SIZE, 100, stride, initial_capacity=2, start_time=0)
    first = b.push(make_events([0, 3], [0, 1], [10, 150], [1, 1]))
    assert int(first.sum()) == (1 if stride == 100 else 1) and int(first[0, 1, 0, 0]) == 1
    out = b.advance_to(1000)
    ev = make_events([0, 3, 0], [0, 1, 2], [10, 150, 1000], [1, 1, 0])
    want = to_frames(ev, SIZE, time_window=100, overlap=100 - stride, start_time=0)
    got = np.concatenate([first, out])
    np.testing.assert_array_equal(got, want[:len(got)])
    assert int(out[0, 1, 1, 3]) == 1 and int(out.sum()) == (1 if stride == 100 else 2)


def test_hot_pixel_duration_is_at_least_one_microsecond():
    """All events at one timestamp: the span is 0 and the duration 1 us (documented), so
    10 events are 10 MHz; at a 6 MHz limit the pixel is hot."""
    ev = make_events([1] * 10 + [2], [0] * 11, [5] * 11, [1] * 11)
    r = suppress_hot_pixels(ev, (4, 3), max_rate_hz=6e6, rel_factor=None, min_events=1)
    assert r.info["hot_pixels"].tolist() == [[1, 0]] and r.n_removed == 10
    r = suppress_hot_pixels(ev, (4, 3), max_rate_hz=1.1e7, rel_factor=None, min_events=1)
    assert r.n_removed == 0
