"""Window edges for the binning kernels (see frames.py for the semantics)."""

from __future__ import annotations

import numpy as np


def time_windows(t_first: int, t_last: int, window: int, stride: int,
                 include_incomplete: bool) -> tuple[np.ndarray, np.ndarray]:
    """Regular windows ``[t_first + k*stride, ... + window)``; count as documented."""
    n = time_window_count(t_first, t_last, window, stride, include_incomplete)
    ws = int(t_first) + np.arange(n, dtype=np.int64) * int(stride)
    return ws, ws + int(window)


def time_window_count(t_first: int, t_last: int, window: int, stride: int,
                      include_incomplete: bool) -> int:
    """How many windows :func:`time_windows` makes (without making them)."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"time_window must be > 0 and overlap < time_window, got "
                         f"window={window}, stride={stride}")
    d = int(t_last) - int(t_first)
    if include_incomplete:
        return (d - window) // stride + 2 if d >= window else 1
    return max(1, (d - window) // stride + 1)


def _time_bin_windows(t_first: int, t_last: int, n_bins: int, overlap: float):
    """``n_bins`` bins of real length d/n over [t_first, t_last], last bin closed."""
    d = int(t_last) - int(t_first)
    ws = np.empty(n_bins, np.int64)
    we = np.empty(n_bins, np.int64)
    for k in range(n_bins):
        ws[k] = t_first + -((-k * d) // n_bins)  # ceil(k*d/n)
        we[k] = t_first + int(np.ceil((k + 1 + overlap) * d / n_bins))
    we[-1] = max(we[-1], t_last + 1)
    if d == 0:  # everything happens at one instant: first bin only
        ws[1:] = t_first + 1
        we[1:] = t_first + 1
    return ws, np.maximum.accumulate(we)


def _index_windows(n: int, event_count=None, n_event_bins=None, overlap=0,
                   include_incomplete=False):
    if event_count is not None:
        count = min(int(event_count), n)
        stride = int(event_count) - int(overlap)
        if stride <= 0:
            raise ValueError("overlap must be smaller than event_count")
        num = (n - count) / stride
        num = int(np.ceil(num) if include_incomplete else np.floor(num)) + 1
        starts = np.arange(max(num, 0), dtype=np.int64) * stride
        ends = np.minimum(starts + count, n)
    else:
        k = np.arange(int(n_event_bins), dtype=np.int64)
        starts = k * n // n_event_bins
        if overlap:
            ends = np.floor((k + 1 + overlap) * n / n_event_bins).astype(np.int64)
        else:
            ends = (k + 1) * n // n_event_bins
        ends = np.minimum(n, ends)
        ends[-1] = n
    return starts, np.maximum(ends, starts)
