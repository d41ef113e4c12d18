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
only when one packet completes more frames than it holds.  Out-of-bounds events
are dropped and counted; backwards timestamps follow the time policy of
:mod:`eventpipe.kernels._common`.

Speed: with one open window ``push`` runs the one-shot kernel's per-window loop
(:func:`eventpipe.kernels.frames._bin_window`) on the open window's slot, so the
per-event rules are literally those of ``to_frames``; per packet, Python makes one
type check and one Numba call (state, parameters and counters are one int64 array).

Wall clock: with ``timeout_s`` set, ``poll()`` (or ``push`` of an empty packet)
after ``timeout_s`` seconds without events closes the open window as if event
time had reached its end; each further timeout closes one more (empty) window.
Later events older than that are then subject to the time policy.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from eventpipe.events import EVENT_DTYPE
from eventpipe.kernels._common import (
    DEFAULT_TIME_TOLERANCE_US,
    N_COUNTERS,
    BinStats,
    add_counts,
    as_event_array,
    n_polarities,
    saturation_value,
    sensor_wh,
)
from eventpipe.kernels.frames import _bin_window

# The state vector (one int64 array, so a push passes few arguments): the stream's
# state (slots 0..N_LIVE-1, cleared by reset), its parameters, then the BinStats counters.
S_STARTED, S_START, S_RUNMAX, S_KEMIT, S_NOUT, S_BASE, S_NEED, S_LO = range(8)
N_LIVE = 8
S_WINDOW, S_STRIDE, S_TOL, S_FIXED = range(8, 12)
S_CTR = 12
N_STATE = S_CTR + N_COUNTERS


@njit(cache=True, nogil=True)
def _move_frame(dst, src, zero_src):
    """``dst[:] = src`` (flat frames), then ``src[:] = 0`` if ``zero_src``: plain unsigned
    loops, which LLVM turns into memcpy/memset (Numba's ``dst[:] = src`` is ~4x slower)."""
    n = np.uint64(src.shape[0])
    one = np.uint64(1)
    i = np.uint64(0)
    while i < n:
        dst[i] = src[i]
        i += one
    if zero_src:
        i = np.uint64(0)
        while i < n:
            src[i] = 0
            i += one


@njit(cache=True, nogil=True)
def _close_until(ti, ring, outbuf, state, single):
    """Emit every open window whose end is <= ti.

    ``single`` (stride >= window, one open window): the open window accumulates
    in place in ``outbuf[base + n_out]``; closing it just moves on to the next
    slot (zeroed).  Otherwise open windows live in ``ring`` and are copied out.
    The caller guarantees the capacity (see ``_needed``).
    """
    window = state[S_WINDOW]
    stride = state[S_STRIDE]
    start = state[S_START]
    k = state[S_KEMIT]
    n_out = state[S_NOUT]
    base = state[S_BASE]
    out = outbuf.reshape(outbuf.shape[0], -1)
    if single:
        while start + k * stride + window <= ti:
            n_out += 1
            k += 1
            out[base + n_out][:] = 0
    else:
        M = ring.shape[0]
        rf = ring.reshape(M, -1)
        while start + k * stride + window <= ti:
            slot = k % M
            _move_frame(out[n_out], rf[slot], True)
            n_out += 1
            k += 1
    state[S_KEMIT] = k
    state[S_NOUT] = n_out


@njit(cache=True, nogil=True)
def _needed(ti, state, single):
    """Output slots needed (from index 0) after closing the windows ending <= ti."""
    c = (ti - state[S_START] - state[S_WINDOW]) // state[S_STRIDE] + 1 - state[S_KEMIT]
    if c < 0:
        c = 0
    if single:
        return state[S_BASE] + state[S_NOUT] + c + 1
    return state[S_NOUT] + c


@njit(cache=True, nogil=True)
def _begin(t0, ring, outbuf, state, single):
    """First event (time ``t0``) since a reset: fix the start, close the windows before
    it.  Returns 0, or the output slots needed first (nothing changed then)."""
    if state[S_FIXED] == 0:
        state[S_START] = t0
    need = _needed(t0, state, single)
    if need > outbuf.shape[0]:
        return need
    state[S_STARTED] = 1
    state[S_RUNMAX] = t0
    state[S_KEMIT] = 0
    _close_until(t0, ring, outbuf, state, single)
    return 0


@njit(cache=True, nogil=True)
def _push_single(ev, i0, outbuf, state, maxv):
    """Events ``ev[i0:]`` with one open window (stride >= window), accumulating in place
    in ``outbuf[base + n_out]``, one window at a time (:func:`frames._bin_window`: the
    one-shot kernel's loop).  Returns the number of windows completed (they lie at
    ``outbuf[state[S_LO]:]``), or ``-1 - i`` when event ``i`` would complete more windows
    than ``outbuf`` holds: the caller makes room for ``state[S_NEED]`` and calls again
    from ``i``."""
    n = ev.shape[0]
    cap = outbuf.shape[0]
    out = outbuf.reshape(cap, -1)
    counters = state[S_CTR:]
    i = np.int64(i0)
    if state[S_STARTED] == 0:
        need = _begin(ev[i].t, outbuf, outbuf, state, True)
        if need:
            state[S_NEED] = need
            return -1 - i
    window = state[S_WINDOW]
    stride = state[S_STRIDE]
    tol = state[S_TOL]
    start = state[S_START]
    runmax = state[S_RUNMAX]
    maxval = maxv[0]
    base = state[S_BASE]
    if base > 0 and state[S_NOUT] == 0 and _needed(ev[n - 1].t, state, True) > cap:
        # the packet (if sorted) overflows the buffer: move the open window to the front
        # now (one frame copy) rather than its completed windows too, later
        _move_frame(out[0], out[base], False)
        state[S_BASE] = 0
    while True:
        ws = start + state[S_KEMIT] * stride
        i, runmax = _bin_window(ev, i, n, ws, ws + window, out[state[S_BASE] + state[S_NOUT]],
                                outbuf.shape[3], outbuf.shape[2], outbuf.shape[1], tol, maxval,
                                runmax, counters)
        if i >= n:
            break
        ti = ev[i].t  # at/past the window's end (and the running max): close windows
        need = _needed(ti, state, True)
        if need > cap:
            state[S_RUNMAX] = runmax
            state[S_NEED] = need
            return -1 - i
        runmax = ti
        _close_until(ti, outbuf, outbuf, state, True)
    state[S_RUNMAX] = runmax
    n_out = state[S_NOUT]
    state[S_LO] = state[S_BASE]
    state[S_BASE] += n_out  # the open window's slot is the new base
    state[S_NOUT] = 0
    return n_out


@njit(cache=True, nogil=True)
def _push_ring(ev, i0, ring, outbuf, state, maxv):
    """Overlapping windows (stride < window): open windows in ``ring``, per event (each
    event goes to every open window containing it).
    Returns as :func:`_push_single` (completed windows at ``outbuf[0:]``)."""
    n = ev.shape[0]
    cap = outbuf.shape[0]
    M = ring.shape[0]
    H = ring.shape[2]
    W = ring.shape[3]
    rf = ring.reshape(-1)
    counters = state[S_CTR:]
    if state[S_STARTED] == 0:
        need = _begin(ev[i0].t, ring, outbuf, state, False)
        if need:
            state[S_NEED] = need
            return -1 - np.int64(i0)
    window = state[S_WINDOW]
    stride = state[S_STRIDE]
    tol = state[S_TOL]
    start = state[S_START]
    runmax = state[S_RUNMAX]
    maxval = maxv[0]
    one = np.uint64(1)
    Wu = np.uint64(W)
    Hu = np.uint64(H)
    F = np.uint64(ring.shape[1] * H * W)  # one frame
    plane = np.uint64(H * W if ring.shape[1] == 2 else 0)
    Mu = np.uint64(M)
    k_emit = state[S_KEMIT]
    cur_start = start + k_emit * stride  # the oldest open window
    cur_end = cur_start + window
    slot0 = np.uint64(k_emit % M)
    n_clamp = 0
    n_back = 0
    n_oob = 0
    n_range = 0
    i = np.uint64(i0)
    nu = np.uint64(n)
    ret = np.int64(0)
    while i < nu:
        e = ev[i]
        ti = e.t
        if ti >= runmax:
            if ti >= cur_end:
                need = _needed(ti, state, False)
                if need > cap:
                    state[S_NEED] = need
                    ret = -1 - np.int64(i)
                    break
                _close_until(ti, ring, outbuf, state, False)
                k_emit = state[S_KEMIT]
                cur_start = start + k_emit * stride
                cur_end = cur_start + window
                slot0 = np.uint64(k_emit % M)
            runmax = ti
        elif runmax - ti <= tol:
            ti = runmax
            n_clamp += 1
        else:
            n_back += 1
            i += one
            continue
        i += one
        xi = np.uint64(e.x)
        yi = np.uint64(e.y)
        if (xi >= Wu) | (yi >= Hu):
            n_oob += 1
            continue
        if ti < cur_start:
            n_range += 1
            continue
        j = yi * Wu + xi + plane * np.uint64(e.p != 0)
        slot = slot0
        ws = cur_start
        while ws <= ti:  # every open window containing ti
            q = slot * F + j
            v = rf[q]
            if v < maxval:
                rf[q] = v + 1
            slot += one
            if slot == Mu:
                slot = np.uint64(0)
            ws += stride
    state[S_RUNMAX] = runmax
    add_counts(counters, np.int64(i) - i0, n_oob, n_clamp, n_back, n_range)
    if ret < 0:
        return ret
    n_out = state[S_NOUT]
    state[S_LO] = 0
    state[S_NOUT] = 0
    return n_out


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
        self._maxv = np.full(1, self.maxval, self.dtype)
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
        self._state = np.zeros(N_STATE, np.int64)
        self._state[S_WINDOW] = self.window
        self._state[S_STRIDE] = self.stride
        self._state[S_TOL] = self.tol
        self._state[S_FIXED] = int(start_time is not None)
        self._counters = self._state[S_CTR:]  # a view: the kernels count in the state vector
        self.frames_emitted = 0
        self.timeouts = 0
        self.reset()

    def reset(self) -> None:
        """Forget all state (open windows, start time); stats are kept."""
        self._ring.fill(0)
        self._outbuf[0] = 0
        self._state[:N_LIVE] = 0
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
        # hot path: a few attribute reads and one kernel call per packet (no allocation)
        ev = events if type(events) is np.ndarray and events.dtype is EVENT_DTYPE \
            else as_event_array(events)
        if not ev.shape[0]:
            return self.poll(now=now, copy=copy)
        state = self._state
        if self._single:
            r = _push_single(ev, 0, self._outbuf, state, self._maxv)
            while r < 0:  # the packet completes more windows than the buffer holds
                self._make_room(int(state[S_NEED]))
                r = _push_single(ev, -1 - r, self._outbuf, state, self._maxv)
        else:
            r = _push_ring(ev, 0, self._ring, self._outbuf, state, self._maxv)
            while r < 0:
                self._make_room(int(state[S_NEED]))
                r = _push_ring(ev, -1 - r, self._ring, self._outbuf, state, self._maxv)
        self._last_wall = self.clock() if now is None else now
        if not r:
            return self._empty
        self.frames_emitted += r
        lo = state[S_LO]
        res = self._outbuf[lo:lo + r]
        return res.copy() if copy else res

    def advance_to(self, t_us: int, *, copy: bool = True) -> np.ndarray:
        """Declare that event time reached ``t_us``: close the windows ending <= t_us."""
        if not self.started or t_us <= self._state[S_RUNMAX]:
            return self._empty
        need = _needed(np.int64(t_us), self._state, self._single)
        if need > self._outbuf.shape[0]:
            self._make_room(int(need))
        self._state[S_RUNMAX] = int(t_us)
        _close_until(np.int64(t_us), self._ring, self._outbuf, self._state, self._single)
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
