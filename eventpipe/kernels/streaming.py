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
    I64_MIN,
    N_COUNTERS,
    BinStats,
    add_counts,
    as_event_array,
    n_polarities,
    saturation_value,
    sensor_wh,
)
from eventpipe.kernels.frames import _bin_window

#: a jump of event time past this is a discontinuity (see StreamingBinner)
DEFAULT_MAX_GAP_US = 1_000_000
#: output of one push/resume call, in bytes (at least 16 frames)
DEFAULT_MAX_OUTPUT_BYTES = 64 << 20

# The state vector (one int64 array, so a push passes few arguments): the stream's
# state (slots 0..N_LIVE-1, cleared by reset), its parameters, then the BinStats counters.
S_STARTED, S_START, S_RUNMAX, S_KEMIT, S_NOUT, S_BASE, S_NEED, S_LO, S_STOP, S_LASTEND = range(10)
N_LIVE = 10
S_WINDOW, S_STRIDE, S_TOL, S_FIXED, S_MAXGAP = range(10, 15)
S_GAPS, S_SKIPPED = 15, 16  # discontinuities, empty windows skipped across them
S_CTR = 17
N_STATE = S_CTR + N_COUNTERS
# why a kernel stopped before the end of its packet (state[S_STOP])
STOP_ROOM, STOP_GAP = 1, 2


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
    """Emit every open window whose end is <= ti, as far as ``outbuf`` holds them.

    ``single`` (stride >= window, one open window): the open window accumulates
    in place in ``outbuf[base + n_out]``; closing it just moves on to the next
    slot (zeroed).  Otherwise open windows live in ``ring`` and are copied out.
    The caller makes room first (see ``_needed``); a caller that cannot (the
    per-call output bound) gets the windows that fit and returns for the rest.
    """
    window = state[S_WINDOW]
    stride = state[S_STRIDE]
    start = state[S_START]
    k = state[S_KEMIT]
    n_out = state[S_NOUT]
    base = state[S_BASE]
    cap = outbuf.shape[0]
    out = outbuf.reshape(cap, -1)
    if single:
        while start + k * stride + window <= ti and base + n_out + 1 < cap:
            n_out += 1
            k += 1
            out[base + n_out][:] = 0
    else:
        M = ring.shape[0]
        rf = ring.reshape(M, -1)
        while start + k * stride + window <= ti and n_out < cap:
            slot = k % M
            _move_frame(out[n_out], rf[slot], True)
            n_out += 1
            k += 1
    if k != state[S_KEMIT]:
        state[S_LASTEND] = start + (k - 1) * stride + window
    state[S_KEMIT] = k
    state[S_NOUT] = n_out


@njit(cache=True, nogil=True)
def _first_open(ti, state):
    """Index of the first window whose end is > ti (the one an event at ti opens)."""
    d = ti - state[S_START] - state[S_WINDOW]
    if d < 0:
        return np.int64(0)
    return d // state[S_STRIDE] + 1


@njit(cache=True, nogil=True)
def _is_gap(ti, runmax, state):
    """Whether event time ``ti`` lies more than ``max_gap_us`` past ``runmax`` (the last
    event's time): a discontinuity.  ``max_gap_us < 0``: never."""
    g = state[S_MAXGAP]
    return g >= 0 and ti - runmax > g


@njit(cache=True, nogil=True)
def _discontinuity(ti, ring, outbuf, state, single):
    """Event time jumped from ``state[S_RUNMAX]`` to ``ti`` (further than the gap bound,
    ahead or back): emit the windows that may hold events (those starting at or before
    the last event: one in ``single`` mode, at most ``ceil(window/stride)`` otherwise),
    then go on from the window containing ``ti`` without touching the windows between
    (ahead: they are empty, counted in ``windows_skipped``; back: without a fixed start
    the window grid restarts at ``ti``, as after a reset).  Returns 0, or the output
    slots needed first (nothing changed then)."""
    window = state[S_WINDOW]
    stride = state[S_STRIDE]
    start = state[S_START]
    k = state[S_KEMIT]
    runmax = state[S_RUNMAX]
    n_close = np.int64(1)
    if not single:
        n_close = (runmax - start) // stride - k + 1
        if n_close < 0:
            n_close = 0
        if n_close > ring.shape[0]:
            n_close = ring.shape[0]
    need = state[S_NOUT] + n_close + (state[S_BASE] + 1 if single else 0)
    if need > outbuf.shape[0]:
        return need
    out = outbuf.reshape(outbuf.shape[0], -1)
    n_out = state[S_NOUT]
    if single:
        n_out += 1
        out[state[S_BASE] + n_out][:] = 0
    else:
        M = ring.shape[0]
        rf = ring.reshape(M, -1)
        for j in range(n_close):
            _move_frame(out[n_out], rf[(k + j) % M], True)
            n_out += 1
        ring[:] = 0  # windows after the last event hold nothing; be exact all the same
    k += n_close
    if n_close:
        state[S_LASTEND] = start + (k - 1) * stride + window
    if ti < runmax and state[S_FIXED] == 0:
        state[S_START] = ti  # back in time: a new grid from ti
        k = 0
    else:
        k_new = _first_open(ti, state)
        if k_new > k:
            state[S_SKIPPED] += k_new - k
        if k_new > k or ti < runmax:
            k = k_new
    state[S_KEMIT] = k
    state[S_NOUT] = n_out
    state[S_GAPS] += 1
    return 0


@njit(cache=True, nogil=True)
def _back_check(t0, ring, outbuf, state, single):
    """At the start of a call: is the first event ``t0`` further behind the last one than
    the gap bound (plus the time tolerance)?  Then it is a discontinuity (see
    :func:`_discontinuity`; the running maximum restarts at ``t0``) and the call stops
    there (``STOP_GAP``).  Sets ``state[S_STOP]``; returns whether the call must stop."""
    if state[S_STARTED] == 0 or state[S_MAXGAP] < 0:
        return False
    if state[S_RUNMAX] - t0 <= state[S_MAXGAP] + state[S_TOL]:
        return False
    need = _discontinuity(t0, ring, outbuf, state, single)
    if need:
        state[S_NEED] = need
        state[S_STOP] = STOP_ROOM
    else:
        state[S_RUNMAX] = t0
        state[S_STOP] = STOP_GAP
    return True


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
    elif state[S_MAXGAP] >= 0 and t0 - state[S_START] > state[S_MAXGAP]:
        # far after the fixed start: skip the empty windows before it (counted)
        k0 = _first_open(t0, state)
        state[S_STARTED] = 1
        state[S_RUNMAX] = t0
        state[S_KEMIT] = k0
        state[S_SKIPPED] += k0
        state[S_GAPS] += 1
        return 0
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
    state[S_STOP] = 0
    if _back_check(ev[i].t, outbuf, outbuf, state, True):
        return -1 - i
    if state[S_STARTED] == 0:
        need = _begin(ev[i].t, outbuf, outbuf, state, True)
        if need:
            state[S_NEED] = need
            state[S_STOP] = STOP_ROOM
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
        state[S_RUNMAX] = runmax
        if _is_gap(ti, runmax, state):
            need = _discontinuity(ti, outbuf, outbuf, state, True)
            state[S_NEED] = need
            state[S_STOP] = STOP_ROOM if need else STOP_GAP
            return -1 - i
        need = _needed(ti, state, True)
        if need > cap:
            state[S_NEED] = need
            state[S_STOP] = STOP_ROOM
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
    state[S_STOP] = 0
    if _back_check(ev[i0].t, ring, outbuf, state, False):
        return -1 - np.int64(i0)
    if state[S_STARTED] == 0:
        need = _begin(ev[i0].t, ring, outbuf, state, False)
        if need:
            state[S_NEED] = need
            state[S_STOP] = STOP_ROOM
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
                if _is_gap(ti, runmax, state):
                    state[S_RUNMAX] = runmax
                    need = _discontinuity(ti, ring, outbuf, state, False)
                    state[S_NEED] = need
                    state[S_STOP] = STOP_ROOM if need else STOP_GAP
                    ret = -1 - np.int64(i)
                    break
                need = _needed(ti, state, False)
                if need > cap:
                    state[S_NEED] = need
                    state[S_STOP] = STOP_ROOM
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
    window on a silent sensor, None = off); ``clock`` (seconds, for tests);
    ``max_gap_us`` (a jump of event time past this, or past one window if that is
    longer, is a discontinuity, see below; None = never, exactly ``to_frames``); ``max_frames`` (at most this many
    frames per call; None = as many as fit in ``max_output_bytes``).

    Bounded whatever arrives: one event far ahead of the last (a damaged timestamp,
    a sender restart, a sensor silent for minutes) would close every empty window
    across the gap.  Past ``max_gap_us`` the binner instead emits the windows that
    hold events, skips the empty ones without allocating (``windows_skipped``)
    and counts it in ``discontinuities``.  :meth:`push` returns all of a
    packet's frames; :meth:`push_bounded` (and :meth:`iter_push`) return at most
    ``max_frames`` at a time and stop at each discontinuity (``discontinuity``
    True); while ``pending`` is True, :meth:`resume` gives the next frames and a
    new packet is refused.  Time going back further than
    the bound (a restarted sender) is a discontinuity too, found at a packet's first
    event (a check per packet, none per event): the window grid restarts there.
    Inside a packet, events that far behind are dropped as backwards and counted, as
    the time policy says (file sources cut their chunks where time jumps back, see
    :func:`eventpipe.io.chunking.rebatch`).  With the bounded calls, memory is
    the ring and one output buffer of at most ``max_frames`` frames, nothing
    proportional to the input.
    """

    def __init__(self, sensor_size, window_us, stride_us=None, *, start_time=None,
                 polarities=None, dtype=np.int16, clip=None, binary=False,
                 time_tolerance_us=DEFAULT_TIME_TOLERANCE_US, timeout_s=None,
                 clock=time.monotonic, initial_capacity=8, max_gap_us=DEFAULT_MAX_GAP_US,
                 max_frames=None, max_output_bytes=DEFAULT_MAX_OUTPUT_BYTES):
        self.W, self.H = sensor_wh(sensor_size)
        self.P = n_polarities(sensor_size, polarities)
        self.window = int(window_us)
        self.stride = int(stride_us) if stride_us is not None else self.window
        if self.window <= 0 or self.stride <= 0:
            raise ValueError("window_us and stride_us must be > 0")
        if max_gap_us is not None and int(max_gap_us) < 0:
            raise ValueError(f"max_gap_us must be >= 0 or None, got {max_gap_us}")
        self.dtype = np.dtype(dtype)
        frame_bytes = self.P * self.H * self.W * self.dtype.itemsize
        if max_frames is None:
            max_frames = max(16, int(max_output_bytes) // max(1, frame_bytes))
        if int(max_frames) < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self._single = self.stride >= self.window
        m = -(-self.window // self.stride)
        # a discontinuity closes every open window at once: the ring's length at least
        self.max_frames = int(max_frames) if self._single else max(int(max_frames), m)
        self.max_gap_us = None if max_gap_us is None else int(max_gap_us)
        self.maxval = saturation_value(self.dtype, clip, binary)
        self._maxv = np.full(1, self.maxval, self.dtype)
        self.tol = np.int64(time_tolerance_us)
        self.timeout_s = timeout_s
        self.clock = clock
        self.start_time = start_time
        # output slots: the frames of one call, plus the open window's slot (single mode)
        self._max_slots = self.max_frames + (1 if self._single else 0)
        ring_shape = (1, 1, 1, 1) if self._single else (m, self.P, self.H, self.W)
        self._ring = np.zeros(ring_shape, self.dtype)
        cap = min(self._max_slots, max(2, initial_capacity))
        self._outbuf = np.zeros((cap, self.P, self.H, self.W), self.dtype)
        self._empty = np.zeros((0, self.P, self.H, self.W), self.dtype)
        self._state = np.zeros(N_STATE, np.int64)
        self._state[S_WINDOW] = self.window
        self._state[S_STRIDE] = self.stride
        self._state[S_TOL] = self.tol
        self._state[S_FIXED] = int(start_time is not None)
        # a gap shorter than a window never is a discontinuity (the window spans it)
        self._state[S_MAXGAP] = -1 if max_gap_us is None else max(int(max_gap_us), self.window)
        self._counters = self._state[S_CTR:]  # a view: the kernels count in the state vector
        self.frames_emitted = 0
        self.timeouts = 0
        self._rest: tuple[np.ndarray, int] | None = None  # (packet, next event) to resume
        self.discontinuity = False  # the last call stopped at a discontinuity
        self.reset()

    def reset(self) -> None:
        """Forget all state (open windows, start time, a pending rest); stats are kept."""
        self._ring.fill(0)
        self._outbuf[0] = 0
        self._state[:N_LIVE] = 0
        self._state[S_LASTEND] = I64_MIN
        if self.start_time is not None:
            self._state[S_START] = int(self.start_time)
        self._last_wall = self.clock()
        self._rest = None
        self.discontinuity = False

    @property
    def started(self) -> bool:
        return bool(self._state[S_STARTED])

    @property
    def pending(self) -> bool:
        """Events of the last packet wait for :meth:`resume` (output bound or discontinuity)."""
        return self._rest is not None

    @property
    def discontinuities(self) -> int:
        """Event-time jumps past ``max_gap_us`` so far."""
        return int(self._state[S_GAPS])

    @property
    def windows_skipped(self) -> int:
        """Empty windows skipped across discontinuities (never allocated)."""
        return int(self._state[S_SKIPPED])

    @property
    def last_closed_end(self) -> int | None:
        """End (µs) of the last window closed (the last frame returned), None before any."""
        if not self.started or self._state[S_LASTEND] == I64_MIN:
            return None
        return int(self._state[S_LASTEND])

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
        """Room for ``need`` output slots: move the live frames to the front, else grow
        (never past ``max_frames``: the caller checks ``need`` against it)."""
        base = int(self._state[S_BASE])
        live = int(self._state[S_NOUT]) + (1 if self._single else 0)
        if base > 0:  # (single mode) completed + open frames back to index 0
            self._outbuf[:live] = self._outbuf[base:base + live]
            self._state[S_BASE] = 0
            need -= base
            if need <= self._outbuf.shape[0]:
                return
        cap = min(self._max_slots, max(int(need), 2 * self._outbuf.shape[0]))
        if cap <= self._outbuf.shape[0]:
            return
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

    def _run(self, ev: np.ndarray, i: int, copy: bool) -> np.ndarray:
        """Run the kernel over ``ev[i:]`` until it ends, stops at a discontinuity or has
        ``max_frames`` frames to return."""
        self._rest = None
        self.discontinuity = False
        if self._single:
            r = _push_single(ev, i, self._outbuf, self._state, self._maxv)
        else:
            r = _push_ring(ev, i, self._ring, self._outbuf, self._state, self._maxv)
        if r > 0:
            self.frames_emitted += r
            lo = self._state[S_LO]
            res = self._outbuf[lo:lo + r]
            return res.copy() if copy else res
        if r == 0:
            return self._empty
        return self._stopped(ev, r, copy)

    def _stopped(self, ev: np.ndarray, r: int, copy: bool) -> np.ndarray:
        """The kernel stopped early (``r = -1 - i``): make room and go on, or return what
        is done and keep the rest (``pending``)."""
        state = self._state
        while True:
            i = -1 - r
            if state[S_STOP] == STOP_GAP:
                self._rest = (ev, i)
                self.discontinuity = True
                return self._take(copy)
            need = int(state[S_NEED]) - (int(state[S_BASE]) if self._single else 0)
            if need <= self._max_slots:
                self._make_room(int(state[S_NEED]))
                if self._single:
                    r = _push_single(ev, i, self._outbuf, state, self._maxv)
                else:
                    r = _push_ring(ev, i, self._ring, self._outbuf, state, self._maxv)
                if r >= 0:
                    if not r:
                        return self._empty
                    self.frames_emitted += r
                    lo = state[S_LO]
                    res = self._outbuf[lo:lo + r]
                    return res.copy() if copy else res
                continue
            # more windows than one call may return: fill the buffer, return, resume later
            self._make_room(self._max_slots + int(state[S_BASE]))
            t = np.int64(ev[i]["t"])
            if not state[S_STARTED]:  # the first event (what _begin does, in steps)
                state[S_STARTED] = 1
                state[S_RUNMAX] = t
                state[S_KEMIT] = 0
            if _is_gap(t, state[S_RUNMAX], state):
                if _discontinuity(t, self._ring, self._outbuf, state, self._single) == 0:
                    self.discontinuity = True
            else:
                _close_until(t, self._ring, self._outbuf, state, self._single)
            self._rest = (ev, i)
            return self._take(copy)

    def push(self, events, *, copy: bool = True, now: float | None = None) -> np.ndarray:
        """Feed a packet; return every frame ``(n, P, H, W)`` it completed (maybe n=0).

        The frames of one packet are bounded by the packet's span (and a few per time
        jump); to bound one call's output as well, use :meth:`push_bounded` /
        :meth:`iter_push` (what the runtime does)."""
        first = self.push_bounded(events, copy=copy, now=now)
        if self._rest is None:
            return first
        parts = [first if copy else first.copy()]
        while self._rest is not None:
            parts.append(self.resume(copy=False).copy())
        return np.concatenate(parts)

    def push_bounded(self, events, *, copy: bool = True, now: float | None = None
                     ) -> np.ndarray:
        """Feed a packet; return at most ``max_frames`` of the frames it completed, and
        stop at a discontinuity (``discontinuity``).  If ``pending`` is True afterwards,
        :meth:`resume` returns the next ones (call it until ``pending`` is False)."""
        # hot path: a few attribute reads and one kernel call per packet (no allocation)
        if self._rest is not None:
            raise RuntimeError("StreamingBinner: the previous packet is not finished; "
                               "call resume() until pending is False (or use iter_push)")
        ev = events if type(events) is np.ndarray and events.dtype is EVENT_DTYPE \
            else as_event_array(events)
        if not ev.shape[0]:
            return self.poll(now=now, copy=copy)
        res = self._run(ev, 0, copy)
        self._last_wall = self.clock() if now is None else now
        return res

    def resume(self, *, copy: bool = True) -> np.ndarray:
        """The next frames of a packet that returned early (``pending``); empty if none."""
        if self._rest is None:
            return self._empty
        ev, i = self._rest
        return self._run(ev, i, copy)

    def iter_push(self, events, *, copy: bool = True):
        """Yield ``(frames, discontinuity)`` chunks until the packet is done
        (``discontinuity``: event time jumps after these frames)."""
        frames = self.push_bounded(events, copy=copy)
        while True:
            yield frames, self.discontinuity
            if self._rest is None:
                return
            frames = self.resume(copy=copy)

    def advance_to(self, t_us: int, *, copy: bool = True) -> np.ndarray:
        """Declare that event time reached ``t_us``: close the windows ending <= t_us
        (at most ``max_frames``; past the gap bound it is a discontinuity)."""
        if not self.started or self._rest is not None or t_us <= self._state[S_RUNMAX]:
            return self._empty
        t = np.int64(t_us)
        if _is_gap(t, self._state[S_RUNMAX], self._state):
            need = self._state[S_NOUT] + self._ring.shape[0] + self._state[S_BASE] + 2
            self._make_room(min(int(need), self._max_slots + int(self._state[S_BASE])))
            _discontinuity(t, self._ring, self._outbuf, self._state, self._single)
        else:
            need = _needed(t, self._state, self._single)
            self._make_room(min(int(need), self._max_slots + int(self._state[S_BASE])))
            _close_until(t, self._ring, self._outbuf, self._state, self._single)
        self._state[S_RUNMAX] = int(t)
        return self._take(copy)

    def poll(self, *, now: float | None = None, copy: bool = True) -> np.ndarray:
        """Apply the wall-clock timeout: close the open window after silence."""
        now = self.clock() if now is None else now
        if self.timeout_s is None or not self.started or self._rest is not None \
                or now - self._last_wall < self.timeout_s:
            return self._empty
        self._last_wall = now
        self.timeouts += 1
        return self.advance_to(self.next_window[1], copy=copy)

    def flush(self) -> np.ndarray:
        """Return the partial last window ``(1, P, H, W)`` (or none) and reset.
        A pending rest (see ``pending``) is dropped: drain it with :meth:`resume` first."""
        if not self.started:
            self.reset()
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
    out = [f for pk in packets for f, _ in b.iter_push(pk)]
    out.append(b.flush())
    return np.concatenate(out, axis=0)
