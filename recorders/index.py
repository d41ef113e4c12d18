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


class IndexBuilder:
    """Appends index entries as events arrive (explicit state, no I/O)."""

    def __init__(self, period_us: int):
        if int(period_us) <= 0:
            raise ValueError(f"index_period_us must be > 0, got {period_us}")
        self.period_us = int(period_us)
        self.running_max: int | None = None
        self.last_k: int | None = None

    def add(self, t: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Entries for events ``t`` stored from position ``offset``: ``(index_t, index_offset)``."""
        if len(t) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        P = self.period_us
        if (self.running_max is None or t[0] >= self.running_max) and bool(np.all(t[1:] >= t[:-1])):
            # sorted (the usual case): find period starts by binary search, not per event
            first = int(t[0]) // P if self.last_k is None else self.last_k + 1
            bounds = np.arange(first, int(t[-1]) // P + 1, dtype=np.int64) * P
            pos = np.unique(np.searchsorted(t, bounds, side="left"))
            pos = pos[pos < len(t)]
            self.running_max = int(t[-1])
            self.last_k = int(t[-1]) // P
            return (t[pos] // P * P).astype(np.int64), (pos + offset).astype(np.int64)
        cm = np.maximum.accumulate(t)
        if self.running_max is not None:
            np.maximum(cm, self.running_max, out=cm)
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
