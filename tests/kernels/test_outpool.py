"""``OutputPool``: released outputs' memory recycled by the next call, bounded, off-able.

Truth: the default ``to_frames`` call (fresh zeroed memory) and tonic's ``to_frame_numpy``
on the same arrays; buffer identity from the arrays' data addresses; the bound from
``retained_bytes``.
"""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from tonic.functional import to_frame_numpy

from eventpipe.events import EVENT_DTYPE
from eventpipe.kernels import OutputPool, to_frames
from eventpipe.kernels.outpool import GRANULE
from tests.kernels._util import real, synthetic, to_tonic


def addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_arrays_are_ordinary_writable_ndarrays():
    pool = OutputPool(64 << 20)
    a, recycled = pool.empty((3, 2, 5, 7), np.int16)
    assert type(a) is np.ndarray and a.flags.c_contiguous and a.flags.writeable
    assert a.shape == (3, 2, 5, 7) and a.dtype == np.int16 and not recycled
    assert not a.any()  # fresh memory is zero
    a[:] = 3
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(a)
    assert int(t.sum()) == 3 * a.size


def test_released_memory_is_recycled_and_live_memory_is_not():
    pool = OutputPool(64 << 20)
    a, _ = pool.empty((1000, 1000), np.int16)
    view = a[10:20]
    first = addr(a)
    del a
    b, recycled = pool.empty((1000, 1000), np.int16)  # the view keeps the first alive
    assert not recycled and addr(b) != first
    del view
    gc.collect()
    c, recycled = pool.empty((1000, 1000), np.int16)
    assert recycled and addr(c) == first and (pool.hits, pool.misses) == (1, 2)


def test_bounded_by_max_bytes_oldest_first():
    size = 3 * GRANULE
    pool = OutputPool(2 * size)
    arrays = [pool.empty((size,), np.uint8)[0] for _ in range(4)]
    addrs = [addr(a) for a in arrays]
    for i in range(4):  # released in this order
        arrays[i] = None
    assert pool.retained_bytes == 2 * size  # two kept, two unmapped
    a, _ = pool.empty((size,), np.uint8)
    b, _ = pool.empty((size,), np.uint8)
    assert {addr(a), addr(b)} == set(addrs[2:])  # the last released were kept
    del a, b
    big = pool.empty((3 * size,), np.uint8)[0]
    del big  # larger than the whole pool: not kept
    assert pool.retained_bytes <= 2 * size


def test_smallest_fitting_buffer_at_most_twice_the_size():
    pool = OutputPool(64 << 20)
    big, _ = pool.empty((5 * GRANULE,), np.uint8)
    mid, _ = pool.empty((2 * GRANULE,), np.uint8)
    small, _ = pool.empty((100,), np.uint8)  # rounded up to one 2 MiB granule
    addrs = {n: addr(a) for n, a in (("big", big), ("mid", mid), ("small", small))}
    del big, mid, small
    assert pool.retained_bytes == 8 * GRANULE
    a, recycled = pool.empty((GRANULE + 1,), np.uint8)  # needs 2 granules: mid fits
    assert recycled and addr(a) == addrs["mid"]
    b, recycled = pool.empty((GRANULE // 2,), np.uint8)  # small fits; big is > 2x
    assert recycled and addr(b) == addrs["small"]
    c, recycled = pool.empty((GRANULE,), np.uint8)  # only big is left, 5x the size: fresh
    assert not recycled and addr(c) != addrs["big"]


def test_max_bytes_zero_recycles_nothing():
    pool = OutputPool(0)
    for _ in range(3):
        a, recycled = pool.empty((GRANULE,), np.uint8)
        assert not recycled
        del a
    assert pool.retained_bytes == 0 and pool.hits == 0
    for bad in (-1, "512", 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="max_bytes must be an integer >= 0"):
            OutputPool(bad)


def test_a_pool_that_is_not_an_output_pool_is_a_clear_error():
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    with pytest.raises(TypeError, match="pool must be an eventpipe.kernels.OutputPool or None, got str"):
        to_frames(ev, (4, 4), time_window=10, pool="nope")


def test_clear_and_pool_dropped_while_arrays_live():
    pool = OutputPool(64 << 20)
    a, _ = pool.empty((GRANULE,), np.uint8)
    del a
    assert pool.retained_bytes == GRANULE
    pool.clear()
    assert pool.retained_bytes == 0
    b, _ = pool.empty((100,), np.float32)
    del pool
    gc.collect()
    b[:] = 1.5  # still valid memory; freed when b goes
    assert b.sum() == 150


@pytest.mark.parametrize("threads", [1, 2])
def test_to_frames_with_pool_equals_default_and_tonic(threads):
    ev, wh = real("evt2_sample.raw")
    fresh, fstats = to_frames(ev, wh, time_window=5_000, return_stats=True)
    theirs = to_tonic(ev)
    np.testing.assert_array_equal(fresh, to_frame_numpy(theirs, (*wh, 2), time_window=5_000))
    pool = OutputPool(256 << 20)
    for i in range(4):  # the first call gets fresh memory, the rest recycled memory
        arr = ev if i % 2 else theirs
        got, stats = to_frames(arr, wh, time_window=5_000, pool=pool, threads=threads,
                               return_stats=True)
        np.testing.assert_array_equal(got, fresh)
        assert stats == fstats
        got[:] = -7  # what the next call finds in the recycled memory
        del got
    assert pool.hits == 3 and pool.misses == 1


@pytest.mark.parametrize("kw", [dict(time_window=10_000, overlap=4_000), dict(event_count=999),
                                dict(n_time_bins=9), dict(n_event_bins=5)])
def test_to_frames_with_pool_other_modes(kw):
    ev = synthetic(30_000, W=30, H=20, t_max=300_000, seed=4, backwards=30)
    fresh = to_frames(ev, (30, 20), **kw)
    pool = OutputPool(64 << 20)
    for _ in range(3):
        got = to_frames(ev, (30, 20), pool=pool, **kw)
        np.testing.assert_array_equal(got, fresh)
        got.fill(5)
        del got
    assert pool.hits == 2


def test_pool_shared_by_threads():
    ev = synthetic(20_000, W=24, H=16, t_max=200_000, seed=2)
    fresh = to_frames(ev, (24, 16), time_window=4_000)
    pool = OutputPool(32 << 20)
    errors = []

    def work():
        for _ in range(20):
            got = to_frames(ev, (24, 16), time_window=4_000, pool=pool)
            if not np.array_equal(got, fresh):
                errors.append("differs")
            got.fill(1)

    ths = [threading.Thread(target=work) for _ in range(3)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=60)
    assert not errors and pool.hits + pool.misses == 60 and pool.retained_bytes <= 32 << 20


def test_buffers_are_advised_as_huge_pages():
    """The mapping carries ``MADV_HUGEPAGE`` (``hg`` in its ``VmFlags``, Linux)."""
    import mmap
    import os

    if not hasattr(mmap, "MADV_HUGEPAGE") or not os.path.exists("/proc/self/smaps"):
        pytest.skip("no MADV_HUGEPAGE / /proc/self/smaps on this system")
    pool = OutputPool(0)
    a, _ = pool.empty((GRANULE,), np.uint8)
    start = addr(a)
    flags = None
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= start < hi
            elif inside and line.startswith("VmFlags:"):
                flags = line.split()[1:]
                break
    assert flags is not None and "hg" in flags


def test_scratch_frames_kept_once_per_shape_and_zero():
    ev = synthetic(20_000, W=24, H=16, t_max=200_000, seed=6)
    pool = OutputPool(32 << 20)
    for _ in range(3):
        got = to_frames(ev, (24, 16), time_window=4_000, pool=pool)
        got.fill(3)
        del got
    kept = [a for v in pool._scratch.values() for a in v]
    assert len(kept) == 1 and kept[0].shape[1] == 2 * 16 * 24 and not kept[0].any()
    off = OutputPool(0)
    for _ in range(2):
        to_frames(ev, (24, 16), time_window=4_000, pool=off)
    assert not any(off._scratch.values())


def test_output_freed_inside_a_pool_method_does_not_deadlock():
    """A garbage collection can free an output while this thread is inside a pool method
    (holding its lock); the buffer is given back from there, without a deadlock."""
    pool = OutputPool(64 << 20)
    a, _ = pool.empty((GRANULE,), np.uint8)
    done = []

    def inside():
        with pool._lock:  # as during empty(): the lock held by this thread
            nonlocal a
            a = None  # the lease's __del__ gives the buffer back here
            done.append(pool.retained_bytes)

    t = threading.Thread(target=inside, daemon=True)
    t.start()
    t.join(timeout=20)
    assert done == [GRANULE]
