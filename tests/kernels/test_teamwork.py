"""Parallel time-window binning without a barrier (``_teamwork``) and the default thread count."""

from __future__ import annotations

import gc
import threading
import weakref

import numba
import numpy as np
import pytest
from numba import njit

from eventpipe.kernels import OutputPool, frames, to_frames
from eventpipe.kernels._teamwork import (
    PARALLEL_MIN_WORK,
    _Call,
    claim,
    max_threads,
    plan_threads,
    run_chunks,
    team,
)
from tests.kernels._util import synthetic, to_tonic


@njit(nogil=True)
def _claim_all(counter, n, owner, wid):
    k = 0
    while True:
        c = claim(counter)
        if c >= n:
            return k
        owner[c] += wid  # each index once: owner[c] is exactly one thread's id
        k += 1


def test_claim_hands_out_every_index_exactly_once_across_threads():
    n = 2_000_000
    counter = np.zeros(1, np.int64)
    owner = np.zeros(n, np.int64)
    _claim_all(np.zeros(1, np.int64), 4, np.zeros(4, np.int64), 1)  # compile first
    got = {}
    start = threading.Barrier(2)

    def run(wid):
        start.wait()
        got[wid] = _claim_all(counter, n, owner, wid)

    ths = [threading.Thread(target=run, args=(w,)) for w in (1, 2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(timeout=60)
    assert got[1] + got[2] == n  # (a non-atomic add hands some index out twice)
    assert np.all((owner == 1) | (owner == 2))
    assert int(counter[0]) == n + 2  # each thread's last claim is past the end


def test_plan_threads_default_is_numbas_count_above_the_work_threshold(all_cores):
    assert plan_threads(None, PARALLEL_MIN_WORK, 0) == all_cores
    assert plan_threads(None, 0, 8 * PARALLEL_MIN_WORK) == all_cores
    assert plan_threads(None, PARALLEL_MIN_WORK - 1, 0) == 1  # small call: one thread
    assert plan_threads(None, PARALLEL_MIN_WORK // 2, 8 * (PARALLEL_MIN_WORK // 2) - 8) == 1
    # an explicit count is used as given, clamped to [1, numba's pool size]
    assert plan_threads(1, 10**9, 10**9) == 1
    assert plan_threads(0, 10**9, 10**9) == 1
    assert plan_threads(2, 10, 10) == min(2, max_threads())
    assert plan_threads(10_000, 10, 10) == max_threads()


def test_plan_threads_follows_numba_set_num_threads():
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert plan_threads(None, 10**9, 10**9) == 1
    finally:
        numba.set_num_threads(old)


@pytest.fixture
def all_cores():
    """Numba's thread count at its default for the test (another test's runtime may have
    set it to 1 in this thread: snn's ThreadSync with model.threads=1)."""
    old = numba.get_num_threads()
    numba.set_num_threads(max_threads())
    yield max_threads()
    numba.set_num_threads(old)


def _spy(monkeypatch):
    calls = []
    real = frames.run_chunks

    def spy(work, nthreads, nchunks):
        calls.append((nthreads, nchunks))
        return real(work, nthreads, nchunks)

    monkeypatch.setattr(frames, "run_chunks", spy)
    return calls


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one core: no parallel path")
def test_default_call_splits_big_work_between_threads_and_not_small_work(monkeypatch, all_cores):
    calls = _spy(monkeypatch)
    big = synthetic(PARALLEL_MIN_WORK + 1000, W=64, H=48, t_max=2_000_000, seed=5)
    one = to_frames(big, (64, 48), time_window=10_000, threads=1)
    assert calls == []
    np.testing.assert_array_equal(to_frames(big, (64, 48), time_window=10_000), one)
    assert calls and calls[-1][0] == all_cores
    np.testing.assert_array_equal(to_frames(to_tonic(big), (64, 48), time_window=10_000), one)
    calls.clear()
    small = big[:PARALLEL_MIN_WORK // 4]
    np.testing.assert_array_equal(to_frames(small, (64, 48), time_window=10_000),
                                  to_frames(small, (64, 48), time_window=10_000, threads=1))
    assert calls == []  # below the threshold the default call runs on one thread


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one core: no parallel path")
@pytest.mark.parametrize("into", ["new", "out", "pool"])
def test_call_does_not_wait_for_a_helper_that_has_not_started(monkeypatch, into):
    """The helper is held busy by another job: the call's chunks are all done by the calling
    thread and it returns (an OpenMP-style barrier would wait for the busy helper)."""
    calls = _spy(monkeypatch)
    ev = synthetic(50_000, W=40, H=30, t_max=1_000_000, seed=9)
    want = to_frames(ev, (40, 30), time_window=10_000, threads=1)
    t = team()
    t.ensure(max_threads() - 1)
    release = threading.Event()
    busy = [threading.Event() for _ in t.threads]

    def hold(wid):
        busy[wid - 1].set()
        release.wait(60)
        return 0

    for wid in range(1, len(t.threads) + 1):
        t.jobs.put((_Call(hold), wid))
    try:
        for b in busy:
            assert b.wait(30)
        out = np.full_like(want, 7) if into == "out" else None
        pool = OutputPool(want.nbytes * 2) if into == "pool" else None
        got = to_frames(ev, (40, 30), time_window=10_000, threads=2, out=out, pool=pool)
        np.testing.assert_array_equal(got, want)
        assert calls and calls[-1][1] > 1  # it was a parallel call, done without the helper
        assert not release.is_set()
        # the call's job still waits in the queue, but holds none of the caller's arrays
        gone = weakref.ref(ev), weakref.ref(got)
        del ev, got, out, pool
        gc.collect()
        assert gone[0]() is None and gone[1]() is None
    finally:
        release.set()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one core: no helper thread")
def test_helper_failure_raises_instead_of_hanging():
    t = team()
    t.ensure(1)
    counter = np.zeros(1, np.int64)
    claimed = threading.Event()

    def work(wid):
        if wid == 1:
            claim(counter)  # takes chunk 0 ...
            claimed.set()
            raise ValueError("boom")  # ... and never finishes it
        assert claimed.wait(30)
        k = 0
        while claim(counter) < 4:
            k += 1
        return k

    with pytest.raises(RuntimeError, match="helper"):
        run_chunks(work, 2, 4)


def test_index_window_modes_use_the_same_default_thread_count(monkeypatch, all_cores):
    seen = []
    real = frames.numba_threads

    def spy(n):
        seen.append(n)
        return real(n)

    monkeypatch.setattr(frames, "numba_threads", spy)
    ev = synthetic(PARALLEL_MIN_WORK + 1000, W=64, H=48, t_max=2_000_000, seed=6)
    want = to_frames(ev, (64, 48), event_count=5000, threads=1)
    assert seen == [1]
    np.testing.assert_array_equal(to_frames(ev, (64, 48), event_count=5000), want)
    assert seen[-1] == all_cores
    to_frames(ev[:1000], (64, 48), n_event_bins=4)
    assert seen[-1] == 1


def test_import_starts_no_thread_and_the_first_parallel_call_starts_the_helpers():
    import subprocess
    import sys

    code = ("import threading, numpy as np, numba\n"
            "import eventpipe.kernels as k\n"
            "from tests.kernels._util import synthetic\n"
            "print(threading.active_count())\n"
            "ev = synthetic(50_000, t_max=1_000_000)\n"
            "k.to_frames(ev, (32, 24), time_window=10_000, threads=2)\n"
            "print(threading.active_count(), min(2, numba.config.NUMBA_NUM_THREADS))\n")
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True, cwd=Path(__file__).resolve().parents[2]
                         ).stdout.split()
    assert out[0] == "1"
    assert int(out[1]) == int(out[2])  # the calling thread + one helper (if two cores)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True, float("nan")])
def test_threads_other_than_none_or_a_positive_integer_is_one_clear_error(bad):
    ev = synthetic(100, W=8, H=8, t_max=1000, seed=1)
    with pytest.raises(ValueError, match=r"threads must be None .* or an integer >= 1, got"):
        to_frames(ev, (8, 8), time_window=100, threads=bad)


def test_threads_accepts_numpy_integers():
    ev = synthetic(100, W=8, H=8, t_max=1000, seed=1)
    np.testing.assert_array_equal(to_frames(ev, (8, 8), time_window=100, threads=np.int64(2)),
                                  to_frames(ev, (8, 8), time_window=100, threads=1))
