"""The one-shot time-window kernel's per-window loops (moved out of ``frames`` so that
``_writeonce`` can use them without an import cycle; ``frames`` re-exports them).

:func:`_bin_time_range`: the general kernel (any windows, overlapping too);
:func:`_bin_window`: one window, every event through the time policy inline;
:func:`_bin_pairs`: ordinary events two at a time with one test per pair;
:func:`_bin_window_fast`: pairs, falling back to the per-event loop around anything unusual.
See ``docs/kernels.md`` ("How the time-window kernel works")."""

from __future__ import annotations

import numpy as np
from numba import njit

from eventpipe.kernels._common import (
    C_BINNED,
    C_IN,
    T_BACK,
    T_OK,
    add_counts,
    prefetch_ahead,
    time_policy,
)

@njit(cache=True, nogil=True)
def _bin_window(ev, a, n, start, end, frame, W, H, npol, tol, maxval, runmax, counters):
    """Events from ``ev[a]`` on into one window ``[start, end)`` (``frame``: the flat
    ``P*H*W`` frame), with the time policy, up to the first event at or past ``end``
    (not consumed).  Returns ``(i, runmax)``: where it stopped, the running maximum.

    The same per-event rules as :func:`_bin_time_range` with one window, written for
    speed: the loop index is unsigned (no negative-index wraparound code), whole
    records are read (one pointer, constant 13-byte stride, instead of four strided
    field views) and the frame is indexed flat.  That matters in a loop of ~20
    instructions per event.
    """
    Wu = np.uint64(W)
    Hu = np.uint64(H)
    plane = np.uint64(H * W if npol == 2 else 0)
    n_clamp = 0
    n_back = 0
    n_oob = 0
    n_range = 0
    one = np.uint64(1)  # (uint64 + int64 would make a float64)
    i = np.uint64(a)
    nu = np.uint64(n)
    while i < nu:
        prefetch_ahead(ev, i)
        e = ev[i]
        ti = e.t
        i += one
        xi = np.uint64(e.x)  # a negative (signed) coordinate wraps to a huge one: out of bounds
        yi = np.uint64(e.y)
        # One branch for the three time tests, taken only by events that are not in order
        # inside this window (rare): three separate branches cost ~7% more per event.
        if (ti < runmax) | (ti >= end) | (ti < start):
            if ti >= runmax:
                if ti >= end:  # the next window's first event: not consumed
                    i -= one
                    break
                runmax = ti  # before the window
                if (xi >= Wu) | (yi >= Hu):
                    n_oob += 1
                else:
                    n_range += 1
                continue
            if runmax - ti > tol:  # backwards beyond the tolerance: dropped
                n_back += 1
                continue
            n_clamp += 1  # backwards within the tolerance: binned at time runmax
            if (xi >= Wu) | (yi >= Hu):
                n_oob += 1
                continue
            if runmax < start:
                n_range += 1
                continue
        else:
            runmax = ti
        if (xi >= Wu) | (yi >= Hu):
            n_oob += 1
            continue
        j = yi * Wu + xi + plane * np.uint64(e.p > 0)
        v = frame[j]
        if v < maxval:
            frame[j] = v + 1
    add_counts(counters, np.int64(i) - a, n_oob, n_clamp, n_back, n_range)
    return np.int64(i), runmax


#: events the one-event loop takes at a time when a pair fails the fast test
CAREFUL_RUN = 64


@njit(cache=True, nogil=True)
def _bin_pairs(ev, a, lim, lo, end, frame, W, H, npol, maxval, saturate):
    """Events from ``ev[a]`` on, two at a time, while both are in order, inside
    ``[lo, end)`` (``lo``: the running maximum, at least the window's start) and inside
    the sensor, up to ``lim``: one test per pair, no per-event bookkeeping.  Returns the
    first event not taken (the caller hands it to :func:`_bin_window`).

    ``saturate=False`` when the frame cannot reach ``maxval`` before ``lim``, so the
    count needs no test.  Integer times only.  The test is seven comparisons joined by
    ``&`` into one branch: ``lo <= t0 <= t1 < end`` (signed), and each coordinate,
    sign-extended to 64 bits and read as unsigned, below the sensor size (so a negative
    coordinate of tonic's signed dtypes is huge and fails too)."""
    Wu = np.uint64(W)
    Hu = np.uint64(H)
    plane = np.uint64(H * W if npol == 2 else 0)
    one = np.uint64(1)
    two = np.uint64(2)
    i = np.uint64(a)
    prev = np.int64(lo)
    if lim <= a + 1:  # a pair needs i + 1 < lim
        return a
    last = np.uint64(lim - 1)
    while i < last:
        prefetch_ahead(ev, i)
        e0 = ev[i]
        e1 = ev[i + one]
        t0 = np.int64(e0.t)
        t1 = np.int64(e1.t)
        x0 = np.uint64(np.int64(e0.x))
        y0 = np.uint64(np.int64(e0.y))
        x1 = np.uint64(np.int64(e1.x))
        y1 = np.uint64(np.int64(e1.y))
        # (``&`` of the comparisons, not ``and``: one branch, not seven)
        ok = ((t0 >= prev) & (t1 >= t0) & (t1 < end) & (x0 < Wu) & (x1 < Wu) & (y0 < Hu)
              & (y1 < Hu))
        if not ok:
            break
        j0 = y0 * Wu + x0 + plane * np.uint64(e0.p > 0)
        j1 = y1 * Wu + x1 + plane * np.uint64(e1.p > 0)
        if saturate:
            v = frame[j0]
            if v < maxval:
                frame[j0] = v + 1
            v = frame[j1]
            if v < maxval:
                frame[j1] = v + 1
        else:
            frame[j0] += 1
            frame[j1] += 1
        prev = t1
        i += two
    return np.int64(i)


@njit(cache=True, nogil=True)
def _bin_window_fast(ev, a, n, start, end, frame, W, H, npol, tol, maxval, runmax, counters,
                     room):
    """:func:`_bin_window` for a frame that holds at most ``maxval - room`` (the one-shot
    kernel: a frame starts at zero, ``room = maxval``): the same result, faster.  Pairs of
    ordinary events (in order, in the window, in the sensor) go through
    :func:`_bin_pairs`; the first pair that is not, and up to ``CAREFUL_RUN`` events from
    it, through :func:`_bin_window`'s per-event rules; then pairs again.  While the frame
    has taken fewer than ``room`` events no count can reach ``maxval``, so the pairs skip
    the saturation test.  Returns ``(i, runmax)`` as :func:`_bin_window`."""
    i = np.int64(a)
    while i < n:
        lo = max(runmax, start)
        if lo >= end:  # (not at a window's start; the per-event rules sort it out)
            return _bin_window(ev, i, n, start, end, frame, W, H, npol, tol, maxval, runmax,
                               counters)
        lim = n
        saturate = room < n - i
        if saturate and room >= 2:  # without the test up to room, then with it
            lim = i + room
            saturate = False
        k = _bin_pairs(ev, i, lim, lo, end, frame, W, H, npol, maxval, saturate)
        if k > i:
            counters[C_IN] += k - i
            counters[C_BINNED] += k - i
            room -= k - i
            runmax = np.int64(ev[k - 1].t)
            i = k
        if i >= n:
            break
        if i == lim and lim < n:
            continue  # (room used up: the same pairs, now with the saturation test)
        stop = min(n, i + CAREFUL_RUN)
        k, runmax = _bin_window(ev, i, stop, start, end, frame, W, H, npol, tol, maxval,
                                runmax, counters)
        room -= k - i  # (at most that many counted)
        if k < stop:  # at or past the window's end: not consumed
            return k, runmax
        i = k
    return i, runmax


@njit(cache=True, nogil=True)
def _bin_time_range(x, y, t, p, a, b, ws, we, out, npol, tol, maxval, runmax, counters):
    """Accumulate events ``[a, b)`` into time windows ``ws/we`` (nondecreasing, may
    overlap: an event goes to every window containing it).  Returns the running max."""
    T = ws.shape[0]
    H = out.shape[2]
    W = out.shape[3]
    n_clamp = 0
    n_back = 0
    n_oob = 0
    n_range = 0
    k_lo = 0
    for i in range(a, b):
        ti, runmax, st = time_policy(t[i], runmax, tol)
        if st != T_OK:
            if st == T_BACK:
                n_back += 1
                continue
            n_clamp += 1
        xi = x[i]
        yi = y[i]
        if xi < 0 or yi < 0 or xi >= W or yi >= H:  # (signed coordinates: tonic's int16)
            n_oob += 1
            continue
        while k_lo < T and we[k_lo] <= ti:
            k_lo += 1
        if k_lo == T or ws[k_lo] > ti:
            n_range += 1
            continue
        pi = 0
        if npol == 2 and p[i] > 0:
            pi = 1
        k = k_lo
        while k < T and ws[k] <= ti:
            v = out[k, pi, yi, xi]
            if v < maxval:
                out[k, pi, yi, xi] = v + 1
            k += 1
    add_counts(counters, b - a, n_oob, n_clamp, n_back, n_range)
    return runmax
