"""1x1 convs on graded maps bounded in int16: two input channels per multiply-add.

The SepConv's pointwise conv reads the depthwise conv's map, which is graded and mostly non-zero,
but small: the compiler's bound (``sum |w| >> k + |bias|`` of the depthwise kernel, ``<< -k`` for a
negative weight exponent: :func:`~snn.backends.chip.exponent.scaled_bound`) is a few thousand.
Where that bound fits int16, the values of two input channels are packed into one 32-bit word,
broadcast, and multiplied with the two channels' int16 weights interleaved per output - the pattern of ``vpmaddwd`` / ``vpdpwssd`` (16 outputs x 2 channels per instruction), written as plain
LLVM vector IR (sign-extend, multiply, add the even and odd products) so that LLVM picks those
instructions where the CPU has them and something equivalent elsewhere.  Sums are int32, exact where
``sum |w| * bound < 2^31`` (the executor checks).  A pair with both values zero is skipped; the MACs
counted are those of the non-zero values, as everywhere.  Results equal
:mod:`~snn.backends.chip.reference` bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .kernels import _JIT, _emit
from .wide import wide_vectors

BLOCKS = 8


def pair_weights(w: np.ndarray) -> np.ndarray:
    """``[Co, Ci, 1, 1]`` -> int16 ``[ceil(Ci / 2), Cop, 2]``: channels ``2p`` and ``2p + 1``
    interleaved per output, outputs padded with zeros to a multiple of 16 (``Ci`` to even)."""
    co, ci = w.shape[0], w.shape[1]
    cop = co + (-co % 16)
    out = np.zeros((ci + ci % 2, cop), np.int16)
    out[:ci, :co] = w[:, :, 0, 0].T
    return np.ascontiguousarray(out.reshape(-1, 2, cop).transpose(0, 2, 1))


def _make_pairs(nb: int):
    @intrinsic
    def pairs_store(typingctx, acc, w, offs, words, n, j0):
        """``acc[j0 + j] = sum_r lo(words[r]) * w[offs[r] + 2 (j0 + j)] + hi(words[r]) * w[... + 1]``
        for ``j`` in ``[0, nb * 16)`` (int16 halves, int32 sums)."""
        sig = types.void(acc, w, offs, words, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            a_arr, w_arr, o_arr, x_arr, nv, j0v = args
            ap = context.make_array(signature.args[0])(context, builder, a_arr).data
            wp = context.make_array(signature.args[1])(context, builder, w_arr).data
            op = context.make_array(signature.args[2])(context, builder, o_arr).data
            xp = context.make_array(signature.args[3])(context, builder, x_arr).data
            i32, i64 = ir.IntType(32), ir.IntType(64)
            v32 = ir.VectorType(i32, 16)
            w16 = ir.VectorType(ir.IntType(16), 32)
            p32 = ir.VectorType(i32, 32)
            even = ir.Constant(ir.VectorType(i32, 16), [2 * j for j in range(16)])
            odd = ir.Constant(ir.VectorType(i32, 16), [2 * j + 1 for j in range(16)])
            acc = [cgutils.alloca_once(builder, v32) for _ in range(nb)]
            for a in acc:
                builder.store(ir.Constant(v32, None), a)
            with cgutils.for_range_slice(builder, i64(0), nv, i64(1), intp=i64) as (r, _):
                o = builder.load(builder.gep(op, [r], inbounds=True))
                word = builder.load(builder.gep(xp, [r], inbounds=True))
                xs = builder.insert_element(ir.Constant(v32, ir.Undefined), word, i32(0))
                xs = builder.shuffle_vector(xs, ir.Constant(v32, ir.Undefined), ir.Constant(v32, [0] * 16))
                xw = builder.sext(builder.bitcast(xs, w16), p32)
                base = builder.add(o, builder.mul(j0v, i64(2)))
                for k in range(nb):
                    ptr = builder.gep(wp, [builder.add(base, i64(32 * k))], inbounds=True)
                    ww = builder.sext(builder.load(builder.bitcast(ptr, w16.as_pointer()), align=2), p32)
                    prod = builder.mul(xw, ww)
                    ev = builder.shuffle_vector(prod, ir.Constant(p32, ir.Undefined), even)
                    od = builder.shuffle_vector(prod, ir.Constant(p32, ir.Undefined), odd)
                    builder.store(builder.add(builder.load(acc[k]), builder.add(ev, od)), acc[k])
            for k in range(nb):
                at = builder.bitcast(builder.gep(ap, [builder.add(j0v, i64(16 * k))], inbounds=True), v32.as_pointer())
                builder.store(builder.load(acc[k]), at, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return pairs_store


_p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8 = (_make_pairs(k) for k in range(1, BLOCKS + 1))


@numba.njit(inline="always", **_JIT)
def _pairs(acc, w, offs, words, n, cop):  # pragma: no cover - jitted
    nblk = cop // 16
    for b0 in range(0, nblk, BLOCKS):
        k = min(BLOCKS, nblk - b0)
        j0 = b0 * 16
        if k == 8:
            _p8(acc, w, offs, words, n, j0)
        elif k == 7:
            _p7(acc, w, offs, words, n, j0)
        elif k == 6:
            _p6(acc, w, offs, words, n, j0)
        elif k == 5:
            _p5(acc, w, offs, words, n, j0)
        elif k == 4:
            _p4(acc, w, offs, words, n, j0)
        elif k == 3:
            _p3(acc, w, offs, words, n, j0)
        elif k == 2:
            _p2(acc, w, offs, words, n, j0)
        else:
            _p1(acc, w, offs, words, n, j0)


@numba.njit(**_JIT)
def _pairs_at(src, b, q0, qstep, wp, stride, shift, rnd, bias, dst, add, lo, hi, tacc, tzero, offs, words):  # pragma: no cover
    """Output rows ``q0, q0 + qstep, ...`` of batch row ``b``; returns ``(MACs, saturations)``."""
    wide_vectors()
    _, H, W, Ci = src.shape
    _, Ho, Wo, Co = dst.shape
    cop = wp.shape[1]
    wf = wp.reshape(-1)
    npair = wp.shape[0]
    n = 0
    n_sat = 0
    for oy in range(q0, Ho, qstep):
        for ox in range(Wo):
            iy = oy * stride
            ix = ox * stride
            m = 0
            nz = 0
            for p in range(npair):
                c = 2 * p
                v0 = np.int64(src[b, iy, ix, c])
                v1 = np.int64(src[b, iy, ix, c + 1]) if c + 1 < Ci else np.int64(0)
                nz += (v0 != 0) + (v1 != 0)
                if v0 != 0 or v1 != 0:
                    offs[m] = p * cop * 2
                    words[m] = np.int32((v0 & 0xFFFF) | ((v1 & 0xFFFF) << 16))
                    m += 1
            n += nz * Co
            _pairs(tacc, wf, offs, words, m, cop)
            n_sat += _emit(tacc, tzero, dst, b, oy, ox, shift, rnd, bias, add, lo, hi)
    return n, n_sat


@numba.njit(**_JIT)
def conv_pairs(src, wp, stride, shift, rnd, bias, dst, add, lo, hi):  # pragma: no cover - jitted
    """A 1x1 conv on a graded map ``src [B, H, W, Ci]`` with values in int16 (``wp``:
    :func:`pair_weights`) into ``dst``; returns ``(MACs, saturations)``."""
    wide_vectors()
    cop = wp.shape[1]
    tacc = np.zeros(cop, np.int32)
    tzero = np.zeros(cop, np.int16)
    offs = np.empty(wp.shape[0], np.int64)
    words = np.empty(wp.shape[0], np.int32)
    n = 0
    n_sat = 0
    for b in range(dst.shape[0]):
        a, s = _pairs_at(src, b, np.int64(0), np.int64(1), wp, stride, shift, rnd, bias, dst, add, lo, hi, tacc,
                         tzero, offs, words)
        n += a
        n_sat += s
    return n, n_sat


@numba.njit(parallel=True, **_JIT)
def conv_pairs_par(src, wp, stride, shift, rnd, bias, dst, add, lo, hi, parts):  # pragma: no cover - jitted
    """:func:`conv_pairs` with the output rows interleaved over ``parts`` threads."""
    wide_vectors()
    cop = wp.shape[1]
    ns = np.zeros(parts, np.int64)
    sats = np.zeros(parts, np.int64)
    for part_u in numba.prange(parts):
        part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
        wide_vectors()
        tacc = np.zeros(cop, np.int32)
        tzero = np.zeros(cop, np.int16)
        offs = np.empty(wp.shape[0], np.int64)
        words = np.empty(wp.shape[0], np.int32)
        for b in range(dst.shape[0]):
            a, s = _pairs_at(src, b, part, parts, wp, stride, shift, rnd, bias, dst, add, lo, hi, tacc, tzero,
                             offs, words)
            ns[part] += a
            sats[part] += s
    return ns.sum(), sats.sum()
