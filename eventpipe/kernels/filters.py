"""Event filters.  Each returns a ``FilterResult`` (``events, n_removed = result``).

* ``refractory_period``: tonic ``RefractoryPeriod`` semantics - keep an event
  if ``t - t_prev > period`` where ``t_prev`` is the previous event (kept or
  not) at the same pixel.  Difference: the first event at a pixel is always
  kept (tonic starts its memory at ``-period`` and so drops a first event at
  ``t == 0``).
* ``denoise``: tonic ``Denoise`` semantics exactly (background-activity filter):
  each event sets ``mem[x, y] = t + filter_time`` and is kept if one of its
  4-neighbours has ``mem > t``; memory starts at ``filter_time`` and the grid is
  ``max + 1`` of the coordinates, as tonic (so isolated events with
  ``t < filter_time`` survive, as in tonic).
* ``suppress_hot_pixels``: rate based - a pixel is hot when its event rate
  exceeds ``max_rate_hz`` or ``rel_factor`` (default 50) x the median rate of the active
  pixels; all its events are removed.
* ``select_polarity``: keep ON (1) or OFF (0) events.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numba import njit

from eventpipe.kernels._common import as_event_array, sensor_wh


@dataclasses.dataclass
class FilterResult:
    """Filtered events and how many were removed; unpacks as ``(events, n_removed)``."""

    events: np.ndarray
    n_removed: int
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __iter__(self):
        return iter((self.events, self.n_removed))


def _grid(ev, sensor_size):
    if sensor_size is not None:
        W, H = sensor_wh(sensor_size)
        W = max(W, int(ev["x"].max()) + 1)
        H = max(H, int(ev["y"].max()) + 1)
        return W, H
    return int(ev["x"].max()) + 1, int(ev["y"].max()) + 1


@njit(cache=True, nogil=True)
def _refractory(x, y, t, period, last, seen, keep):
    """``last``/``seen`` (H, W) are the per-pixel memory, updated in place (streaming)."""
    kept = 0
    for i in range(x.shape[0]):
        xi = x[i]
        yi = y[i]
        if not seen[yi, xi] or t[i] - last[yi, xi] > period:
            keep[i] = True
            kept += 1
        seen[yi, xi] = True
        last[yi, xi] = t[i]
    return kept


def refractory_period(events, period_us, sensor_size=None) -> FilterResult:
    """Drop events within ``period_us`` of the previous event at the same pixel."""
    ev = as_event_array(events)
    if len(ev) == 0:
        return FilterResult(ev.copy(), 0)
    W, H = _grid(ev, sensor_size)
    keep = np.zeros(len(ev), np.bool_)
    kept = _refractory(ev["x"], ev["y"], ev["t"], np.int64(period_us),
                       np.empty((H, W), np.int64), np.zeros((H, W), np.bool_), keep)
    return FilterResult(ev[keep], len(ev) - int(kept))


@njit(cache=True, nogil=True)
def _denoise(x, y, t, ft, mem, keep):
    """``mem`` (W, H) is the filter memory, updated in place (streaming)."""
    W, H = mem.shape
    kept = 0
    for i in range(x.shape[0]):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        ti = float(t[i])
        mem[xi, yi] = ti + ft
        if ((xi > 0 and mem[xi - 1, yi] > ti) or (xi < W - 1 and mem[xi + 1, yi] > ti)
                or (yi > 0 and mem[xi, yi - 1] > ti) or (yi < H - 1 and mem[xi, yi + 1] > ti)):
            keep[i] = True
            kept += 1
    return kept


def denoise(events, filter_time_us=10000) -> FilterResult:
    """Background-activity filter with tonic ``Denoise`` semantics."""
    ev = as_event_array(events)
    if len(ev) == 0:
        return FilterResult(ev.copy(), 0)
    W, H = _grid(ev, None)
    keep = np.zeros(len(ev), np.bool_)
    kept = _denoise(ev["x"], ev["y"], ev["t"], float(filter_time_us),
                    np.full((W, H), float(filter_time_us), np.float64), keep)
    return FilterResult(ev[keep], len(ev) - int(kept))


def suppress_hot_pixels(events, sensor_size=None, *, max_rate_hz=None, rel_factor=50.0,
                        min_events=20, duration_us=None) -> FilterResult:
    """Remove every event of pixels firing too fast (see module docstring).

    ``duration_us`` defaults to the span of the timestamps (at least 1 µs).  A
    pixel needs at least ``min_events`` events to be called hot.  ``info`` holds
    ``hot_pixels`` as an ``(n, 2)`` array of (x, y) and the thresholds used.
    """
    ev = as_event_array(events)
    if len(ev) == 0:
        return FilterResult(ev.copy(), 0, {"hot_pixels": np.zeros((0, 2), np.int64)})
    W, H = _grid(ev, sensor_size)
    flat = ev["y"].astype(np.int64) * W + ev["x"]
    counts = np.bincount(flat, minlength=W * H)
    if duration_us is None:
        duration_us = max(1, int(ev["t"].max()) - int(ev["t"].min()))
    rates = counts / (duration_us * 1e-6)
    active = rates[counts > 0]
    limit = rel_factor * float(np.median(active)) if rel_factor is not None else np.inf
    if max_rate_hz is not None:
        limit = min(limit, float(max_rate_hz))
    hot = (rates > limit) & (counts >= min_events)
    keep = ~hot[flat]
    hp = np.flatnonzero(hot)
    info = {"hot_pixels": np.stack([hp % W, hp // W], axis=1), "rate_limit_hz": limit}
    return FilterResult(ev[keep], int(len(ev) - keep.sum()), info)


def select_polarity(events, polarity: int) -> FilterResult:
    """Keep only ON (``polarity=1``) or OFF (``polarity=0``) events."""
    ev = as_event_array(events)
    m = (ev["p"] != 0) if int(polarity) else (ev["p"] == 0)
    return FilterResult(ev[m], int(len(ev) - m.sum()))


class StreamingRefractory:
    """``refractory_period`` over a stream of packets: the per-pixel memory persists,
    so any split of a recording gives the one-shot result.  Out-of-sensor events
    are passed through untouched (the windower drops and counts them)."""

    def __init__(self, sensor_size, period_us: int):
        W, H = sensor_wh(sensor_size)
        self.period = np.int64(period_us)
        self.last = np.empty((H, W), np.int64)
        self.seen = np.zeros((H, W), np.bool_)
        self.removed = 0

    def __call__(self, events) -> FilterResult:
        ev = as_event_array(events)
        H, W = self.seen.shape
        inside = (ev["x"] < W) & (ev["y"] < H)
        keep = ~inside
        sub = ev[inside] if not inside.all() else ev
        k = np.zeros(len(sub), np.bool_)
        _refractory(sub["x"], sub["y"], sub["t"], self.period, self.last, self.seen, k)
        keep[inside] = k
        n = int(len(ev) - keep.sum())
        self.removed += n
        return FilterResult(ev[keep], n)


class StreamingDenoise:
    """``denoise`` (tonic ``Denoise``) over a stream of packets on a fixed sensor grid."""

    def __init__(self, sensor_size, filter_time_us: int = 10000):
        W, H = sensor_wh(sensor_size)
        self.ft = float(filter_time_us)
        self.mem = np.full((W, H), self.ft, np.float64)
        self.removed = 0

    def __call__(self, events) -> FilterResult:
        ev = as_event_array(events)
        W, H = self.mem.shape
        inside = (ev["x"] < W) & (ev["y"] < H)
        keep = ~inside
        sub = ev[inside] if not inside.all() else ev
        k = np.zeros(len(sub), np.bool_)
        _denoise(sub["x"], sub["y"], sub["t"], self.ft, self.mem, k)
        keep[inside] = k
        n = int(len(ev) - keep.sum())
        self.removed += n
        return FilterResult(ev[keep], n)
