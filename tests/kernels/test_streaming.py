"""StreamingBinner: any split into packets gives the one-shot to_frames result."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.events import empty_events, make_events
from eventpipe.kernels import StreamingBinner, stream_frames, to_frames
from tests.kernels._util import REAL, real, synthetic

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _one_shot(ev, wh, window, stride, **kw):
    return to_frames(ev, wh, time_window=window, overlap=window - stride, include_incomplete=True,
                     **kw)


def _split(ev, cuts):
    return np.split(ev, np.sort(np.asarray(cuts, dtype=np.int64)))


@SETTINGS
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16), window=st.integers(300, 20_000),
       stride_frac=st.sampled_from([None, 0.25, 0.5, 1.0, 1.7]), backwards=st.integers(0, 20),
       tol=st.sampled_from([0, 10, 1000]), data=st.data())
def test_random_splits_synthetic(n, seed, window, stride_frac, backwards, tol, data):
    ev = synthetic(n, seed=seed, backwards=backwards)
    # sprinkle a few out-of-bounds coordinates
    if n:
        ev["x"][:: max(1, n // 5)] = 40
    stride = window if stride_frac is None else max(1, int(window * stride_frac))
    wh = (32, 24)
    ref, ref_stats = _one_shot(ev, wh, window, stride, time_tolerance_us=tol, return_stats=True)
    cuts = data.draw(st.lists(st.integers(0, n), max_size=12))
    b = StreamingBinner(wh, window, stride, time_tolerance_us=tol)
    got = [b.push(pk) for pk in _split(ev, cuts)]
    got.append(b.flush())
    got = np.concatenate(got)
    np.testing.assert_array_equal(got, ref)
    assert b.stats.out_of_bounds == ref_stats.out_of_bounds
    assert b.stats.clamped == ref_stats.clamped
    assert b.stats.dropped_backwards == ref_stats.dropped_backwards


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.sampled_from(REAL), window=st.sampled_from([997, 5000, 33_333]),
       overlap=st.booleans(), data=st.data())
def test_random_splits_real(name, window, overlap, data):
    ev, wh = real(name)
    stride = window // 3 if overlap else window
    cuts = data.draw(st.lists(st.integers(0, len(ev)), min_size=1, max_size=25))
    got = stream_frames(_split(ev, cuts), wh, window, stride)
    np.testing.assert_array_equal(got, _one_shot(ev, wh, window, stride))


@pytest.mark.parametrize("name", ["evt2_sample.raw", "dvs.es"])
def test_tiny_packets_real(name):
    ev, wh = real(name)
    ev = ev[:20000]
    got = stream_frames(np.array_split(ev, 997), wh, 1000)
    np.testing.assert_array_equal(got, _one_shot(ev, wh, 1000, 1000))


def test_push_only_gives_complete_windows():
    ev, wh = real("sample.aedat4")
    b = StreamingBinner(wh, 10_000)
    got = np.concatenate([b.push(pk) for pk in np.array_split(ev, 13)])
    ref = to_frames(ev, wh, time_window=10_000)
    np.testing.assert_array_equal(got, ref)
    assert b.flush().shape == (1, 2, *wh[::-1])


def test_empty_and_output_shapes():
    b = StreamingBinner((5, 4), 100)
    assert b.push(empty_events()).shape == (0, 2, 4, 5)
    assert b.flush().shape == (0, 2, 4, 5)
    ev = make_events([1, 2], [1, 1], [0, 250], [1, 0])
    out = b.push(ev)
    assert out.shape == (2, 2, 4, 5) and out.dtype == np.int16 and out.flags.c_contiguous
    assert b.flush()[0, 0, 1, 2] == 1


def test_backwards_beyond_tolerance_never_crashes():
    b = StreamingBinner((4, 4), 100, time_tolerance_us=5)
    b.push(make_events([0, 1], [0, 0], [1000, 1200], [1, 1]))
    b.push(make_events([2, 3], [0, 0], [10, 1198], [1, 1]))  # far back: dropped; 2us: clamped
    assert b.stats.dropped_backwards == 1 and b.stats.clamped == 1
    f = b.flush()
    assert f.sum() == 2


def test_wall_clock_timeout_closes_window_on_silent_sensor():
    now = [0.0]
    b = StreamingBinner((4, 4), 1000, timeout_s=0.5, clock=lambda: now[0])
    assert b.push(make_events([1], [1], [100], [1])).shape[0] == 0
    now[0] = 0.2
    assert b.poll().shape[0] == 0
    now[0] = 0.8
    closed = b.poll()
    assert closed.shape == (1, 2, 4, 4) and closed.sum() == 1
    assert b.timeouts == 1 and b.next_window == (1100, 2100)
    # a late event of the closed window is subject to the time policy
    b.push(make_events([2], [2], [900], [1]))
    assert b.stats.clamped == 1
    now[0] = 1.5
    assert b.push(empty_events()).shape[0] == 1  # empty packet also checks the timeout


def test_advance_to_and_fixed_start():
    b = StreamingBinner((4, 4), 100, start_time=0)
    assert b.push(make_events([1], [1], [250], [1])).shape[0] == 2  # windows 0 and 1 empty
    assert b.advance_to(500).shape[0] == 3
    f = b.flush()
    assert f.shape[0] == 1 and f.sum() == 0


def test_no_reallocation_for_steady_packets():
    ev, wh = real("dvs.es")
    b = StreamingBinner(wh, 5000)
    pks = np.array_split(ev, 200)
    b.push(pks[0])
    buf = b._outbuf
    for pk in pks[1:]:
        b.push(pk, copy=False)
    assert b._outbuf is buf


def test_overlap_ring_and_dtype():
    ev, wh = real("sample_nmnist.bin")
    got = stream_frames(np.array_split(ev, 7), wh, 30_000, 10_000, dtype=np.float32, polarities=1)
    ref = to_frames(ev, wh, time_window=30_000, overlap=20_000, include_incomplete=True,
                    dtype=np.float32, polarities=1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("stride", [None, 400, 1500])
def test_small_buffer_compaction_and_views(stride):
    ev, wh = real("sample_nmnist.bin")
    ref = _one_shot(ev, wh, 1000, stride or 1000)
    b = StreamingBinner(wh, 1000, stride, initial_capacity=2)
    got = []
    rng = np.random.default_rng(5)
    for pk in _split(ev, rng.integers(0, len(ev), 60)):
        got.append(b.push(pk, copy=False).copy())  # a view is valid until the next call
    got.append(b.flush())
    np.testing.assert_array_equal(np.concatenate(got), ref)


@SETTINGS
@given(n=st.integers(1, 400), seed=st.integers(0, 2**16), window=st.integers(300, 20_000),
       stride_frac=st.sampled_from([None, 0.3, 0.5, 1.0, 2.5]), backwards=st.integers(0, 20),
       start=st.one_of(st.none(), st.integers(-60_000, 20_000)), clip=st.sampled_from([None, 2]),
       data=st.data())
def test_random_splits_small_buffer_fixed_start(n, seed, window, stride_frac, backwards, start,
                                                clip, data):
    """The paths that run out of output buffer (growth, compaction, a fixed start_time far
    before the first event) and views with copy=False; every counter equals one-shot."""
    ev = synthetic(n, seed=seed, backwards=backwards)
    ev["y"][:: max(1, n // 4)] = 30
    stride = window if stride_frac is None else max(1, int(window * stride_frac))
    wh = (32, 24)
    ref, ref_stats = _one_shot(ev, wh, window, stride, start_time=start, clip=clip,
                               time_tolerance_us=10, return_stats=True)
    cuts = data.draw(st.lists(st.integers(0, n), max_size=8))
    b = StreamingBinner(wh, window, stride, start_time=start, clip=clip, time_tolerance_us=10,
                        initial_capacity=2)
    got = [b.push(pk, copy=False).copy() for pk in _split(ev, cuts)]
    got.append(b.flush())
    np.testing.assert_array_equal(np.concatenate(got), ref)
    assert b.stats == ref_stats
    assert b.frames_emitted == len(ref)


@pytest.mark.parametrize("stride", [100, 40])
def test_fixed_start_far_before_first_event_grows_buffer(stride):
    ev = make_events([1, 2, 3], [1, 1, 2], [10_000, 10_050, 10_120], [1, 0, 1])
    b = StreamingBinner((4, 4), 100, stride, start_time=0, initial_capacity=2)
    got = np.concatenate([b.push(ev[:1]), b.push(ev[1:]), b.flush()])
    np.testing.assert_array_equal(got, _one_shot(ev, (4, 4), 100, stride, start_time=0))
    assert len(got) > 100 and b.stats.binned == 3
