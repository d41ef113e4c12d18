"""The streaming windower's Numba kernels and its state vector (used by
:class:`eventpipe.kernels.streaming.StreamingBinner`, which documents the semantics).

One int64 state vector per stream: its live state (``S_*`` below ``N_LIVE``, cleared by
``reset``), its parameters, the discontinuity counters, then the ``BinStats`` counters.
A kernel either finishes its packet (returns the number of frames completed) or stops
at event ``i`` (returns ``-1 - i``) with ``state[S_STOP]`` saying why: ``STOP_ROOM``
(the caller makes room for ``state[S_NEED]`` output slots and calls again from ``i``) or
``STOP_GAP`` (a discontinuity was handled; the caller takes the frames and resumes at
``i``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from eventpipe.kernels._common import N_COUNTERS, add_counts
from eventpipe.kernels.frames import _bin_window

#: a jump of event time past this is a discontinuity (see StreamingBinner)
DEFAULT_MAX_GAP_US = 1_000_000
#: output of one push/resume call, in bytes (at least 16 frames)
DEFAULT_MAX_OUTPUT_BYTES = 64 << 20

# The state vector (one int64 array, so a push passes few arguments): the stream's
# state (slots 0..N_LIVE-1, cleared by reset), its parameters, the discontinuity counters,
# then the BinStats counters.
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
