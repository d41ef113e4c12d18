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

from eventpipe.events import EVENT_DTYPE
from eventpipe.kernels._common import (
    DEFAULT_TIME_TOLERANCE_US,
    I64_MIN,
    BinStats,
    as_event_array,
    n_polarities,
    saturation_value,
    sensor_wh,
)
from eventpipe.kernels._streaming_core import (
    DEFAULT_MAX_GAP_US,
    DEFAULT_MAX_OUTPUT_BYTES,
    N_LIVE,
    N_STATE,
    STOP_GAP,
    S_BASE,
    S_CTR,
    S_FIXED,
    S_GAPS,
    S_KEMIT,
    S_LASTEND,
    S_LO,
    S_MAXGAP,
    S_NEED,
    S_NOUT,
    S_RUNMAX,
    S_SKIPPED,
    S_START,
    S_STARTED,
    S_STOP,
    S_STRIDE,
    S_TOL,
    S_WINDOW,
    _close_until,
    _discontinuity,
    _is_gap,
    _needed,
    _push_ring,
    _push_single,
)

#: the longest window or stride: 10^15 us (31 years).  The kernels add them to event times
#: in int64; far longer ones overflowed there (a window of 2^63 - 1 us never closed: the
#: call looped forever)
MAX_SPAN_US = 10**15


class StreamingBinner:
    """Incremental ``to_frames`` over time windows (see module docstring).

    Parameters: ``sensor_size`` (W, H); ``window_us``; ``stride_us`` (default
    ``window_us``; smaller = overlapping windows, larger = gaps);
    ``start_time`` (default: first event's timestamp); ``polarities`` (2, or 1 =
    merged); ``dtype``/``clip``/``binary`` as in ``to_frames``;
    ``time_tolerance_us`` (time policy); ``timeout_s`` (wall-clock close of a
    window on a silent sensor, None = off); ``clock`` (seconds, for tests);
    ``max_gap_us`` (a jump of event time past this, or past one window if that is
    longer, is a discontinuity, see below; None = never, exactly ``to_frames``);
    ``max_frames`` (at most this many frames per bounded call; None = as many as fit
    in ``max_output_bytes``).

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
        if max(self.window, self.stride) > MAX_SPAN_US:
            raise ValueError(f"window_us and stride_us must be at most {MAX_SPAN_US:,} us, got "
                             f"{self.window:,} and {self.stride:,}")
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
