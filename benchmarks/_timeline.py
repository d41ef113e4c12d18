"""Where a parallel ``to_frames`` call's wall time goes (``benchmarks/binning.py --timeline``).

Each chunk of a parallel time-window call is timed inside Numba with the CPU's time-stamp
counter (``llvm.readcyclecounter``: constant-rate on this CPU, one clock for every thread),
by swapping ``frames._bin_chunks`` for a copy that stamps each chunk's start and end and the
moment a thread finds no chunk left.  The call itself is stamped from Python around it.  A
measurement aid only: the copy binds the same kernels, so the frames are the same (checked).
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from eventpipe.kernels import frames
from eventpipe.kernels._common import I64_MIN
from eventpipe.kernels._teamwork import claim


@intrinsic
def _tsc(typingctx):
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@njit(nogil=True)
def tsc():
    return _tsc()


MAXCH = 256


@njit(nogil=True)
def _timed_chunks(ev, ev_lo, k_lo, ws, we, out, npol, tol, maxval, runmax, counters, room,
                  counter, log, done, wid):
    """``frames._bin_chunks`` with stamps: ``log[c] = (thread, start, end)``, ``done[wid]``:
    when this thread found no chunk left."""
    taken = 0
    while True:
        c = claim(counter)
        if c >= ev_lo.shape[0] - 1:
            done[wid] = _tsc()
            return taken
        t0 = _tsc()
        runmax[c] = frames._bin_windows(ev, ev_lo[c], ev_lo[c + 1], ws, we, out, k_lo[c],
                                        k_lo[c + 1], npol, tol, maxval, I64_MIN, False,
                                        counters[c], room)
        log[c, 0] = wid
        log[c, 1] = t0
        log[c, 2] = _tsc()
        taken += 1


def timeline(ev, wh, tw, calls: int) -> dict[str, float]:
    """The default call ``calls`` times with stamps; the median of each part in ms:
    ``pre`` (entry to the calling thread's first chunk: checks, allocation, the plan, the
    hand-over), ``helper_late`` (the helper's first chunk after the caller's; ``nan`` when
    the caller did every chunk), ``busy0`` / ``busy1`` (time inside chunks, each thread),
    ``tail`` (from the first thread finding no chunk left to the last chunk's end: one
    thread idle), ``post`` (last chunk's end to the return), ``total``, ``chunks``."""
    log = np.zeros((MAXCH, 3), np.int64)
    done = np.zeros(8, np.int64)
    main = threading.main_thread()

    def stamped(ev_, ev_lo, k_lo, ws, we, res, P, tol, maxval, runmax, cc, room, counter):
        wid = 0 if threading.current_thread() is main else 1
        return _timed_chunks(ev_, ev_lo, k_lo, ws, we, res, P, tol, maxval, runmax, cc, room,
                             counter, log, done, wid)

    a, t0 = tsc(), time.perf_counter()
    time.sleep(0.05)
    ghz = (tsc() - a) / (time.perf_counter() - t0) / 1e9
    real = frames._bin_chunks
    want = frames.to_frames(ev, wh, time_window=tw)
    parts = []
    frames._bin_chunks = stamped
    try:
        got = frames.to_frames(ev, wh, time_window=tw)  # (compiles the copy)
        if not np.array_equal(got, want):
            raise SystemExit("timeline: the stamped kernel's frames differ")
        del got, want
        for _ in range(calls):
            log[:] = 0
            done[:] = 0
            s = tsc()
            frames.to_frames(ev, wh, time_window=tw)
            e = tsc()
            n = int(np.count_nonzero(log[:, 2]))
            ch = log[:n]
            ms = lambda v: v / ghz / 1e6  # noqa: E731
            mine, theirs = ch[ch[:, 0] == 0], ch[ch[:, 0] == 1]
            if not len(mine):  # a one-thread call (below the work threshold): no chunks
                parts.append(dict.fromkeys(("pre", "helper_late", "busy0", "busy1", "tail",
                                            "post"), np.nan) | dict(total=ms(e - s), chunks=0))
                continue
            ends = [v for v in done[:2] if v]
            parts.append(dict(
                pre=ms(mine[:, 1].min() - s),
                helper_late=ms(theirs[:, 1].min() - mine[:, 1].min()) if len(theirs) else np.nan,
                busy0=ms((mine[:, 2] - mine[:, 1]).sum()),
                busy1=ms((theirs[:, 2] - theirs[:, 1]).sum()),
                tail=max(0.0, ms(ch[:, 2].max() - min(ends))) if len(ends) == 2 else np.nan,
                post=ms(e - ch[:, 2].max()), total=ms(e - s), chunks=n))
    finally:
        frames._bin_chunks = real
    with warnings.catch_warnings():  # (all-nan parts of one-thread calls)
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: float(np.nanmedian([p[k] for p in parts])) for k in parts[0]}
