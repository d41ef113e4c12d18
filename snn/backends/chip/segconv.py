"""Dense convs on spikes, one register pass per output position over all its (spike, tap) rows.

Per output position, the receptive field's taps are listed as *segments*: ``(e0, e1, add)`` - the
spikes ``e0 .. e1`` of the input position under that tap (a slice of its address list) and the
offset of the tap's rows (``tap * cog``).  At most ``K * K`` segments per position, built from the
per-position spike counts alone (no per-spike list).  :func:`segs_add` - an LLVM loop written here -
then sums, for every segment and every spike in it, the int8 row ``w[offs[e] + add + j0 :][:k * 32]``
into ``k`` (1..:data:`BLOCKS`) blocks of 32 int16 sums held in vector registers for the whole
position, and stores them once.  The int16 sums are exact while the position has at most ``flush``
rows (``flush * max|w| <= 32767``; never flushed where the static bound ``sum |w|`` over every output
channel's fan-in fits int16); a position with more rows is summed in chunks of ``flush`` rows, each
added into the exact int32 (or int64) row.  Output blocks of :data:`BLOCKS` x 32 are taken
outermost for weights past the L2 cache (``blocked``), innermost otherwise.  The results equal
:mod:`~snn.backends.chip.reference` bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fusedlif import emit_lif
from .kernels import _JIT, _emit_range
from .spikeconv import _row_offsets as row_offsets, block_types
from .wide import wide_vectors

#: int16 lanes of one 512-bit vector: a dense spike conv's rows are padded to a multiple of this
LANES = 32
#: blocks of LANES sums that one pass over a position's rows keeps in registers
BLOCKS = 8


def _make_segs_add(nb: int):
    """An intrinsic ``segs_add(t16, w, offs, seg, s0, s1, j0, half)``: for ``j`` in ``[0, nb * LANES)``
    (``- LANES / 2`` with ``half``: the last block one of 16 lanes), ``t16[j0 + j] = sum over segments
    s in [s0, s1), e in [seg[3s], seg[3s+1]) of w[offs[e] + seg[3s+2] + j0 + j]`` (int8 or int16
    rows, int16 sums; ``t16`` is overwritten).  Both loops are generated, ``half`` picks one."""

    @intrinsic
    def segs_add(typingctx, t16, w, offs, seg, s0, s1, j0, half):
        sig = types.void(t16, w, offs, seg, types.int64, types.int64, types.int64, types.boolean)

        def codegen(context, builder, signature, args):
            t_arr, w_arr, o_arr, s_arr, s0v, s1v, j0v, halfv = args
            arrs = [context.make_array(signature.args[k])(context, builder, a).data
                    for k, a in enumerate((t_arr, w_arr, o_arr, s_arr))]
            bits = signature.args[1].dtype.bitwidth  # int8 rows (int16 where a weight is -128)
            wide = signature.args[2].dtype.bitwidth < 64
            with builder.if_else(halfv) as (then, otherwise):
                with then:
                    _segs_loop(builder, block_types(nb - 1, True, bits), *arrs, wide, s0v, s1v, j0v)
                with otherwise:
                    _segs_loop(builder, block_types(nb, False, bits), *arrs, wide, s0v, s1v, j0v)
            return context.get_dummy_value()

        return sig, codegen

    return segs_add


def _segs_loop(builder, blk, tp, wp, op, sp, wide, s0v, s1v, j0v):
    """The LLVM loops of ``segs_add`` for the register blocks ``blk`` (:func:`block_types`)."""
    i64 = ir.IntType(64)
    acc = [cgutils.alloca_once(builder, v16) for _, v16, _ in blk]  # promoted to registers by LLVM
    for a, (_, v16, _) in zip(acc, blk):
        builder.store(ir.Constant(v16, None), a)
    with cgutils.for_range_slice(builder, s0v, s1v, i64(1), intp=i64) as (s, _):
        s3 = builder.mul(s, i64(3))
        e0 = builder.load(builder.gep(sp, [s3], inbounds=True))
        e1 = builder.load(builder.gep(sp, [builder.add(s3, i64(1))], inbounds=True))
        add = builder.add(builder.load(builder.gep(sp, [builder.add(s3, i64(2))], inbounds=True)), j0v)
        with cgutils.for_range_slice(builder, e0, e1, i64(1), intp=i64) as (e, _):
            o = builder.load(builder.gep(op, [e], inbounds=True))
            if wide:
                o = builder.sext(o, i64)
            base = builder.add(o, add)
            for a, (j, v16, vw) in zip(acc, blk):
                wv = builder.load(builder.bitcast(builder.gep(wp, [builder.add(base, i64(j))], inbounds=True),
                                                  vw.as_pointer()), align=1)
                builder.store(builder.add(builder.load(a), builder.sext(wv, v16) if vw.element.width < 16 else wv), a)
    for a, (j, v16, _) in zip(acc, blk):
        at = builder.bitcast(builder.gep(tp, [builder.add(j0v, i64(j))], inbounds=True), v16.as_pointer())
        builder.store(builder.load(a), at, align=2)


_segs1, _segs2, _segs3, _segs4, _segs5, _segs6, _segs7, _segs8 = (_make_segs_add(k) for k in range(1, BLOCKS + 1))


@numba.njit(inline="always", **_JIT)
def _segs_k(t16, w, offs, seg, s0, s1, j0, k, half):  # pragma: no cover - jitted
    """:func:`segs_add` with ``k`` (1..BLOCKS) blocks of sums in registers, the last of them a
    16-lane one where ``half``."""
    if k == 8:
        _segs8(t16, w, offs, seg, s0, s1, j0, half)
    elif k == 7:
        _segs7(t16, w, offs, seg, s0, s1, j0, half)
    elif k == 6:
        _segs6(t16, w, offs, seg, s0, s1, j0, half)
    elif k == 5:
        _segs5(t16, w, offs, seg, s0, s1, j0, half)
    elif k == 4:
        _segs4(t16, w, offs, seg, s0, s1, j0, half)
    elif k == 3:
        _segs3(t16, w, offs, seg, s0, s1, j0, half)
    elif k == 2:
        _segs2(t16, w, offs, seg, s0, s1, j0, half)
    else:
        _segs1(t16, w, offs, seg, s0, s1, j0, half)


@numba.njit(**_JIT)
def _chunks(seg, ns, flush, cseg, cend):  # pragma: no cover - jitted
    """Splits the segments ``seg[:3 ns]`` into chunks of at most ``flush`` rows: ``cseg`` the split
    segments, ``cend[c]`` the end of chunk ``c`` in them; returns the number of chunks."""
    nc = 0
    m = 0
    rows = 0
    for s in range(ns):
        e0 = seg[3 * s]
        e1 = seg[3 * s + 1]
        while e0 < e1:
            e = min(e1, e0 + (flush - rows))
            cseg[3 * m] = e0
            cseg[3 * m + 1] = e
            cseg[3 * m + 2] = seg[3 * s + 2]
            m += 1
            rows += e - e0
            e0 = e
            if rows == flush:
                cend[nc] = m
                nc += 1
                rows = 0
    if rows > 0:
        cend[nc] = m
        nc += 1
    return nc


@numba.njit(**_JIT)
def _conv_segs_at(npos, b, q0, qstep, H, W, Ci, wt, stride, pad, flush, shift, rnd, bias, dst, add, lo, hi,
                  blocked, t16, tacc, tzero, offs, seg, cseg, cend, lif, flag, lcnt):  # pragma: no cover - jitted
    """Output rows ``q0, q0 + qstep, ...`` of batch row ``b`` (one group); returns ``(accumulates, saturations)``.
    ``lif``: ``None``, or the LIF fused into the finish (:mod:`~snn.backends.chip.fusedlif`)."""
    wide_vectors()
    _, Ho, Wo, Co = dst.shape
    K = wt.shape[1]
    cog = wt.shape[3]
    wf = wt.reshape(-1)
    nb = npos[b]
    nblk = -(-cog // LANES)  # the last one a 16-lane block where cog is an odd multiple of 16
    half = cog % LANES != 0
    grp = BLOCKS if blocked else nblk  # blocks per pass over the positions
    n = 0
    n_sat = 0
    for g0 in range(0, nblk, grp):
        g1 = min(nblk, g0 + grp)
        for oy in range(q0, Ho, qstep):
            y0 = oy * stride - pad
            ky0 = max(0, -y0)
            ky1 = min(K, H - y0)
            for ox in range(Wo):
                x0 = ox * stride - pad
                kx0 = max(0, -x0)
                kx1 = min(K, W - x0)
                ns = np.int64(0)  # not Literal[int](0): one signature for _chunks
                nr = 0
                for ky in range(ky0, ky1):
                    prow = (y0 + ky) * W + x0
                    for kx in range(kx0, kx1):
                        p = prow + kx
                        m = nb[p]
                        if m > 0:
                            seg[3 * ns] = p * Ci
                            seg[3 * ns + 1] = p * Ci + m
                            seg[3 * ns + 2] = (ky * K + kx) * cog
                            ns += 1
                            nr += m
                if g0 == 0:
                    n += nr * Co
                if nr <= flush:
                    for jb in range(g0, g1, BLOCKS):
                        k = min(BLOCKS, g1 - jb)
                        _segs_k(t16, wf, offs, seg, 0, ns, jb * LANES, k, half and jb + k == nblk)
                    j0 = g0 * LANES
                    if lif is None:
                        n_sat += _emit_range(t16, tzero, dst, b, oy, ox, j0, min(g1 * LANES, Co), shift, rnd, bias,
                                             add, lo, hi)
                    else:
                        n_sat += emit_lif(t16, tzero, b, oy, ox, j0, min(g1 * LANES, Co), shift, rnd, bias, lo, hi,
                                          lif, flag, lcnt)
                else:  # more rows than the int16 sums hold: chunks of flush rows, each into the exact row
                    nc = _chunks(seg, ns, flush, cseg, cend)
                    j0 = g0 * LANES
                    j1 = min(g1 * LANES, cog)
                    tacc[j0:j1] = 0
                    c0 = 0
                    for c in range(nc):
                        for jb in range(g0, g1, BLOCKS):
                            k = min(BLOCKS, g1 - jb)
                            _segs_k(t16, wf, offs, cseg, c0, cend[c], jb * LANES, k, half and jb + k == nblk)
                        for j in range(j0, j1):
                            tacc[j] += t16[j]
                        c0 = cend[c]
                    if lif is None:
                        n_sat += _emit_range(tacc, tzero, dst, b, oy, ox, j0, min(j1, Co), shift, rnd, bias, add, lo,
                                             hi)
                    else:
                        n_sat += emit_lif(tacc, tzero, b, oy, ox, j0, min(j1, Co), shift, rnd, bias, lo, hi, lif, flag,
                                          lcnt)
    return n, n_sat


@numba.njit(**_JIT)
def _scratch(K, Ci, cog, flush, acc_proto):  # pragma: no cover - jitted
    """Per-thread scratch: int16 sums, the exact row, zeros, segments, chunked segments, chunk ends."""
    KK = K * K
    mc = KK + (KK * Ci) // max(flush, 1) + 2  # segments after splitting at chunk ends (flush >= 1)
    return (np.zeros(cog, np.int16), np.zeros(cog, acc_proto.dtype), np.zeros(cog, np.int16),
            np.empty(3 * KK, np.int64), np.empty(3 * mc, np.int64), np.empty(mc, np.int64))


@numba.njit(**_JIT)
def conv_segs(chan, npos, H, W, Ci, wt, stride, pad, flush, shift, rnd, bias, dst, add, lo, hi, acc_proto, offs,
              blocked, lif, lcnt):  # pragma: no cover - jitted
    """A one-group conv on spikes into ``dst [B, Ho, Wo, Co]`` (set or residual add) on the calling
    thread; ``wt [Ci, K, K, cog]`` (``cog``: ``Co`` padded to a multiple of LANES); ``acc_proto``: the
    exact accumulator's dtype; ``offs``: scratch of ``H * W * Ci`` row offsets; ``lif``: ``None``, or
    the LIF fused into the finish (``dst`` is then not written; its saturations and spikes are added
    into ``lcnt``).  Returns ``(accumulates, saturations)``."""
    wide_vectors()
    K = wt.shape[1]
    cog = wt.shape[3]
    t16, tacc, tzero, seg, cseg, cend = _scratch(K, Ci, cog, flush, acc_proto)
    flag = np.zeros(dst.shape[3] + LANES, np.uint8)
    n = 0
    n_sat = 0
    for b in range(dst.shape[0]):
        row_offsets(chan, npos, b, Ci, K * K * cog, offs)
        a, s = _conv_segs_at(npos, b, np.int64(0), np.int64(1), H, W, Ci, wt, stride, pad, flush, shift, rnd, bias,
                             dst, add, lo, hi, blocked, t16, tacc, tzero, offs, seg, cseg, cend, lif, flag, lcnt)
        n += a
        n_sat += s
    return n, n_sat


@numba.njit(parallel=True, **_JIT)
def conv_segs_par(chan, npos, H, W, Ci, wt, stride, pad, flush, shift, rnd, bias, dst, add, lo, hi, acc_proto,
                  offs, blocked, lif, lcnt, parts):  # pragma: no cover - jitted
    """:func:`conv_segs` with the output rows interleaved over ``parts`` threads."""
    wide_vectors()
    K = wt.shape[1]
    cog = wt.shape[3]
    ns = np.zeros(parts, np.int64)
    sats = np.zeros(parts, np.int64)
    lcs = np.zeros((parts, 2), np.int64)
    for b in range(dst.shape[0]):
        row_offsets(chan, npos, b, Ci, K * K * cog, offs)
        for part_u in numba.prange(parts):
            part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
            wide_vectors()
            t16, tacc, tzero, seg, cseg, cend = _scratch(K, Ci, cog, flush, acc_proto)
            flag = np.zeros(dst.shape[3] + LANES, np.uint8)
            a, s = _conv_segs_at(npos, b, part, parts, H, W, Ci, wt, stride, pad, flush, shift, rnd, bias, dst,
                                 add, lo, hi, blocked, t16, tacc, tzero, offs, seg, cseg, cend, lif, flag, lcs[part])
            ns[part] += a
            sats[part] += s
    lcnt[0] += lcs[:, 0].sum()
    lcnt[1] += lcs[:, 1].sum()
    return ns.sum(), sats.sum()
