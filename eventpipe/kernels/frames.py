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

from eventpipe.kernels._windows import (
    _index_windows,
    _time_bin_windows,
    time_window_count,
    time_windows,
)
from eventpipe.kernels._common import (
    C_BACK,
    C_BINNED,
    C_CLAMPED,
    C_IN,
    C_OOB,
    C_RANGE,
    DEFAULT_TIME_TOLERANCE_US,
    I64_MIN,
    N_COUNTERS,
    T_BACK,
    T_OK,
    BinStats,
    as_event_array,
    check_out,
    fields,
    kernel_events,
    n_polarities,
    numba_threads,
    saturation_value,
    sensor_wh,
    time_policy,
    warn_if_swapped,
)
from eventpipe.kernels._window_loop import (
    _bin_time_range,
    _bin_window,
    _bin_window_fast,
)
from eventpipe.kernels import _chunkplan, _writeonce
from eventpipe.kernels._teamwork import claim, plan_threads, run_chunks
from eventpipe.kernels.outpool import OutputPool



@njit(cache=True, nogil=True)
def _bin_windows(ev, a, n, ws, we, out, k0, k1, npol, tol, maxval, runmax, zero, counters,
                 room):
    """Events ``ev[a:n]`` into the disjoint windows ``k0..k1-1`` of ``out``, one window at
    a time (:func:`_bin_window_fast`, or with ``room < 0`` :func:`_bin_window`: float
    times); events after the last window are only counted.  With ``zero`` each frame is
    zeroed first (a caller's ``out``); every frame starts at zero, so the fast loop may
    take ``room`` events (see :func:`_room`) without the saturation test.  Returns the
    running max."""
    flat = out.reshape(out.shape[0], -1)
    for k in range(k0, k1):
        if zero:
            flat[k] = 0
        if room < 0:
            a, runmax = _bin_window(ev, a, n, ws[k], we[k], flat[k], out.shape[3],
                                    out.shape[2], npol, tol, maxval, runmax, counters)
        else:
            a, runmax = _bin_window_fast(ev, a, n, ws[k], we[k], flat[k], out.shape[3],
                                         out.shape[2], npol, tol, maxval, runmax, counters,
                                         room)
    return _bin_time_range(ev.x, ev.y, ev.t, ev.p, a, n, ws[k1:k1], we[k1:k1], out, npol, tol,
                           maxval, runmax, counters)  # no windows left: only counts


@njit(cache=True, nogil=True)
def _bin_chunks(ev, ev_lo, k_lo, ws, we, out, npol, tol, maxval, runmax, counters, room,
                counter):
    """Chunks ``c`` taken from ``counter`` (:func:`_teamwork.claim`) until none is left:
    events ``[ev_lo[c], ev_lo[c+1])`` into windows ``[k_lo[c], k_lo[c+1])``, so no two
    threads write the same frame, and each thread first-touches (page-faults) the frames
    it writes.  Each chunk starts its running maximum afresh; the caller checks this
    equals the serial semantics.  Returns how many chunks this thread took."""
    taken = 0
    while True:
        c = claim(counter)
        if c >= ev_lo.shape[0] - 1:
            return taken
        runmax[c] = _bin_windows(ev, ev_lo[c], ev_lo[c + 1], ws, we, out, k_lo[c], k_lo[c + 1],
                                 npol, tol, maxval, I64_MIN, False, counters[c], room)
        taken += 1


@njit(cache=True, parallel=True)
def _bin_index_windows(x, y, p, starts, ends, out, npol, maxval):
    """Accumulate index windows ``[starts[k], ends[k])`` (event_count / bin modes)."""
    T = starts.shape[0]
    for k in prange(T):
        for i in range(starts[k], ends[k]):
            pi = 0
            if npol == 2 and p[i] > 0:
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
        _, runmax, st = time_policy(t[i], runmax, tol)
        if st != T_OK:
            if st == T_BACK:
                counters[C_BACK] += 1
                continue
            counters[C_CLAMPED] += 1
        if x[i] < 0 or y[i] < 0 or x[i] >= W or y[i] >= H:
            counters[C_OOB] += 1
            continue
        keep[i] = True
        kept += 1
    counters[C_IN] += n
    return keep, kept


def _room(ev, maxval) -> np.int64:
    """How many events a zeroed frame takes before a count could reach ``maxval`` (so the
    fast loop needs no saturation test until then); -1 for float times (the fast loop
    compares integer times)."""
    if ev.dtype["t"].kind != "i":
        return np.int64(-1)
    if not np.isfinite(maxval):
        return np.int64(1 << 62)
    return np.int64(max(0, min(1 << 62, int(np.floor(maxval)))))


def _bin_time(ev, ws, we, res, P, tol, maxval, nthreads, counters, zeroed=True,
              pool=None) -> int:
    """Bin into time windows (parallel when possible); returns the final running max.

    ``zeroed=False``: ``res`` holds old data (a caller's ``out``, a recycled buffer): with
    disjoint windows every frame is written once from a cached scratch frame
    (:mod:`_writeonce`, scratch frames from ``pool`` if given), else it is zeroed here."""
    x, y, t, p = fields(ev)
    T, n = len(ws), len(ev)
    nthreads = plan_threads(nthreads, n, res.nbytes)
    if T and not np.all(we[:-1] <= ws[1:]):  # overlapping windows: the general kernel
        if not zeroed:
            res.fill(0)
        return int(_bin_time_range(x, y, t, p, 0, n, ws, we, res, P, tol, maxval,
                                   np.int64(I64_MIN), counters))
    room = _room(ev, maxval)
    if not zeroed:
        return _bin_time_once(ev, ws, we, res, P, tol, maxval, nthreads, counters, room, pool)
    split = _split_run(t, ws, res, nthreads, counters,
                       lambda ev_lo, k_lo, runmax, cc, counter, wid: _bin_chunks(
                           ev, ev_lo, k_lo, ws, we, res, P, tol, maxval, runmax, cc, room, counter))
    if split is not None:
        agree, top = split
        if agree:
            return top
        res.fill(0)  # time stepped back across a chunk border: run serially
    return int(_bin_windows(ev, 0, n, ws, we, res, 0, T, P, tol, maxval, np.int64(I64_MIN),
                            False, counters, room))


def _split_run(t, ws, res, nthreads, counters, chunk):
    """The parallel split of a time-window call into ``res``: the chunk plan
    (:func:`_chunkplan.chunks`), ``chunk(ev_lo, k_lo, runmax, chunk_counters, counter, wid)`` on
    ``nthreads`` threads (each call takes chunks from ``counter`` until none is left), then
    :func:`_merge_chunks`.  ``None`` when one thread should do it all, else ``(agree, running
    max)``; with ``agree`` false, time stepped back across a chunk border and the caller runs
    serially."""
    plan = _chunkplan.chunks(t, ws, nthreads, res.nbytes // max(1, len(ws)))
    if plan is None:
        return None
    ev_lo, k_lo = plan
    runmax = np.empty(len(k_lo) - 1, np.int64)
    chunk_counters = np.zeros((len(runmax), N_COUNTERS), np.int64)
    counter = np.zeros(1, np.int64)
    run_chunks(lambda wid: int(chunk(ev_lo, k_lo, runmax, chunk_counters, counter, wid)), nthreads,
               len(runmax))
    agree, top = _merge_chunks(runmax, ws, k_lo, chunk_counters, counters)
    return bool(agree), int(top)


@njit(cache=True, nogil=True)
def _merge_chunks(runmax, ws, k_lo, chunk_counters, counters):
    """After a parallel call: ``(agree, running max)``.  Chunk c starts at an event with
    t >= ws[k_lo[c]] (binary search).  If all earlier chunks' times stayed below that, chunk
    c saw what the serial run would: the running max it starts from afresh is exceeded by
    its first event either way.  If every chunk agrees, their counters are added to
    ``counters``.  (One Numba call: as NumPy steps they took ~0.1 ms of the calling thread
    after the last chunk, in a cold cache.)"""
    top = runmax[0]
    for c in range(1, runmax.shape[0]):
        if top >= ws[k_lo[c]]:
            return False, top
        top = max(top, runmax[c])
    for c in range(chunk_counters.shape[0]):
        for j in range(counters.shape[0]):
            counters[j] += chunk_counters[c, j]
    return True, top


def _bin_time_once(ev, ws, we, res, P, tol, maxval, nthreads, counters, room, pool) -> int:
    """Disjoint windows into ``res`` of any contents, each frame written once
    (:mod:`_writeonce`); the parallel split and its check as in :func:`_bin_time`."""
    T, n = len(ws), len(ev)
    F = int(np.prod(res.shape[1:]))
    rows = nthreads
    scratch = (pool.take_scratch(rows, F, res.dtype) if pool is not None
               else np.zeros((rows, F), res.dtype))
    nt = _writeonce.use_nt(res)
    try:
        split = _split_run(ev["t"], ws, res, nthreads, counters,
                           lambda ev_lo, k_lo, runmax, cc, counter, wid: _writeonce.bin_chunks_once(
                               ev, ev_lo, k_lo, ws, we, res, scratch[wid], P, tol, maxval, runmax, cc,
                               room, nt, counter))
        if split is not None and split[0]:
            return split[1]
        return int(_writeonce.bin_windows_once(ev, 0, n, ws, we, res, 0, T, scratch[0], P, tol,
                                               maxval, np.int64(I64_MIN), counters, room, nt))
    finally:
        if pool is not None:
            pool.give_scratch(scratch)


def _output(out, pool, shape, dtype, zero=False):
    """``(array, zeroed)``: the caller's ``out`` (checked, not zeroed), an array from
    ``pool`` (zeroed if fresh, old data if recycled) or a new ``np.zeros``; ``zero=True``
    zeroes it if needed (for kernels that only add)."""
    if out is None and pool is not None:
        res, recycled = pool.empty(shape, dtype)
        if recycled and zero:
            res.fill(0)
        return res, zero or not recycled
    res = check_out(out, shape, dtype, zero=zero)
    return res, zero or out is None


def to_frames(events, sensor_size, time_window=None, event_count=None, n_time_bins=None,
              n_event_bins=None, overlap=0, include_incomplete=False, start_time=None,
              end_time=None, *, polarities=None, dtype=np.int16, binary=False, clip=None,
              out=None, pool=None, threads=None, time_tolerance_us=DEFAULT_TIME_TOLERANCE_US,
              return_stats=False):
    """Bin events into per-polarity count frames ``(T, P, H, W)``.

    Exactly one of ``time_window`` (µs, with ``overlap`` in µs), ``event_count``
    (``overlap`` in events), ``n_time_bins`` or ``n_event_bins`` (``overlap`` a
    fraction of a bin).  ``sensor_size`` is ``(W, H)`` (or tonic's ``(W, H, P)``).
    ``polarities=1`` merges ON/OFF.  ``binary=True`` / ``clip=N`` saturate counts
    at 1 / N.  ``out`` is a preallocated C-contiguous array (overwritten).
    ``threads``: how many threads bin time windows (the calling thread and helpers, see
    ``_teamwork``); the default ``None`` uses ``numba.get_num_threads()`` (all cores by
    default) for calls with enough work (:func:`~eventpipe.kernels._teamwork.plan_threads`),
    else one.  Returns the frames, or
    ``(frames, BinStats)`` with ``return_stats=True``.  Never mutates ``events``.
    ``pool``: an :class:`~eventpipe.kernels.OutputPool` whose released outputs' memory
    the new output may reuse (ignored with ``out``); the result is the same.
    ``events`` may be tonic's arrays (read as they are, see ``kernel_events``).
    Warns (:class:`~eventpipe.events.SensorSizeWarning`) when many events are out of
    bounds and all would fit with W and H swapped.
    """
    ev = kernel_events(events)
    res, stats = _to_frames(ev, sensor_size, time_window, event_count, n_time_bins,
                            n_event_bins, overlap, include_incomplete, start_time, end_time,
                            polarities=polarities, dtype=dtype, binary=binary, clip=clip,
                            out=out, pool=pool, threads=threads,
                            time_tolerance_us=time_tolerance_us)
    W, H = sensor_wh(sensor_size)
    warn_if_swapped(ev["x"], ev["y"], W, H, stats.out_of_bounds, len(ev))
    return (res, stats) if return_stats else res


def _to_frames(events, sensor_size, time_window=None, event_count=None, n_time_bins=None,
               n_event_bins=None, overlap=0, include_incomplete=False, start_time=None,
               end_time=None, *, polarities=None, dtype=np.int16, binary=False, clip=None,
               out=None, pool=None, threads=None, time_tolerance_us=DEFAULT_TIME_TOLERANCE_US,
               return_stats=True):
    """:func:`to_frames` on a kernel-readable array; returns ``(frames, BinStats)``."""
    modes = [time_window, event_count, n_time_bins, n_event_bins]
    if sum(m is not None for m in modes) != 1:
        raise ValueError("set exactly one of time_window, event_count, n_time_bins, n_event_bins")
    W, H = sensor_wh(sensor_size)
    P = n_polarities(sensor_size, polarities)
    ev = events
    x, y, t, p = fields(ev)
    maxval = saturation_value(dtype, clip, binary)
    tol = np.int64(time_tolerance_us)
    stats = BinStats()
    if threads is not None and (isinstance(threads, (bool, np.bool_))
                                or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ValueError(f"threads must be None (the default: all cores for big calls) or an "
                         f"integer >= 1, got {threads!r}")
    nthreads = threads
    if pool is not None and not isinstance(pool, OutputPool):
        raise TypeError(f"pool must be an eventpipe.kernels.OutputPool or None, got {type(pool).__name__}")

    if time_window is not None or n_time_bins is not None:
        if len(ev) == 0 and (start_time is None or end_time is None or n_time_bins is not None):
            T = 0 if n_time_bins is None else int(n_time_bins)
            res, _ = _output(out, pool, (T, P, H, W), dtype, zero=True)
            return (res, stats) if return_stats else res
        t_first = int(t[0]) if start_time is None else int(start_time)
        if time_window is not None:
            def windows(t_last):
                return time_windows(t_first, t_last, int(time_window),
                                    int(time_window) - int(overlap), include_incomplete)

            # The windows depend on t_last, the running maximum at the end (= t.max()).
            # Guess t[-1] (sorted data) and compare with the maximum the kernel reports,
            # rerunning in the rare case the window count differs.  A caller's out= that
            # fits neither the guess nor t.max() is rejected before anything is written;
            # one that fits the guess but not the maximum is rejected after binning.
            ws, we = windows(int(t[-1] if end_time is None else end_time))
            if end_time is None and out is not None and len(out) != len(ws):
                ws, we = windows(int(t.max()))
            for _ in range(2):
                res = None  # (a pooled first try goes back to the pool)
                res, zeroed = _output(out, pool, (len(ws), P, H, W), dtype)
                counters = np.zeros(N_COUNTERS, np.int64)
                t_max = _bin_time(ev, ws, we, res, P, tol, maxval, nthreads, counters,
                                  zeroed=zeroed, pool=pool)
                if end_time is not None or time_window_count(
                        t_first, t_max, int(time_window), int(time_window) - int(overlap),
                        include_incomplete) == len(ws):
                    break
                ws, we = windows(t_max)
                if out is not None:
                    raise ValueError(f"out has shape {out.shape}, expected "
                                     f"{(len(ws), P, H, W)}")
        else:
            ws, we = _time_bin_windows(t_first, int(t.max()), int(n_time_bins), float(overlap))
            res, zeroed = _output(out, pool, (len(ws), P, H, W), dtype)
            counters = np.zeros(N_COUNTERS, np.int64)
            _bin_time(ev, ws, we, res, P, tol, maxval, nthreads, counters, zeroed=zeroed,
                      pool=pool)
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
    res, _ = _output(out, pool, (len(starts), P, H, W), dtype, zero=True)
    covered = np.zeros(n + 1, np.int64)
    np.add.at(covered, starts, 1)
    np.add.at(covered, ends, -1)
    counters[C_BINNED] = int(np.count_nonzero(np.cumsum(covered)[:n]))
    counters[C_RANGE] = n - counters[C_BINNED]
    with numba_threads(plan_threads(nthreads, n, res.nbytes)):
        _bin_index_windows(x, y, p, starts, ends, res, P, maxval)
    stats.add_counters(counters)
    return (res, stats) if return_stats else res


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
