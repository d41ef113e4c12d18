"""Binning into memory that holds old data (a caller's ``out=``, a recycled pool buffer):
each frame is binned in a cached scratch frame and copied out once (``_writeonce``), with
non-temporal stores for large outputs.

Truth: tonic's ``to_frame_numpy`` on the same arrays (shared recordings, tonic's dtypes) and
our default call on fresh zeroed memory, exactly, with counters; the destination is filled
with garbage first, so a byte not written would show.
"""

from __future__ import annotations

import numpy as np
import pytest
from tonic.functional import to_frame_numpy

from eventpipe.kernels import _writeonce, to_frames
from tests.kernels._util import REAL, real, synthetic, to_tonic

TONIC_STRUCT = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])


@pytest.fixture(params=["cached-stores", "non-temporal"])
def nt_mode(request, monkeypatch):
    """Both copy-out paths: ordinary stores, and non-temporal stores for any size."""
    if request.param == "non-temporal":
        monkeypatch.setattr(_writeonce, "NT_MIN_BYTES", 0)
    return request.param


def garbage_like(a: np.ndarray) -> np.ndarray:
    g = np.empty_like(a)
    g.view(np.uint8).reshape(-1)[:] = np.resize(np.arange(7, 250, dtype=np.uint8), a.nbytes)
    return g


@pytest.mark.parametrize("name", REAL)
def test_out_equals_tonic_and_fresh_on_real_recordings(name, nt_mode):
    ev, wh = real(name)
    ev = ev[:100_000]
    window = max(1, int(ev["t"][-1] - ev["t"][0]) // 6)
    fresh, fstats = to_frames(ev, wh, time_window=window, return_stats=True)
    theirs = to_tonic(ev)
    if np.all(np.diff(ev["t"]) >= 0) and ev["x"].max() < wh[0] and ev["y"].max() < wh[1]:
        np.testing.assert_array_equal(fresh, to_frame_numpy(theirs, (*wh, 2), time_window=window))
    for threads in (1, 2):
        for arr in (ev, theirs):
            out = garbage_like(fresh)
            got, stats = to_frames(arr, wh, time_window=window, out=out, threads=threads,
                                   return_stats=True)
            assert got is out
            np.testing.assert_array_equal(got, fresh)
            assert stats == fstats


@pytest.mark.parametrize("wh", [(33, 19), (64, 32), (7, 1), (301, 5)])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_odd_frame_sizes_and_dtypes(wh, dtype, nt_mode):
    """Frames whose byte size is not a multiple of 64 start at every alignment: the
    copy's unaligned head and tail around the 64-byte non-temporal middle."""
    ev = synthetic(20_000, W=wh[0] + 2, H=wh[1] + 1, t_max=200_000, seed=3, backwards=40)
    fresh = to_frames(ev, wh, time_window=9_000, dtype=dtype)
    for threads in (1, 2):
        out = garbage_like(fresh)
        np.testing.assert_array_equal(to_frames(ev, wh, time_window=9_000, dtype=dtype,
                                                out=out, threads=threads), fresh)


@pytest.mark.parametrize("kw", [dict(binary=True, dtype=np.uint8), dict(clip=3),
                                dict(polarities=1), dict(time_window=7_000, overlap=0,
                                                         include_incomplete=True),
                                dict(start_time=5_000, end_time=300_000),
                                dict(time_window=4_000, overlap=2_000),  # overlapping: zeroed
                                dict(n_time_bins=13), dict(event_count=3_000)])
def test_options_into_garbage_equal_fresh(kw, nt_mode):
    ev = synthetic(60_000, W=40, H=30, t_max=500_000, seed=5, backwards=200)
    kw = {"time_window": 10_000, **kw} if "n_time_bins" not in kw and "event_count" not in kw \
        else kw
    fresh = to_frames(ev, (40, 30), **kw)
    for threads in (1, 2):
        out = garbage_like(fresh)
        np.testing.assert_array_equal(to_frames(ev, (40, 30), out=out, threads=threads, **kw),
                                      fresh)


def test_float_times_and_tonic_struct(nt_mode):
    ev, wh = real("dvs.es")
    ev = ev[:200_000]
    fresh = to_frames(ev, wh, time_window=15_000)
    for dt in (TONIC_STRUCT, np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "i1"), ("t", "<f8")])):
        arr = np.empty(len(ev), dt)
        for f in "xytp":
            arr[f] = ev[f]
        for threads in (1, 2):
            out = garbage_like(fresh)
            np.testing.assert_array_equal(to_frames(arr, wh, time_window=15_000, out=out,
                                                    threads=threads), fresh)


def test_parallel_chunks_that_step_back_fall_back_to_serial(nt_mode):
    """Time steps back across a chunk border by more than the tolerance: the parallel
    result would differ, so the serial write-once kernel reruns over the same garbage-free
    output and the result equals the one-thread one."""
    ev = synthetic(40_000, W=20, H=10, t_max=400_000, seed=9)
    mid = len(ev) // 2
    ev["t"][mid:mid + 50] = ev["t"][-1]  # far ahead, then back again
    one = to_frames(ev, (20, 10), time_window=10_000, time_tolerance_us=10)
    out = garbage_like(one)
    np.testing.assert_array_equal(to_frames(ev, (20, 10), time_window=10_000, out=out,
                                            threads=2, time_tolerance_us=10), one)


def test_scratch_is_left_zero():
    """The scratch frame is zero again after a kernel: the next window starts clean."""
    ev = synthetic(5_000, W=16, H=8, t_max=50_000, seed=1)
    from eventpipe.kernels.frames import _bin_time_once, _room
    from eventpipe.kernels._common import C_BINNED, N_COUNTERS
    from eventpipe.kernels._windows import time_windows
    ws, we = time_windows(int(ev["t"][0]), int(ev["t"][-1]), 5_000, 5_000, False)
    res = np.full((len(ws), 2, 8, 16), 9, np.int16)

    class Pool:
        def take_scratch(self, rows, elems, dtype):
            self.s = np.zeros((rows, elems), dtype)
            return self.s

        def give_scratch(self, s):
            assert s is self.s

    pool = Pool()
    counters = np.zeros(N_COUNTERS, np.int64)
    _bin_time_once(ev, ws, we, res, 2, np.int64(1000), np.int16(32767), 1, counters,
                   _room(ev, 32767), pool)
    assert not pool.s.any()
    np.testing.assert_array_equal(res, to_frames(ev, (16, 8), time_window=5_000))
    assert res.sum() == counters[C_BINNED] == np.count_nonzero(ev["t"] < we[-1])
