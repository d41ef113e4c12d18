"""Global time surfaces, as tonic ``ToTimesurface`` (Lagorce et al. 2016, HOTS).

The events are sliced into time windows of ``dt`` (the same windows as
``to_frames(time_window=dt)``); after window ``i`` every pixel/polarity holds
``exp(-(t_end_i - t_last_event) / tau)`` where ``t_end_i = t_first + (i+1)*dt``
and ``t_last_event`` is the latest event at that pixel so far (0 if none).
Output ``(T, P, H, W)``, float32 by default (tonic: float64).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
    sensor_wh,
    time_policy,
    warn_if_swapped,
)
from eventpipe.kernels.frames import time_windows



@njit(cache=True, nogil=True)
def _surface_write(mem, has, t_end, tau, dst):
    P, H, W = mem.shape
    for pi in range(P):
        for yi in range(H):
            for xi in range(W):
                if has[pi, yi, xi]:
                    dst[pi, yi, xi] = math.exp(-(t_end - mem[pi, yi, xi]) / tau)


@njit(cache=True, nogil=True)
def _timesurface(x, y, t, p, ws, we, npol, tau, out, tol, counters):
    n = x.shape[0]
    T = ws.shape[0]
    P = out.shape[1]
    H = out.shape[2]
    W = out.shape[3]
    mem = np.zeros((P, H, W), np.float64)
    has = np.zeros((P, H, W), np.bool_)
    runmax = I64_MIN
    k = 0
    for i in range(n):
        ti, runmax, st = time_policy(t[i], runmax, tol)
        if st != T_OK:
            if st == T_BACK:
                counters[C_BACK] += 1
                continue
            counters[C_CLAMPED] += 1
        while k < T and we[k] <= ti:
            _surface_write(mem, has, float(we[k]), tau, out[k])
            k += 1
        if k == T:
            counters[C_RANGE] += 1
            continue
        xi = x[i]
        yi = y[i]
        if xi < 0 or yi < 0 or xi >= W or yi >= H:
            counters[C_OOB] += 1
            continue
        if ti < ws[k]:
            counters[C_RANGE] += 1
            continue
        pi = 0
        if npol == 2 and p[i] > 0:
            pi = 1
        mem[pi, yi, xi] = float(ti)
        has[pi, yi, xi] = True
        counters[C_BINNED] += 1
    while k < T:
        _surface_write(mem, has, float(we[k]), tau, out[k])
        k += 1
    counters[C_IN] += n


def to_timesurface(events, sensor_size, dt, tau, *, include_incomplete=False, polarities=None,
                   dtype=np.float32, out=None, time_tolerance_us=DEFAULT_TIME_TOLERANCE_US,
                   return_stats=False):
    """Time surfaces ``(T, P, H, W)`` sampled at the end of each ``dt`` window."""
    W, H = sensor_wh(sensor_size)
    P = n_polarities(sensor_size, polarities)
    ev = kernel_events(events)
    stats = BinStats()
    if len(ev) == 0:
        res = check_out(out, (0, P, H, W), dtype)
        return (res, stats) if return_stats else res
    x, y, t, p = fields(ev)
    ws, we = time_windows(int(t[0]), int(t.max()), int(dt), int(dt), include_incomplete)
    res = check_out(out, (len(ws), P, H, W), dtype)
    counters = np.zeros(N_COUNTERS, np.int64)
    _timesurface(x, y, t, p, ws, we, P, float(tau), res, np.int64(time_tolerance_us), counters)
    stats.add_counters(counters)
    warn_if_swapped(x, y, W, H, stats.out_of_bounds, len(ev))
    return (res, stats) if return_stats else res


def to_timesurface_numpy(events, sensor_size, dt, tau, polarities=2):
    """NumPy reference (sorted, in-bounds events, include_incomplete=False)."""
    W, H = sensor_wh(sensor_size)
    ev = as_event_array(events)
    t = ev["t"]
    ws, we = time_windows(int(t[0]), int(t[-1]), int(dt), int(dt), False)
    mem = np.full((polarities, H, W), -np.inf)
    pol = (ev["p"] != 0).astype(np.intp) if polarities == 2 else np.zeros(len(ev), np.intp)
    res = []
    for s, e in zip(ws, we, strict=True):
        m = (t >= s) & (t < e)
        mem[pol[m], ev["y"][m], ev["x"][m]] = t[m]
        res.append(np.exp(-(e - mem) / tau))
    return np.array(res)
