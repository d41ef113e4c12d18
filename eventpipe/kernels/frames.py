"""Event frames: per-polarity counts ``(T, P, H, W)``, Numba kernels + NumPy reference.

Windows are half-open ``[start, end)`` in event time.  Slicing follows
``tonic.functional.to_frame_numpy`` except where tonic is wrong (see
``docs/kernels.md``):

* ``include_incomplete=True`` always covers the last event (tonic drops an
  event lying exactly on the end of its last window);
* ``n_time_bins`` splits ``[t_first, t_last]`` into bins of equal *real* length
  with the last bin closed (tonic floors the bin length to an integer and loses
  the events at ``t_last``); ``n_event_bins`` spreads the remainder
  ``N % n`` over the bins instead of dropping it;
* empty input gives ``(0, P, H, W)`` (time/count windows) or zeros
  ``(n, P, H, W)`` (bin modes) in the requested dtype, not float64 ``(1, P, W, H)``;
* ``polarities=1`` merges ON and OFF without touching the input (tonic raises
  on mixed polarities and writes ``p = 0`` into the caller's array);
* out-of-bounds coordinates are dropped and counted (tonic raises IndexError);
  backwards timestamps follow the time policy in ``_common``;
* counts saturate at the dtype's maximum (default int16, as tonic) or ``clip``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from eventpipe.kernels._windows import _index_windows, _time_bin_windows, time_windows
from eventpipe.kernels._common import (
    I64_MIN,
    DEFAULT_TIME_TOLERANCE_US,
    N_COUNTERS,
    BinStats,
    as_event_array,
    check_out,
    fields,
    n_polarities,
    numba_threads,
    saturation_value,
    sensor_wh,
)



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
    n_binned = 0
    k_lo = 0
    for i in range(a, b):
        ti = t[i]
        if ti < runmax:
            if runmax - ti <= tol:
                ti = runmax
                n_clamp += 1
            else:
                n_back += 1
                continue
        else:
            runmax = ti
        xi = x[i]
        yi = y[i]
        if xi >= W or yi >= H:
            n_oob += 1
            continue
        while k_lo < T and we[k_lo] <= ti:
            k_lo += 1
        if k_lo == T or ws[k_lo] > ti:
            n_range += 1
            continue
        pi = 0
        if npol == 2 and p[i] != 0:
            pi = 1
        k = k_lo
        while k < T and ws[k] <= ti:
            v = out[k, pi, yi, xi]
            if v < maxval:
                out[k, pi, yi, xi] = v + 1
            k += 1
        n_binned += 1
    counters[0] += b - a
    counters[1] += n_binned
    counters[2] += n_oob
    counters[3] += n_clamp
    counters[4] += n_back
    counters[5] += n_range
    return runmax


@njit(cache=True, nogil=True)
def _bin_disjoint(x, y, t, p, a, b, ws, we, out, npol, tol, maxval, runmax, stop_at_end,
                  counters):
    """Fast path for non-overlapping windows: events ``[a, b)`` -> ``out[k]``.

    With ``stop_at_end`` it returns at the first event past the last window
    (so a caller can continue with other windows).  Returns ``(i_stop, runmax)``.
    """
    T = ws.shape[0]
    H = out.shape[2]
    W = out.shape[3]
    n_clamp = 0
    n_back = 0
    n_oob = 0
    n_range = 0
    n_binned = 0
    k = 0
    big = np.iinfo(np.int64).max
    cur_start = ws[0] if T > 0 else big
    cur_end = we[0] if T > 0 else big
    i = a
    while i < b:
        ti = t[i]
        if ti < runmax:
            if runmax - ti <= tol:
                ti = runmax
                n_clamp += 1
            else:
                n_back += 1
                i += 1
                continue
        else:
            runmax = ti
            if ti >= cur_end:
                while k < T and we[k] <= ti:
                    k += 1
                if k == T:
                    if stop_at_end:
                        break
                    cur_start = big
                    cur_end = big
                else:
                    cur_start = ws[k]
                    cur_end = we[k]
        xi = x[i]
        yi = y[i]
        i += 1
        if xi >= W or yi >= H:
            n_oob += 1
            continue
        if ti < cur_start:
            n_range += 1
            continue
        pi = 0
        if npol == 2 and p[i - 1] != 0:
            pi = 1
        v = out[k, pi, yi, xi]
        if v < maxval:
            out[k, pi, yi, xi] = v + 1
        n_binned += 1
    counters[0] += i - a
    counters[1] += n_binned
    counters[2] += n_oob
    counters[3] += n_clamp
    counters[4] += n_back
    counters[5] += n_range
    return i, runmax


@njit(cache=True, parallel=True)
def _bin_time_parallel(x, y, t, p, ws, we, out, npol, tol, maxval, priv, kfirst,
                       chunk_max, counters):
    """Split events into ``len(kfirst)`` chunks, one per thread.

    Only valid for non-overlapping windows.  Chunk ``c > 0`` writes its first
    window into ``priv[c]`` (merged afterwards), so no two threads write the same
    frame.  Each chunk starts its running maximum at its first timestamp; the
    caller checks that this equals the serial semantics (true unless time steps
    backwards across a chunk border) and otherwise reruns serially.
    """
    n = x.shape[0]
    nch = kfirst.shape[0]
    for c in prange(nch):
        a = c * n // nch
        b = (c + 1) * n // nch
        if a >= b:
            kfirst[c] = -1
            chunk_max[c] = I64_MIN
            continue
        runmax = t[a]
        i = a
        kp = -1
        if c > 0:
            kp = np.searchsorted(we, t[a], side="right")
            if kp < ws.shape[0]:
                i, runmax = _bin_disjoint(x, y, t, p, a, b, ws[kp:kp + 1], we[kp:kp + 1],
                                          priv[c:c + 1], npol, tol, maxval, runmax, True,
                                          counters[c])
        kfirst[c] = kp
        i, runmax = _bin_disjoint(x, y, t, p, i, b, ws, we, out, npol, tol, maxval, runmax,
                                  False, counters[c])
        chunk_max[c] = runmax


@njit(cache=True, parallel=True)
def _bin_index_windows(x, y, p, starts, ends, out, npol, maxval):
    """Accumulate index windows ``[starts[k], ends[k])`` (event_count / bin modes)."""
    T = starts.shape[0]
    for k in prange(T):
        for i in range(starts[k], ends[k]):
            pi = 0
            if npol == 2 and p[i] != 0:
                pi = 1
            v = out[k, pi, y[i], x[i]]
            if v < maxval:
                out[k, pi, y[i], x[i]] = v + 1


@njit(cache=True, nogil=True)
def _valid_mask(x, y, t, W, H, tol, counters):
    """Time policy + bounds check; returns (keep mask, number kept)."""
    n = x.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    runmax = I64_MIN
    kept = 0
    for i in range(n):
        ti = t[i]
        if ti < runmax:
            if runmax - ti <= tol:
                counters[3] += 1
            else:
                counters[4] += 1
                continue
        else:
            runmax = ti
        if x[i] >= W or y[i] >= H:
            counters[2] += 1
            continue
        keep[i] = True
        kept += 1
    counters[0] += n
    return keep, kept


def _bin_time(x, y, t, p, ws, we, res, P, tol, maxval, nthreads, counters) -> int:
    """Bin into time windows (parallel when possible); returns the final running max."""
    disjoint = bool(np.all(we[:-1] <= ws[1:]))
    if nthreads > 1 and disjoint and len(x) >= 4 * nthreads:
        priv = np.zeros((nthreads, P) + res.shape[2:], dtype=res.dtype)
        kfirst = np.empty(nthreads, np.int64)
        cmax = np.empty(nthreads, np.int64)
        with numba_threads(nthreads):
            _bin_time_parallel(x, y, t, p, ws, we, res, P, tol, maxval, priv, kfirst, cmax,
                               counters)
        starts = np.arange(nthreads) * len(x) // nthreads
        prefix = np.maximum.accumulate(cmax)
        if all(prefix[c - 1] <= t[starts[c]] for c in range(1, nthreads) if kfirst[c] >= 0):
            for c in range(1, nthreads):
                k = int(kfirst[c])
                if 0 <= k < len(ws):
                    _merge_saturating(res[k], priv[c], maxval)
            return int(prefix[-1])
        res.fill(0)  # time stepped back across a chunk border: serial semantics
        counters[:] = 0
    if disjoint:
        _, runmax = _bin_disjoint(x, y, t, p, 0, len(x), ws, we, res, P, tol, maxval,
                                  np.int64(I64_MIN), False, counters[0])
    else:
        runmax = _bin_time_range(x, y, t, p, 0, len(x), ws, we, res, P, tol, maxval,
                                 np.int64(I64_MIN), counters[0])
    return int(runmax)


def to_frames(events, sensor_size, time_window=None, event_count=None, n_time_bins=None,
              n_event_bins=None, overlap=0, include_incomplete=False, start_time=None,
              end_time=None, *, polarities=None, dtype=np.int16, binary=False, clip=None,
              out=None, threads=1, time_tolerance_us=DEFAULT_TIME_TOLERANCE_US,
              return_stats=False):
    """Bin events into per-polarity count frames ``(T, P, H, W)``.

    Exactly one of ``time_window`` (µs, with ``overlap`` in µs), ``event_count``
    (``overlap`` in events), ``n_time_bins`` or ``n_event_bins`` (``overlap`` a
    fraction of a bin).  ``sensor_size`` is ``(W, H)`` (or tonic's ``(W, H, P)``).
    ``polarities=1`` merges ON/OFF.  ``binary=True`` / ``clip=N`` saturate counts
    at 1 / N.  ``out`` is a preallocated C-contiguous array (overwritten).
    ``threads`` > 1 uses the parallel kernel.  Returns the frames, or
    ``(frames, BinStats)`` with ``return_stats=True``.  Never mutates ``events``.
    """
    modes = [time_window, event_count, n_time_bins, n_event_bins]
    if sum(m is not None for m in modes) != 1:
        raise ValueError("set exactly one of time_window, event_count, n_time_bins, n_event_bins")
    W, H = sensor_wh(sensor_size)
    P = n_polarities(sensor_size, polarities)
    ev = as_event_array(events)
    x, y, t, p = fields(ev)
    maxval = saturation_value(dtype, clip, binary)
    tol = np.int64(time_tolerance_us)
    stats = BinStats()
    nthreads = max(1, int(threads or 1))

    if time_window is not None or n_time_bins is not None:
        if len(ev) == 0 and (start_time is None or end_time is None or n_time_bins is not None):
            T = 0 if n_time_bins is None else int(n_time_bins)
            res = check_out(out, (T, P, H, W), dtype)
            return (res, stats) if return_stats else res
        t_first = int(t[0]) if start_time is None else int(start_time)
        if time_window is not None:
            window = int(time_window)
            # t_last is the running maximum at the end; guess t[-1] (sorted data) and let the
            # kernel report the true maximum, rerunning in the rare case they differ.  With a
            # caller's out= the shape must be right first time: scan for the maximum.
            guess = end_time is None and out is None
            t_last = int(end_time) if end_time is not None else int(t[-1] if guess else t.max())
            for _ in range(2):
                ws, we = time_windows(t_first, t_last, window, window - int(overlap),
                                      include_incomplete)
                res = check_out(out, (len(ws), P, H, W), dtype)
                counters = np.zeros((nthreads, N_COUNTERS), np.int64)
                t_max = _bin_time(x, y, t, p, ws, we, res, P, tol, maxval, nthreads, counters)
                if not guess or t_max == t_last:
                    break
                t_last = t_max
        else:
            ws, we = _time_bin_windows(t_first, int(t.max()), int(n_time_bins), float(overlap))
            res = check_out(out, (len(ws), P, H, W), dtype)
            counters = np.zeros((nthreads, N_COUNTERS), np.int64)
            _bin_time(x, y, t, p, ws, we, res, P, tol, maxval, nthreads, counters)
        stats.add_counters(counters)
        return (res, stats) if return_stats else res

    # index-based windows: drop invalid events first (copy only if needed)
    counters = np.zeros(N_COUNTERS, np.int64)
    if len(ev):
        keep, kept = _valid_mask(x, y, t, W, H, tol, counters)
        if kept != len(ev):
            ev = ev[keep]
            x, y, t, p = fields(ev)
    n = len(ev)
    if n == 0 and event_count is not None:
        starts = ends = np.zeros(0, np.int64)
    else:
        starts, ends = _index_windows(n, event_count, n_event_bins, overlap, include_incomplete)
    res = check_out(out, (len(starts), P, H, W), dtype)
    covered = np.zeros(n + 1, np.int64)
    np.add.at(covered, starts, 1)
    np.add.at(covered, ends, -1)
    counters[1] = int(np.count_nonzero(np.cumsum(covered)[:n]))
    counters[5] = n - counters[1]
    with numba_threads(nthreads):
        _bin_index_windows(x, y, p, starts, ends, res, P, maxval)
    stats.add_counters(counters)
    return (res, stats) if return_stats else res


def _merge_saturating(dst: np.ndarray, src: np.ndarray, maxval) -> None:
    if dst.dtype.kind == "f":
        dst += src
        np.minimum(dst, maxval, out=dst)
    else:
        acc = dst.astype(np.int64) + src
        np.minimum(acc, int(maxval), out=acc)
        dst[...] = acc


def to_frames_numpy(events, sensor_size, time_window, overlap=0, include_incomplete=True,
                    polarities=2, dtype=np.int64):
    """Small NumPy reference for time windows on *sorted, in-bounds* events."""
    W, H = sensor_wh(sensor_size)
    ev = as_event_array(events)
    if len(ev) == 0:
        return np.zeros((0, polarities, H, W), dtype)
    t = ev["t"]
    ws, we = time_windows(int(t[0]), int(t[-1]), int(time_window),
                          int(time_window) - int(overlap), include_incomplete)
    frames = np.zeros((len(ws), polarities, H, W), dtype)
    pol = (ev["p"] != 0).astype(np.intp) if polarities == 2 else np.zeros(len(ev), np.intp)
    for k, (a, b) in enumerate(zip(np.searchsorted(t, ws), np.searchsorted(t, we), strict=True)):
        np.add.at(frames[k], (pol[a:b], ev["y"][a:b].astype(np.intp), ev["x"][a:b].astype(np.intp)), 1)
    return frames
