"""The time index: one entry per index period the recording's time enters.

Entry ``j`` is ``(index_t[j], index_offset[j])``: ``index_t`` is a period start
``k * period_us`` and ``index_offset`` the first event position whose *running maximum*
of t is at least ``index_t``.  Periods the time skips (gaps) get no entry, so the index
has at most one entry per event and never grows with idle time.  Using the running
maximum keeps offsets non-decreasing even for slightly unsorted input; for sorted input
(every camera and format we read) it is simply the first event with ``t >= index_t``.

:func:`locate` turns a time into an event position with one binary search over the index
and a read of at most one period of t.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INT64_MIN = np.iinfo(np.int64).min


@njit(cache=True, nogil=True, boundscheck=False)
def _is_sorted(t, last_max):
    """Whether ``t`` is non-decreasing and starts at or above ``last_max`` (one branch-free
    pass LLVM vectorizes: a fraction of a nanosecond per event)."""
    n = t.shape[0]
    bad = np.int64(0)
    if n > 0 and t[0] < last_max:
        bad = 1
    for i in range(1, n):
        bad |= np.int64(t[i] < t[i - 1])
    return bad == 0


@njit(cache=True, nogil=True, boundscheck=False)
def _first_at_or_above(t, i, bound):
    """The first position ``j >= i`` with ``t[j] >= bound`` in sorted ``t`` (the caller
    knows ``t[-1] >= bound``): a galloping search from ``i``, O(log of the distance)."""
    if t[i] >= bound:
        return i
    lo, step = i, 1          # t[lo] < bound
    hi = lo + step
    n = t.shape[0]
    while hi < n - 1 and t[hi] < bound:
        lo = hi
        step *= 2
        hi = lo + step
    if hi > n - 1:
        hi = n - 1           # t[hi] >= bound
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if t[mid] < bound:
            lo = mid
        else:
            hi = mid
    return hi


@njit(cache=True, nogil=True)
def _sorted_starts(t, last_max, bound, period, pos, kt):
    """For sorted ``t`` (not below ``last_max``): the positions where t first reaches a
    period start at or after ``bound`` (the next period not yet indexed), into ``pos`` and
    those periods' starts into ``kt``; their count, or -1 when t is not sorted (or ``pos``
    is too short, which sorted t never makes it).  Only the index entries cost a search;
    the events between them are not visited one by one."""
    n = t.shape[0]
    if n == 0 or not _is_sorted(t, last_max):
        return -1
    cnt = 0
    i = 0
    last = t[n - 1]
    while last >= bound:
        i = _first_at_or_above(t, i, bound)
        if cnt >= pos.shape[0]:
            return -1
        start = t[i] // period * period
        pos[cnt] = i
        kt[cnt] = start
        cnt += 1
        bound = start + period
    return cnt


class IndexBuilder:
    """Appends index entries as events arrive (explicit state, no I/O)."""

    def __init__(self, period_us: int):
        if int(period_us) <= 0:
            raise ValueError(f"index_period_us must be > 0, got {period_us}")
        self.period_us = int(period_us)
        self.running_max: int | None = None
        self.last_k: int | None = None
        self.back_in_time = 0  # events earlier than an event before them (counted when unsorted)

    def add(self, t: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Entries for events ``t`` stored from position ``offset``: ``(index_t, index_offset)``."""
        if len(t) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        P = self.period_us
        first = int(t[0]) // P if self.last_k is None else self.last_k + 1
        room = min(len(t), max(0, int(t[-1]) // P - first + 1))
        pos, kt = np.empty(room, np.int64), np.empty(room, np.int64)
        last = INT64_MIN if self.running_max is None else self.running_max
        cnt = _sorted_starts(t, last, first * P, P, pos, kt)
        if cnt >= 0:  # sorted (the usual case): one pass, no division per event
            self.running_max = int(t[-1])
            self.last_k = int(t[-1]) // P
            pos = pos[:cnt]
            pos += offset
            return kt[:cnt], pos
        cm = np.maximum.accumulate(t)
        if self.running_max is not None:
            np.maximum(cm, self.running_max, out=cm)
            self.back_in_time += int(t[0] < self.running_max)
        self.back_in_time += int(np.count_nonzero(t[1:] < cm[:-1]))
        k = cm // P
        # positions where the period of the running maximum changes (or the very first event)
        new = np.empty(len(k), bool)
        new[0] = self.last_k is None or k[0] != self.last_k
        np.not_equal(k[1:], k[:-1], out=new[1:])
        pos = np.flatnonzero(new)
        self.running_max = int(cm[-1])
        self.last_k = int(k[-1])
        return (k[pos] * P).astype(np.int64), (pos + offset).astype(np.int64)


def locate(index_t, index_offset, n_index: int, read_t, n_events: int, t_us: int) -> int:
    """First event position whose running maximum of t is ``>= t_us``.

    ``index_t``/``index_offset`` are array-likes (h5py datasets work: only the probed
    elements are read), valid up to ``n_index``; ``read_t(a, b)`` returns t[a:b].
    """
    if n_events == 0 or n_index == 0:
        return 0
    lo, hi = 0, n_index  # first j with index_t[j] > t_us  -> the entry at or before is j-1
    while lo < hi:
        mid = (lo + hi) // 2
        if int(index_t[mid]) <= t_us:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return 0  # before the first period: everything is at or after t_us
    j = lo - 1
    a = min(int(index_offset[j]), n_events)
    b = min(int(index_offset[lo]), n_events) if lo < n_index else n_events
    if a >= b:
        return a
    seg = np.maximum.accumulate(np.asarray(read_t(a, b)))
    return a + int(np.searchsorted(seg, t_us, side="left"))
