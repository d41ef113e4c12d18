"""Spike address lists from spike flags: one vector compress-store per 32 channels.

:func:`compress32` writes the channel numbers of the set flags among 32 channels contiguously
(``llvm.masked.compressstore``: one ``vpcompressw``/``vpcompressd`` on AVX-512 VBMI2/F CPUs, a
scalar loop that LLVM writes elsewhere) and returns how many it wrote - what the LIF update does
for every position, instead of a loop over every channel.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 32


@intrinsic
def compress32(typingctx, out, at, flag, c0, n):
    """``out[at:at + k] = [c0 + j for j in range(n) if flag[c0 + j]]``; returns ``k``.  ``flag``
    (uint8) must hold ``c0 + 32`` entries (pad it): 32 flags are read whatever ``n``."""
    sig = types.int64(out, types.int64, flag, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        o_arr, atv, f_arr, c0v, nv = args
        optr = context.make_array(signature.args[0])(context, builder, o_arr).data
        fptr = context.make_array(signature.args[2])(context, builder, f_arr).data
        bits = signature.args[0].dtype.bitwidth
        ety = ir.IntType(bits)
        vty = ir.VectorType(ety, LANES)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        b8 = ir.VectorType(ir.IntType(8), LANES)
        m1 = ir.VectorType(ir.IntType(1), LANES)
        fl = builder.load(builder.bitcast(builder.gep(fptr, [c0v], inbounds=True), b8.as_pointer()), align=1)
        mask = builder.icmp_unsigned("!=", fl, ir.Constant(b8, None))
        iota = ir.Constant(vty, [ir.Constant(ety, j) for j in range(LANES)])
        nvec = builder.insert_element(ir.Constant(vty, ir.Undefined), builder.trunc(nv, ety), i32(0))
        nvec = builder.shuffle_vector(nvec, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))
        mask = builder.and_(mask, builder.icmp_signed("<", iota, nvec))
        base = builder.insert_element(ir.Constant(vty, ir.Undefined), builder.trunc(c0v, ety), i32(0))
        base = builder.shuffle_vector(base, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))
        vals = builder.add(base, iota)
        fnty = ir.FunctionType(ir.VoidType(), [vty, ety.as_pointer(), m1])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.compressstore.v{LANES}i{bits}")
        builder.call(fn, [vals, builder.gep(optr, [atv], inbounds=True), mask])
        pop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [i32]), "llvm.ctpop.i32")
        k = builder.call(pop, [builder.bitcast(mask, i32)])
        return builder.zext(k, i64)

    return sig, codegen
