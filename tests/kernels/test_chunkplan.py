"""Where a parallel time-window call cuts its windows (``_chunkplan``): whole windows with
exactly their events, costs balanced as planned, guided sizes, and safe on unsorted times."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.kernels import to_frames
from eventpipe.kernels._chunkplan import (
    CHUNKS_PER_THREAD,
    TAIL_SPLIT,
    chunks,
    cut_fractions,
    plan,
)
from eventpipe.kernels._windows import time_windows
from tests.kernels._util import synthetic


def _check_structure(ev_lo, k_lo, n, T):
    assert ev_lo[0] == 0 and ev_lo[-1] == n and k_lo[0] == 0 and k_lo[-1] == T
    assert np.all(np.diff(k_lo) > 0)  # no empty run of windows, none shared
    assert np.all(np.diff(ev_lo) >= 0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("nthreads", [2, 3, 4])
def test_chunks_are_whole_windows_with_exactly_their_events(seed, nthreads):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2_000, 60_000))
    t = np.sort(rng.integers(0, int(rng.integers(50_000, 2_000_000)), n)).astype(np.int64)
    if seed % 2:  # bursts: the event rate varies 100x along the recording
        t = np.sort(np.concatenate([t, rng.integers(0, 20_000, 5 * n)]))
    win = int(rng.integers(500, 20_000))
    ws, _ = time_windows(int(t[0]), int(t[-1]), win, win, False)
    got = chunks(t, ws, nthreads, frame_bytes=int(rng.integers(8, 2_000_000)))
    if got is None:
        assert len(ws) < 2
        return
    ev_lo, k_lo = got
    _check_structure(ev_lo, k_lo, len(t), len(ws))
    # each chunk starts at its first window's first event (sorted times: a lower bound)
    np.testing.assert_array_equal(ev_lo[1:-1], np.searchsorted(t, ws[k_lo[1:-1]], side="left"))


def test_guided_sizes_start_at_a_share_per_thread_and_shrink_to_a_floor():
    for nthreads in (2, 4):
        nch = CHUNKS_PER_THREAD * nthreads
        size = np.diff(np.r_[0.0, cut_fractions(nch, nthreads), 1.0])
        assert size[0] == pytest.approx(1 / (2 * nthreads))
        assert np.all(np.diff(size[:-1]) <= 1e-12)  # non-increasing (the last is the rest)
        assert size[-2] == pytest.approx(1 / (TAIL_SPLIT * nch))
        assert size[-1] < 2 / (TAIL_SPLIT * nch)
        assert np.all(size > 0)
    assert len(cut_fractions(CHUNKS_PER_THREAD * 2, 2)) + 1 == 16  # as docs/kernels.md says
    assert (CHUNKS_PER_THREAD, TAIL_SPLIT) == (4, 16)


def test_cuts_balance_events_plus_frame_bytes():
    """Each chunk's cost (events + its frames' bytes / 8) is its planned share within one
    window's cost at each end, also where the rate jumps 20x and where 400 windows hold no
    event: with heavy frames the cuts follow the windows, with light ones the events."""
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(0, 10_000_000, 400_000)).astype(np.int64)
    t[: len(t) // 2] = np.sort(rng.integers(0, 1_000_000, len(t) // 2))  # dense first tenth,
    # then nothing until the second half's first event at ~5 s
    ws, _ = time_windows(int(t[0]), int(t[-1]), 10_000, 10_000, False)
    T, n = len(ws), len(t)
    e = np.searchsorted(t, ws, side="left")
    for frame_bytes in (8, 80_000, 8_000_000):
        fw = frame_bytes // 8
        ev_lo, k_lo = chunks(t, ws, 2, frame_bytes)
        cost = np.diff(ev_lo) + np.diff(k_lo) * fw
        share = np.diff(np.r_[0.0, cut_fractions(CHUNKS_PER_THREAD * 2, 2), 1.0])
        one_window = np.max(np.diff(np.r_[e, n])) + fw
        assert len(cost) == len(share)
        assert np.all(np.abs(cost - share * (n + T * fw)) <= 2 * one_window)


def test_unsorted_and_float_times_give_valid_cuts_and_the_serial_result():
    ev = synthetic(300_000, W=40, H=30, t_max=3_000_000, seed=4, backwards=3_000)
    t = ev["t"]
    ws, _ = time_windows(int(t[0]), int(t[-1]), 10_000, 10_000, False)
    ev_lo, k_lo = chunks(t, ws, 2, 40 * 30 * 2 * 2)
    _check_structure(ev_lo, k_lo, len(t), len(ws))
    ev_lo_f, k_lo_f = plan(t.astype(np.float64), ws, cut_fractions(8, 2), np.int64(600))
    _check_structure(ev_lo_f, k_lo_f, len(t), len(ws))
    np.testing.assert_array_equal(to_frames(ev, (40, 30), time_window=10_000, threads=2),
                                  to_frames(ev, (40, 30), time_window=10_000, threads=1))


def test_one_thread_too_few_events_or_one_window_is_not_split():
    t = np.arange(1000, dtype=np.int64) * 10
    ws, _ = time_windows(0, 9990, 1000, 1000, False)
    assert chunks(t, ws, 1, 1000) is None
    assert chunks(t[:20], ws, 2, 1000) is None  # fewer than 4 events per chunk
    assert chunks(t, ws[:1], 2, 1000) is None
    # every event in the first of ten windows: nothing to share (the empty frames after the
    # last event are left to the last chunk: a fresh output's are never touched)
    ws_many, _ = time_windows(0, 10_000_000, 1_000_000, 1_000_000, False)
    assert chunks(np.sort(t % 1000), ws_many, 2, 10**9) is None


def test_window_of_is_the_last_window_starting_at_or_before_a_time():
    """``_window_of`` against numpy's ``searchsorted`` (0 before the first start), at every
    start, between starts, before the first and after the last."""
    from eventpipe.kernels._chunkplan import _window_of

    rng = np.random.default_rng(7)
    for T in (1, 2, 3, 17, 64):
        ws = np.sort(rng.choice(np.arange(0, 10_000, 7), T, replace=False)).astype(np.int64)
        vs = np.r_[ws, ws - 1, ws + 1, -5, 20_000, rng.integers(-10, 10_010, 50)]
        want = np.maximum(np.searchsorted(ws, vs, side="right") - 1, 0)
        got = [_window_of(ws, np.int64(v)) for v in vs]
        assert got == want.tolist(), T


def test_a_cut_among_empty_windows_lands_where_their_frames_reach_the_target():
    """Worked by hand: ten windows of 10 us, 100 events in the first and 100 in the last, each
    frame worth 10 events: the total cost is 200 + 10 x 10 = 300, and a cut at half of it
    (150) must leave the first chunk 100 events + 5 frames: windows 0-4, the empty windows
    5-8 and the last one to the second chunk."""
    t = np.r_[np.arange(100) % 10, 90 + np.arange(100) % 10].astype(np.int64)
    t.sort()
    ws = np.arange(0, 100, 10, dtype=np.int64)
    ev_lo, k_lo = plan(t, ws, np.array([0.5]), np.int64(10))
    assert k_lo.tolist() == [0, 5, 10] and ev_lo.tolist() == [0, 100, 200]


def test_two_windows_on_two_threads_are_two_chunks():
    """The smallest split: two windows, two threads, each window's events a chunk of its own."""
    t = np.arange(1000, dtype=np.int64)
    ws = np.array([0, 500], np.int64)
    ev_lo, k_lo = chunks(t, ws, 2, 1000)
    assert k_lo.tolist() == [0, 1, 2] and ev_lo.tolist() == [0, 500, 1000]
