"""Streaming windower: frames from a live trickle of packets.

``StreamingBinner.push(packet)`` returns the frames completed by that packet,
``flush()`` the partial last window.  For any split of a recording into packets
``concat(push(...)..., flush())`` equals ``to_frames(all events,
time_window=window_us, overlap=window_us - stride_us, include_incomplete=True)``
(windows close on *event* time: window k closes when an event with
``t >= start + k*stride + window`` arrives).

Memory: with ``stride >= window`` (one open window) the open window accumulates
in place in a reusable output buffer, so closing a window costs only zeroing the
next slot; the live frames are moved back to the front when the buffer fills
(one frame copy per buffer length).  Overlapping windows live in a preallocated
ring of ``ceil(window / stride)`` frames and are copied out when they close.
The hot path allocates nothing per packet (the returned array is a copy, or with
``copy=False`` a view valid until the next call); the buffer grows geometrically
only when one packet completes more frames than it holds.  Out-of-bounds events are dropped and counted; backwards timestamps
follow the time policy of :mod:`eventpipe.kernels._common`.

Wall clock: with ``timeout_s`` set, ``poll()`` (or ``push`` of an empty packet)
after ``timeout_s`` seconds without events closes the open window as if event
time had reached its end; each further timeout closes one more (empty) window.
Later events older than that are then subject to the time policy.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from eventpipe.kernels._common import (
    DEFAULT_TIME_TOLERANCE_US,
    N_COUNTERS,
    BinStats,
    as_event_array,
    fields,
    n_polarities,
    saturation_value,
    sensor_wh,
)

# state vector slots
S_STARTED, S_START, S_RUNMAX, S_KEMIT, S_NOUT, S_BASE = range(6)


@njit(cache=True, nogil=True)
def _close_until(ti, ring, outbuf, state, window, stride, single):
    """Emit every open window whose end is <= ti.

    ``single`` (stride >= window, one open window): the open window accumulates
    in place in ``outbuf[base + n_out]``; closing it just moves on to the next
    slot (zeroed).  Otherwise open windows live in ``ring`` and are copied out.
    The caller guarantees the capacity (see ``_needed``).
    """
    M = ring.shape[0]
    start = state[S_START]
    k = state[S_KEMIT]
    n_out = state[S_NOUT]
    base = state[S_BASE]
    while start + k * stride + window <= ti:
        if single:
            n_out += 1
            outbuf[base + n_out] = 0
        else:
            slot = k % M
            outbuf[n_out] = ring[slot]
            ring[slot] = 0
            n_out += 1
        k += 1
    state[S_KEMIT] = k
    state[S_NOUT] = n_out


@njit(cache=True, nogil=True)
def _needed(ti, state, window, stride, single):
    """Output slots needed (from index 0) after closing the windows ending <= ti."""
    c = (ti - state[S_START] - window) // stride + 1 - state[S_KEMIT]
    if c < 0:
        c = 0
    if single:
        return state[S_BASE] + state[S_NOUT] + c + 1
    return state[S_NOUT] + c


@njit(cache=True, nogil=True)
def _stream_push(x, y, t, p, i0, ring, outbuf, state, counters, window, stride, npol, tol,
                 maxval, fixed_start, single):
    """Process events ``i0..``; returns ``(i_stop, slots_needed)``: ``i_stop < n``
    when ``outbuf`` is too small for the windows event ``i_stop`` completes (the
    caller makes room and calls again from ``i_stop``)."""
    M = ring.shape[0]
    H = outbuf.shape[2]
    W = outbuf.shape[3]
    cap = outbuf.shape[0]
    n = x.shape[0]
    if n == i0:
        return n, 0
    if state[S_STARTED] == 0:
        if fixed_start == 0:
            state[S_START] = t[i0]
        need = _needed(t[i0], state, window, stride, single)
        if need > cap:
            return i0, need
        state[S_STARTED] = 1
        state[S_RUNMAX] = t[i0]
        state[S_KEMIT] = 0
        _close_until(t[i0], ring, outbuf, state, window, stride, single)
    start = state[S_START]
    runmax = state[S_RUNMAX]
    k_emit = state[S_KEMIT]
    cur_start = start + k_emit * stride   # start of the oldest open window
    cur_end = cur_start + window          # ... and its end
    jopen = state[S_BASE] + state[S_NOUT]  # single: output slot of the open window
    n_clamp = 0
    n_back = 0
    n_oob = 0
    n_range = 0
    stop = n
    need = 0
    for i in range(i0, n):
        ti = t[i]
        if ti < runmax:
            if runmax - ti <= tol:
                ti = runmax
                n_clamp += 1
            else:
                n_back += 1
                continue
        else:
            if ti >= cur_end:
                need = _needed(ti, state, window, stride, single)
                if need > cap:
                    stop = i
                    break
                need = 0
                state[S_RUNMAX] = ti
                _close_until(ti, ring, outbuf, state, window, stride, single)
                k_emit = state[S_KEMIT]
                cur_start = start + k_emit * stride
                cur_end = cur_start + window
                jopen = state[S_BASE] + state[S_NOUT]
            runmax = ti
        xi = x[i]
        yi = y[i]
        if xi >= W or yi >= H:
            n_oob += 1
            continue
        if ti < cur_start:
            n_range += 1
            continue
        pi = 0
        if npol == 2 and p[i] != 0:
            pi = 1
        if single:
            v = outbuf[jopen, pi, yi, xi]
            if v < maxval:
                outbuf[jopen, pi, yi, xi] = v + 1
        else:
            k = k_emit
            ws = cur_start
            while ws <= ti:
                slot = k % M
                v = ring[slot, pi, yi, xi]
                if v < maxval:
                    ring[slot, pi, yi, xi] = v + 1
                k += 1
                ws += stride
    state[S_RUNMAX] = runmax
    done = stop - i0
    counters[0] += done
    counters[1] += done - n_back - n_oob - n_range
    counters[2] += n_oob
    counters[3] += n_clamp
    counters[4] += n_back
    counters[5] += n_range
    return stop, need


class StreamingBinner:
    """Incremental ``to_frames`` over time windows (see module docstring).

    Parameters: ``sensor_size`` (W, H); ``window_us``; ``stride_us`` (default
    ``window_us``; smaller = overlapping windows, larger = gaps);
    ``start_time`` (default: first event's timestamp); ``polarities`` (2, or 1 =
    merged); ``dtype``/``clip``/``binary`` as in ``to_frames``;
    ``time_tolerance_us`` (time policy); ``timeout_s`` (wall-clock close of a
    window on a silent sensor, None = off); ``clock`` (seconds, for tests).
    """

    def __init__(self, sensor_size, window_us, stride_us=None, *, start_time=None,
                 polarities=None, dtype=np.int16, clip=None, binary=False,
                 time_tolerance_us=DEFAULT_TIME_TOLERANCE_US, timeout_s=None,
                 clock=time.monotonic, initial_capacity=8):
        self.W, self.H = sensor_wh(sensor_size)
        self.P = n_polarities(sensor_size, polarities)
        self.window = int(window_us)
        self.stride = int(stride_us) if stride_us is not None else self.window
        if self.window <= 0 or self.stride <= 0:
            raise ValueError("window_us and stride_us must be > 0")
        self.dtype = np.dtype(dtype)
        self.maxval = saturation_value(self.dtype, clip, binary)
        self.tol = np.int64(time_tolerance_us)
        self.timeout_s = timeout_s
        self.clock = clock
        self.start_time = start_time
        self._single = self.stride >= self.window
        m = -(-self.window // self.stride)
        ring_shape = (1, 1, 1, 1) if self._single else (m, self.P, self.H, self.W)
        self._ring = np.zeros(ring_shape, self.dtype)
        self._outbuf = np.zeros((max(2, initial_capacity), self.P, self.H, self.W), self.dtype)
        self._empty = np.zeros((0, self.P, self.H, self.W), self.dtype)
        self._state = np.zeros(6, np.int64)
        self._counters = np.zeros(N_COUNTERS, np.int64)
        self._fixed_start = int(start_time is not None)
        self.frames_emitted = 0
        self.timeouts = 0
        self.reset()

    def reset(self) -> None:
        """Forget all state (open windows, start time); stats are kept."""
        self._ring.fill(0)
        self._outbuf[0] = 0
        self._state[:] = 0
        if self.start_time is not None:
            self._state[S_START] = int(self.start_time)
        self._last_wall = self.clock()

    @property
    def started(self) -> bool:
        return bool(self._state[S_STARTED])

    @property
    def next_window(self) -> tuple[int, int] | None:
        """``(start, end)`` in µs of the oldest open window, None before any event."""
        if not self.started:
            return None
        s = int(self._state[S_START] + self._state[S_KEMIT] * self.stride)
        return s, s + self.window

    @property
    def stats(self) -> BinStats:
        """Counters over everything pushed so far (see ``BinStats``)."""
        st = BinStats()
        st.add_counters(self._counters)
        return st

    def _make_room(self, need: int) -> None:
        """Room for ``need`` output slots: move the live frames to the front, else grow."""
        base = int(self._state[S_BASE])
        live = int(self._state[S_NOUT]) + (1 if self._single else 0)
        if base > 0:  # (single mode) completed + open frames back to index 0
            self._outbuf[:live] = self._outbuf[base:base + live]
            self._state[S_BASE] = 0
            need -= base
            if need <= self._outbuf.shape[0]:
                return
        cap = max(int(need), 2 * self._outbuf.shape[0])
        new = np.zeros((cap, self.P, self.H, self.W), self.dtype)
        new[:live] = self._outbuf[:live]
        self._outbuf = new

    def _take(self, copy: bool) -> np.ndarray:
        n = int(self._state[S_NOUT])
        if n == 0:
            return self._empty
        base = int(self._state[S_BASE])
        self._state[S_NOUT] = 0
        if self._single:
            self._state[S_BASE] = base + n  # the open window's slot becomes the new base
        self.frames_emitted += n
        res = self._outbuf[base:base + n]
        return res.copy() if copy else res

    def push(self, events, *, copy: bool = True, now: float | None = None) -> np.ndarray:
        """Feed a packet; return the frames ``(n, P, H, W)`` it completed (maybe n=0)."""
        ev = as_event_array(events)
        if len(ev) == 0:
            return self.poll(now=now, copy=copy)
        x, y, t, p = fields(ev)
        i, n = 0, len(ev)
        while True:
            i, need = _stream_push(x, y, t, p, i, self._ring, self._outbuf, self._state,
                                   self._counters, self.window, self.stride, self.P, self.tol,
                                   self.maxval, self._fixed_start, self._single)
            if i >= n:
                break
            self._make_room(need)
        self._last_wall = self.clock() if now is None else now
        return self._take(copy)

    def advance_to(self, t_us: int, *, copy: bool = True) -> np.ndarray:
        """Declare that event time reached ``t_us``: close the windows ending <= t_us."""
        if not self.started or t_us <= self._state[S_RUNMAX]:
            return self._empty
        need = _needed(np.int64(t_us), self._state, self.window, self.stride, self._single)
        if need > self._outbuf.shape[0]:
            self._make_room(int(need))
        self._state[S_RUNMAX] = int(t_us)
        _close_until(np.int64(t_us), self._ring, self._outbuf, self._state, self.window,
                     self.stride, self._single)
        return self._take(copy)

    def poll(self, *, now: float | None = None, copy: bool = True) -> np.ndarray:
        """Apply the wall-clock timeout: close the open window after silence."""
        now = self.clock() if now is None else now
        if self.timeout_s is None or not self.started or now - self._last_wall < self.timeout_s:
            return self._empty
        self._last_wall = now
        self.timeouts += 1
        return self.advance_to(self.next_window[1], copy=copy)

    def flush(self) -> np.ndarray:
        """Return the partial last window ``(1, P, H, W)`` (or none) and reset."""
        if not self.started:
            return self._empty.copy()
        if self._single:
            j = int(self._state[S_BASE] + self._state[S_NOUT])
            res = self._outbuf[j][None].copy()
        else:
            slot = int(self._state[S_KEMIT]) % self._ring.shape[0]
            res = self._ring[slot][None].copy()
        self.frames_emitted += 1
        self.reset()
        return res


def stream_frames(packets, sensor_size, window_us, stride_us=None, **kw) -> np.ndarray:
    """Convenience: run a ``StreamingBinner`` over an iterable of packets."""
    b = StreamingBinner(sensor_size, window_us, stride_us, **kw)
    out = [b.push(pk) for pk in packets]
    out.append(b.flush())
    return np.concatenate(out, axis=0)
