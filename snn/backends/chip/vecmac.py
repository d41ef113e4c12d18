"""Multiply-accumulate of int32 weight rows by graded values, in explicit 512-bit vectors.

Numba's loops over a row of ``cog`` outputs (48, 80, ...) let LLVM pick the vector shape, and it
unrolls them to 64 lanes or more, so short rows run in its narrow remainder loop instead.  These
LLVM loops fix the shape: blocks of ``512 / bits`` lanes of the accumulator's type (16 for int32
sums, 8 for int64), weights int32 (sign-extended for int64 sums), the value broadcast.  Integer
products and sums wrap exactly like the scalar code they replace: the callers pick the sums' width
so that nothing wraps (``sum |w| * max |v|`` bound).

* :func:`mac_store` sums a list of rows into up to :data:`BLOCKS` blocks held in registers and stores
  them once (a gather per output position: the graded 1x1 / KxK conv);
* :func:`mac_add` adds one row times a value into memory (a scatter: the first layer).
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: vector blocks that one pass over the rows keeps in registers
BLOCKS = 8


def _lanes(bits: int) -> int:
    return 512 // bits


def _row(builder, wp, off, lanes, sbits):
    """``lanes`` int32 weights at ``wp + off`` as a vector of ``sbits``-bit integers."""
    v32 = ir.VectorType(ir.IntType(32), lanes)
    wv = builder.load(builder.bitcast(builder.gep(wp, [off], inbounds=True), v32.as_pointer()), align=4)
    return builder.sext(wv, ir.VectorType(ir.IntType(sbits), lanes)) if sbits > 32 else wv


def _splat(builder, x, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.IntType(32)(0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count))


def _make_mac_store(nb: int):
    @intrinsic
    def mac_store(typingctx, acc, w, offs, vals, n, j0):
        """``acc[j0 + j] = sum(vals[r] * w[offs[r] + j0 + j] for r in range(n))`` for ``j`` in
        ``[0, nb * lanes)`` (``lanes = 512 / acc bits``)."""
        sig = types.void(acc, w, offs, vals, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            a_arr, w_arr, o_arr, v_arr, nv, j0v = args
            ap = context.make_array(signature.args[0])(context, builder, a_arr).data
            wp = context.make_array(signature.args[1])(context, builder, w_arr).data
            op = context.make_array(signature.args[2])(context, builder, o_arr).data
            vp = context.make_array(signature.args[3])(context, builder, v_arr).data
            bits = signature.args[0].dtype.bitwidth
            lanes = _lanes(bits)
            ety = ir.IntType(bits)
            vty = ir.VectorType(ety, lanes)
            i64 = ir.IntType(64)
            acc = [cgutils.alloca_once(builder, vty) for _ in range(nb)]
            for a in acc:
                builder.store(ir.Constant(vty, None), a)
            with cgutils.for_range_slice(builder, i64(0), nv, i64(1), intp=i64) as (r, _):
                o = builder.load(builder.gep(op, [r], inbounds=True))
                o = builder.sext(o, i64) if o.type.width < 64 else o
                x = builder.load(builder.gep(vp, [r], inbounds=True))
                x = builder.sext(x, ety) if x.type.width < bits else builder.trunc(x, ety) if x.type.width > bits else x
                xs = _splat(builder, x, vty)
                base = builder.add(o, j0v)
                for k in range(nb):
                    wv = _row(builder, wp, builder.add(base, i64(k * lanes)), lanes, bits)
                    builder.store(builder.add(builder.load(acc[k]), builder.mul(xs, wv)), acc[k])
            for k in range(nb):
                at = builder.bitcast(builder.gep(ap, [builder.add(j0v, i64(k * lanes))], inbounds=True),
                                     vty.as_pointer())
                builder.store(builder.load(acc[k]), at, align=bits // 8)
            return context.get_dummy_value()

        return sig, codegen

    return mac_store


_st1, _st2, _st3, _st4, _st5, _st6, _st7, _st8 = (_make_mac_store(k) for k in range(1, BLOCKS + 1))


@numba.njit(inline="always", cache=True, nogil=True)
def mac_store(acc, w, offs, vals, n, cop):  # pragma: no cover - jitted
    """``acc[:cop] = sum of vals[r] * w[offs[r]:][:cop]`` over ``r < n``; ``cop`` a multiple of the
    accumulator's lanes (16 for int32, 8 for int64); up to BLOCKS blocks in registers per pass."""
    lanes = 512 // (acc.itemsize * 8)
    nblk = cop // lanes
    for b0 in range(0, nblk, BLOCKS):
        k = min(BLOCKS, nblk - b0)
        j0 = b0 * lanes
        if k == 8:
            _st8(acc, w, offs, vals, n, j0)
        elif k == 7:
            _st7(acc, w, offs, vals, n, j0)
        elif k == 6:
            _st6(acc, w, offs, vals, n, j0)
        elif k == 5:
            _st5(acc, w, offs, vals, n, j0)
        elif k == 4:
            _st4(acc, w, offs, vals, n, j0)
        elif k == 3:
            _st3(acc, w, offs, vals, n, j0)
        elif k == 2:
            _st2(acc, w, offs, vals, n, j0)
        else:
            _st1(acc, w, offs, vals, n, j0)


@intrinsic
def mac_add(typingctx, acc, ao, w, wo, v, nvec):
    """``acc[ao + j] += v * w[wo + j]`` for ``j`` in ``[0, nvec * lanes)`` (``lanes = 512 / acc bits``)."""
    sig = types.void(acc, types.int64, w, types.int64, v, types.int64)

    def codegen(context, builder, signature, args):
        a_arr, aov, w_arr, wov, x, nv = args
        ap = context.make_array(signature.args[0])(context, builder, a_arr).data
        wp = context.make_array(signature.args[2])(context, builder, w_arr).data
        bits = signature.args[0].dtype.bitwidth
        lanes = _lanes(bits)
        ety = ir.IntType(bits)
        vty = ir.VectorType(ety, lanes)
        i64 = ir.IntType(64)
        x = builder.sext(x, ety) if x.type.width < bits else builder.trunc(x, ety) if x.type.width > bits else x
        xs = _splat(builder, x, vty)
        with cgutils.for_range_slice(builder, i64(0), nv, i64(1), intp=i64) as (k, _):
            off = builder.mul(k, i64(lanes))
            at = builder.bitcast(builder.gep(ap, [builder.add(aov, off)], inbounds=True), vty.as_pointer())
            wv = _row(builder, wp, builder.add(wov, off), lanes, bits)
            builder.store(builder.add(builder.load(at, align=bits // 8), builder.mul(xs, wv)), at, align=bits // 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def add8(typingctx, acc, ao, w, wo):
    """``acc[ao:ao + 8] += w[wo:wo + 8]`` (int32; one 256-bit add, no array views)."""
    sig = types.void(acc, types.int64, w, types.int64)

    def codegen(context, builder, signature, args):
        a_arr, aov, w_arr, wov = args
        ap = context.make_array(signature.args[0])(context, builder, a_arr).data
        wp = context.make_array(signature.args[2])(context, builder, w_arr).data
        vty = ir.VectorType(ir.IntType(32), 8)
        at = builder.bitcast(builder.gep(ap, [aov], inbounds=True), vty.as_pointer())
        wv = builder.load(builder.bitcast(builder.gep(wp, [wov], inbounds=True), vty.as_pointer()), align=4)
        builder.store(builder.add(builder.load(at, align=4), wv), at, align=4)
        return context.get_dummy_value()

    return sig, codegen
