"""Where a parallel time-window call cuts its windows into chunks (see ``_teamwork``).

A chunk is a run of whole windows ``[k_lo[c], k_lo[c+1])`` with the events
``[ev_lo[c], ev_lo[c+1])`` that belong to them, so that no two threads write the same frame.
The cuts balance an estimate of each chunk's cost, its events plus its frames' bytes / 8
(one event costs about as much as 8-12 bytes of fresh output here), and the plan costs a few
binary searches per cut, not one per window: on the 621 windows of ``dvs128-sparse`` the
search of every window start took ~0.5 ms of the calling thread before the helper could
start (5% of the call), ~0.2 ms on VGA's 116.  The caller still checks that the chunks saw
what a serial run would (``frames._merge_chunks``), so on unsorted times any cut is safe."""

from __future__ import annotations

import numpy as np
from numba import njit

#: chunks per thread of a parallel time-window call, handed out dynamically
CHUNKS_PER_THREAD = 4


@njit(cache=True, nogil=True)
def _search(t, lo, hi, v):
    """First ``i`` in ``[lo, hi)`` with ``t[i] >= v`` (binary search).  On unsorted data
    it still returns an ``i`` with ``t[i - 1] < v`` (if ``i > lo``) and ``t[i] >= v``
    (if ``i < hi``)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if t[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _window_of(ws, v):
    """The window whose start is the last one ``<= v`` (0 before the first)."""
    lo = 0
    hi = ws.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if ws[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return max(lo - 1, 0)


@njit(cache=True, nogil=True)
def plan(t, ws, cuts, frame_work):
    """``(ev_lo, k_lo)`` of at most ``nch`` chunks of about equal cost, ``events +
    frame_work * windows``.  Cut ``c`` is found by one binary search over the events for
    the first event ``i`` with ``i + frame_work * window(t[i]) >= c / nch`` of the total
    (monotone in ``i`` for sorted times), then placed at the start of that event's window
    (or the next one, if the event lies in the later half of its window; or, when windows
    with no event precede it, at the one where their frames reach the target), and its
    first event is one more binary search.  Cuts are strictly increasing windows and
    nondecreasing events; empty chunks are left out."""
    T = ws.shape[0]
    n = t.shape[0]
    total = n + T * frame_work
    nch = cuts.shape[0] + 1
    k_lo = np.empty(nch + 1, np.int64)
    ev_lo = np.empty(nch + 1, np.int64)
    k_lo[0] = 0
    ev_lo[0] = 0
    m = 0
    for c in range(1, nch):
        target = np.int64(total * cuts[c - 1])
        lo = ev_lo[m]
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if mid + frame_work * _window_of(ws, t[mid]) < target:
                lo = mid + 1
            else:
                hi = mid
        if lo >= n:
            break
        k = _window_of(ws, t[lo])
        kg = k_lo[m] + 1  # the first window after the previous event's (sorted times)
        if lo > ev_lo[m]:
            kg = max(kg, _window_of(ws, t[lo - 1]) + 1)
        if kg < k:  # windows kg..k-1 hold no event: cut where their frames reach the target
            k = min(k, max(kg, (target - lo + frame_work - 1) // frame_work))
        elif k + 1 < T and (t[lo] - ws[k]) * 2 > ws[k + 1] - ws[k]:
            k += 1
        if k <= k_lo[m]:
            continue
        if k >= T:
            break
        e = _search(t, ev_lo[m], n, ws[k])
        m += 1
        k_lo[m] = k
        ev_lo[m] = e
    m += 1
    k_lo[m] = T
    ev_lo[m] = n
    return ev_lo[:m + 1].copy(), k_lo[:m + 1].copy()


#: the smallest chunk is ``1 / (TAIL_SPLIT * chunks)`` of the total (see :func:`cut_fractions`)
TAIL_SPLIT = 16


def cut_fractions(nch: int, nthreads: int) -> np.ndarray:
    """Where the cuts fall, as fractions of the total cost: guided sizes, each chunk
    ``1 / (2 * nthreads)`` of what is left, but at least ``1 / (TAIL_SPLIT * nch)`` of the
    total (the last one takes the rest).  Threads take chunks in order, so the thread that
    finds none left waits at most for one of the small last chunks of the others, not for
    an ``nch``-th of the work (equal chunks).  The first chunks are large: two threads
    faulting the fresh pages of neighbouring frames at the same moment cost more CPU
    (one-frame chunks on VGA: +25% of process CPU time)."""
    out, done = [], 0.0
    floor = 1.0 / (TAIL_SPLIT * nch)
    while True:
        size = max((1.0 - done) / (2 * nthreads), floor)
        done += size
        if done >= 1.0 - floor / 2:
            break
        out.append(done)
    return np.array(out)


def chunks(t, ws, nthreads: int, frame_bytes: int):
    """``(ev_lo, k_lo)``: about ``CHUNKS_PER_THREAD * nthreads`` chunks of about equal
    cost (:func:`plan`), or None when one thread should do it all."""
    T, n = len(ws), len(t)
    nch = min(T, CHUNKS_PER_THREAD * nthreads)  # a few chunks per thread, handed out dynamically
    if not (nthreads > 1 and nch > 1 and n >= 4 * nch):
        return None
    ev_lo, k_lo = plan(t, ws, cut_fractions(nch, nthreads), np.int64(max(1, frame_bytes // 8)))
    if len(k_lo) < 3:
        return None
    return ev_lo, k_lo
