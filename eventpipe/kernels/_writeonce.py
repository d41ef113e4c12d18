"""Time-window binning that writes each output frame exactly once.

The default :func:`~eventpipe.kernels.frames.to_frames` call bins straight into a new
``np.zeros`` output: Linux zeroes each (2 MB) page when it is first touched, then the
events land in it.  Memory that is already mapped (a caller's ``out=``, or a buffer
recycled by an :class:`~eventpipe.kernels.OutputPool`) holds old data, and zeroing it
first costs a full pass over the output.  Here instead each window is binned into a
small zeroed *scratch* frame that stays in cache, and then copied to its place in the
output while the scratch is zeroed again for the next window: every byte of the output
is written once, never read.  For large outputs the copy uses non-temporal stores
(``!nontemporal`` LLVM stores: written to memory without reading the lines first), so
the output costs one streaming write.  Small outputs (below :data:`NT_MIN_BYTES`) use
ordinary stores, so that a consumer reading them right away finds them in cache.

Only for disjoint time windows (the usual case); overlapping windows zero the output and
use the general kernel.  Every scratch frame is zero again when a kernel returns.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from eventpipe.kernels._common import I64_MIN
from eventpipe.kernels._teamwork import claim
from eventpipe.kernels._window_loop import _bin_time_range, _bin_window, _bin_window_fast

#: outputs at least this large are copied out with non-temporal stores
NT_MIN_BYTES = 16 << 20


@intrinsic
def _nt_move64(typingctx, dst, di, src, si):
    """Copy the 64 bytes at element ``si`` of ``src`` to element ``di`` of ``dst`` (which
    must be 64-byte aligned there) with a non-temporal store, and zero those source bytes."""
    sig = types.void(dst, di, src, si)

    def codegen(context, builder, signature, args):
        d = context.make_array(signature.args[0])(context, builder, args[0])
        s = context.make_array(signature.args[2])(context, builder, args[2])
        i64 = ir.IntType(64)
        size = ir.Constant(i64, context.get_abi_sizeof(
            context.get_data_type(signature.args[0].dtype)))
        dpos = context.cast(builder, args[1], signature.args[1], types.int64)
        spos = context.cast(builder, args[3], signature.args[3], types.int64)
        vec = ir.VectorType(i64, 8)
        src_p = builder.inttoptr(builder.add(builder.ptrtoint(s.data, i64),
                                             builder.mul(spos, size)), vec.as_pointer())
        dst_p = builder.inttoptr(builder.add(builder.ptrtoint(d.data, i64),
                                             builder.mul(dpos, size)), vec.as_pointer())
        value = builder.load(src_p, align=1)
        store = builder.store(value, dst_p, align=64)
        store.set_metadata("nontemporal",
                           builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        builder.store(ir.Constant(vec, None), src_p, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _store_fence(typingctx):
    """``sfence``: non-temporal stores are weakly ordered; make them visible before return."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse.sfence")
        builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _flush_frame_nt(dst, d0, src, n, nt):
    """``dst[d0:d0 + n] = src[:n]``, then ``src[:n] = 0``; with ``nt`` the 64-byte aligned
    middle of the destination is written with non-temporal stores."""
    i = 0
    if nt:
        size = dst.itemsize
        addr = dst.ctypes.data + d0 * size
        head = min(n, ((64 - addr % 64) % 64) // size)
        while i < head:
            dst[d0 + i] = src[i]
            src[i] = 0
            i += 1
        per = 64 // size
        while i + per <= n:
            _nt_move64(dst, d0 + i, src, i)
            i += per
    while i < n:
        dst[d0 + i] = src[i]
        src[i] = 0
        i += 1


@njit(cache=True, nogil=True)
def _flush_frame_plain(dst, d0, src, n, nt):
    """``dst[d0:d0 + n] = src[:n]``, then ``src[:n] = 0`` (ordinary stores)."""
    for i in range(n):
        dst[d0 + i] = src[i]
        src[i] = 0


@njit(cache=True, nogil=True)
def _sfence():
    _store_fence()


@njit(cache=True, nogil=True)
def _no_fence():
    pass


#: the non-temporal store and ``sfence`` above are x86-64's; elsewhere ordinary stores
_X86 = platform.machine().lower() in ("x86_64", "amd64")
flush_frame = _flush_frame_nt if _X86 else _flush_frame_plain
_fence = _sfence if _X86 else _no_fence


@njit(cache=True, nogil=True)
def bin_windows_once(ev, a, n, ws, we, out, k0, k1, scratch, npol, tol, maxval, runmax,
                     counters, room, nt):
    """Events ``ev[a:n]`` into the disjoint windows ``k0..k1-1`` of ``out`` (any contents:
    every byte of those frames is written), one window at a time into ``scratch`` (zero;
    zero again on return) with the one-shot per-window loop (``room < 0``: the per-event
    loop, float times), each then copied to its frame (:func:`flush_frame`).  Returns
    the running max; events after the last window are only counted."""
    flat = out.reshape(-1)
    F = out.shape[1] * out.shape[2] * out.shape[3]
    for k in range(k0, k1):
        if room < 0:
            a, runmax = _bin_window(ev, a, n, ws[k], we[k], scratch, out.shape[3],
                                    out.shape[2], npol, tol, maxval, runmax, counters)
        else:
            a, runmax = _bin_window_fast(ev, a, n, ws[k], we[k], scratch, out.shape[3],
                                         out.shape[2], npol, tol, maxval, runmax, counters,
                                         room)
        flush_frame(flat, k * F, scratch, F, nt)
    _fence()
    return _bin_time_range(ev.x, ev.y, ev.t, ev.p, a, n, ws[k1:k1], we[k1:k1], out, npol, tol,
                           maxval, runmax, counters)  # no windows left: only counts


@njit(cache=True, nogil=True)
def bin_chunks_once(ev, ev_lo, k_lo, ws, we, out, scratch, npol, tol, maxval, runmax, counters,
                    room, nt, counter):
    """Chunks ``c`` taken from ``counter`` (:func:`_teamwork.claim`) until none is left:
    events ``[ev_lo[c], ev_lo[c+1])`` into windows ``[k_lo[c], k_lo[c+1])`` with this
    thread's ``scratch`` frame (no two threads write the same frame).  Each chunk starts
    its running maximum afresh.  Returns how many chunks this thread took."""
    taken = 0
    while True:
        c = claim(counter)
        if c >= ev_lo.shape[0] - 1:
            return taken
        runmax[c] = bin_windows_once(ev, ev_lo[c], ev_lo[c + 1], ws, we, out, k_lo[c],
                                     k_lo[c + 1], scratch, npol, tol, maxval,
                                     np.int64(I64_MIN), counters[c], room, nt)
        taken += 1


def use_nt(out: np.ndarray) -> bool:
    """Non-temporal copies for outputs of at least :data:`NT_MIN_BYTES`."""
    return _X86 and out.nbytes >= NT_MIN_BYTES
