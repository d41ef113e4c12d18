"""Voxel grid: bilinear interpolation in time (Zhu et al. 2019), as tonic ``ToVoxelGrid``.

Each event adds its polarity (+1 ON, -1 OFF) to the two time bins around its
normalised timestamp ``ts = n_time_bins * (t - t_first) / (t_last - t_first)``
(weights ``1 - frac`` and ``frac``).  Output ``(n_time_bins, 1, H, W)`` as tonic.

Differences from tonic (documented in docs/kernels.md): OFF events count -1
whatever the dtype of ``p`` (tonic's ``p[p == 0] = -1`` wraps to 255 for uint8
polarities and mutates the caller's array in ``to_voxel_grid_numpy``); a
recording whose events all share one timestamp puts them in bin 0 (tonic divides
by zero); events out of bounds are dropped; backwards timestamps follow the
time policy.  Like tonic, an event at exactly ``t_last`` (ts == n) contributes
nothing.
"""

from __future__ import annotations

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
    sensor_wh,
    time_policy,
    warn_if_swapped,
)



@njit(cache=True, nogil=True)
def _voxel(x, y, t, p, t0, t1, out, tol, counters):
    n = x.shape[0]
    B = out.shape[0]
    H = out.shape[2]
    W = out.shape[3]
    d = float(t1 - t0)
    runmax = I64_MIN
    for i in range(n):
        ti, runmax, st = time_policy(t[i], runmax, tol)
        if st != T_OK:
            if st == T_BACK:
                counters[C_BACK] += 1
                continue
            counters[C_CLAMPED] += 1
        xi = x[i]
        yi = y[i]
        if xi < 0 or yi < 0 or xi >= W or yi >= H:
            counters[C_OOB] += 1
            continue
        ts = 0.0
        if d > 0:
            ts = B * (float(ti) - float(t0)) / d
        ti_bin = int(ts)
        dt = ts - ti_bin
        pol = 1.0 if p[i] > 0 else -1.0
        used = False
        if ti_bin < B:
            out[ti_bin, 0, yi, xi] += pol * (1.0 - dt)
            used = True
        if ti_bin + 1 < B:
            out[ti_bin + 1, 0, yi, xi] += pol * dt
            used = True
        if used:
            counters[C_BINNED] += 1
        else:
            counters[C_RANGE] += 1
    counters[C_IN] += n


def to_voxel_grid(events, sensor_size, n_time_bins=10, *, dtype=np.float32, out=None,
                  time_tolerance_us=DEFAULT_TIME_TOLERANCE_US, return_stats=False):
    """Voxel grid ``(n_time_bins, 1, H, W)`` (float32 by default; float64 for tonic parity)."""
    W, H = sensor_wh(sensor_size)
    ev = kernel_events(events)
    res = check_out(out, (int(n_time_bins), 1, H, W), dtype)
    if res.dtype.kind != "f":
        raise ValueError("voxel grid needs a floating dtype")
    stats = BinStats()
    if len(ev):
        x, y, t, p = fields(ev)
        counters = np.zeros(N_COUNTERS, np.int64)
        _voxel(x, y, t, p, np.int64(t[0]), np.int64(t.max()), res, np.int64(time_tolerance_us),
               counters)
        stats.add_counters(counters)
        warn_if_swapped(x, y, W, H, stats.out_of_bounds, len(ev))
    return (res, stats) if return_stats else res


def to_voxel_grid_numpy(events, sensor_size, n_time_bins=10):
    """NumPy reference (sorted, in-bounds events), float64."""
    W, H = sensor_wh(sensor_size)
    ev = as_event_array(events)
    grid = np.zeros(n_time_bins * H * W)
    if len(ev):
        t = ev["t"].astype(np.float64)
        d = t[-1] - t[0]
        ts = n_time_bins * (t - t[0]) / d if d > 0 else np.zeros_like(t)
        pol = np.where(ev["p"] != 0, 1.0, -1.0)
        tis = ts.astype(np.int64)
        dts = ts - tis
        idx = ev["x"].astype(np.int64) + ev["y"].astype(np.int64) * W
        m = tis < n_time_bins
        np.add.at(grid, idx[m] + tis[m] * W * H, pol[m] * (1 - dts[m]))
        m = tis + 1 < n_time_bins
        np.add.at(grid, idx[m] + (tis[m] + 1) * W * H, pol[m] * dts[m])
    return grid.reshape(n_time_bins, 1, H, W)
