"""The executor's convs on spikes (the accumulate path): weight rows gathered per output position.

A conv gathers, per output position, the weight rows its receptive field's spikes select (one row
``wt[ci, ky, kx, :]`` of ``C_out / groups`` weights per (spike, tap)), sums them and applies shift,
bias, residual add and saturation once (:func:`~snn.backends.chip.kernels._emit`) - no pass over
silent inputs, no accumulator map.

With one group (every conv of the model but the depthwise ones), rows are padded with zero weights
to a multiple of :data:`LANES` and summed by :func:`_rows_add`: an LLVM loop over the rows that keeps
up to 8 blocks of 32 int16 sums - 256 outputs - in vector registers while it reads the rows' int8
weights (sign-extended, one 512-bit add per block and row), and writes them back once.  The int16
sums are flushed into the exact int32 (or int64) row before ``flush`` rows could overflow them
(``flush * max|w| <= 32767``; never, where the compiler's static bound ``sum |w|`` over the fan-in
of every output channel fits int16), so they are exact: results equal
:mod:`~snn.backends.chip.reference` bit for bit.

Numba caches a kernel with the code of what it calls: the LLVM loops live here, beside their only
callers, so that editing them invalidates the cached kernels.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .fusedlif import emit_lif
from .kernels import _JIT, _emit, _emit_range
from .wide import wide_vectors

#: int16 lanes of one 512-bit vector (a dense spike conv's rows are padded to a multiple of LANES
#: / 2: a 16-lane last block where the outputs are an odd multiple of 16)
LANES = 32
#: blocks of LANES sums that one pass over the rows keeps in registers
BLOCKS = 8


def block_types(nb: int, half: bool, bits: int):
    """The register blocks of one pass: ``(first lane, int16 sums' vector type, weights' vector
    type)`` for ``nb`` blocks of LANES, then (``half``) one of LANES / 2 (rows padded to 16 lanes)."""
    lanes = [LANES] * nb + ([LANES // 2] if half else [])
    return [(k * LANES, ir.VectorType(ir.IntType(16), n), ir.VectorType(ir.IntType(bits), n))
            for k, n in enumerate(lanes)]


def _make_rows_add(nb: int):
    """An intrinsic ``rows_add(t16, w, off, r0, r1, j0, jw, half)``: for ``j`` in ``[0, nb * LANES)``
    (``- LANES / 2`` with ``half``: the last block one of 16 lanes), ``t16[j0 + j] += sum(w[off[r] +
    jw + j] for r in range(r0, r1))`` (int8 or int16 rows, int16 sums).  Both loops are generated,
    ``half`` picks one before the rows."""

    @intrinsic
    def rows_add(typingctx, t16, w, off, r0, r1, j0, jw, half):
        sig = types.void(t16, w, off, types.int64, types.int64, types.int64, types.int64, types.boolean)

        def codegen(context, builder, signature, args):
            t_arr, w_arr, o_arr, r0v, r1v, j0v, jwv, halfv = args
            tp = context.make_array(signature.args[0])(context, builder, t_arr).data
            wp = context.make_array(signature.args[1])(context, builder, w_arr).data
            op = context.make_array(signature.args[2])(context, builder, o_arr).data
            bits = signature.args[1].dtype.bitwidth  # int8 rows (int16 where a weight is -128)
            wide = signature.args[2].dtype.bitwidth < 64
            with builder.if_else(halfv) as (then, otherwise):
                with then:
                    _rows_loop(builder, block_types(nb - 1, True, bits), tp, wp, op, wide, r0v, r1v, j0v, jwv)
                with otherwise:
                    _rows_loop(builder, block_types(nb, False, bits), tp, wp, op, wide, r0v, r1v, j0v, jwv)
            return context.get_dummy_value()

        return sig, codegen

    return rows_add


def _rows_loop(builder, blk, tp, wp, op, wide, r0v, r1v, j0v, jwv):
    """The LLVM loop of ``rows_add`` for the register blocks ``blk`` (:func:`block_types`)."""
    i64 = ir.IntType(64)
    nv = len(blk)
    at = [builder.bitcast(builder.gep(tp, [builder.add(j0v, i64(j))], inbounds=True), v16.as_pointer())
          for j, v16, _ in blk]
    acc0 = [builder.load(a, align=2) for a in at]
    entry = builder.block
    loop = builder.append_basic_block("rows.loop")
    done = builder.append_basic_block("rows.done")
    builder.cbranch(builder.icmp_signed("<", r0v, r1v), loop, done)
    builder.position_at_end(loop)
    r = builder.phi(i64)
    acc = [builder.phi(v16) for _, v16, _ in blk]
    o = builder.load(builder.gep(op, [r], inbounds=True))
    if wide:
        o = builder.sext(o, i64)
    base = builder.add(o, jwv)
    new = []
    for k, (j, v16, vw) in enumerate(blk):
        wv = builder.load(builder.bitcast(builder.gep(wp, [builder.add(base, i64(j))], inbounds=True),
                                          vw.as_pointer()), align=1)
        new.append(builder.add(acc[k], builder.sext(wv, v16) if vw.element.width < 16 else wv))
    rn = builder.add(r, i64(1))
    builder.cbranch(builder.icmp_signed("<", rn, r1v), loop, done)
    r.add_incoming(r0v, entry)
    r.add_incoming(rn, loop)
    for k in range(nv):
        acc[k].add_incoming(acc0[k], entry)
        acc[k].add_incoming(new[k], loop)
    builder.position_at_end(done)
    fin = [builder.phi(v16) for _, v16, _ in blk]  # phis first: LLVM wants them at the top
    for k in range(nv):
        fin[k].add_incoming(acc0[k], entry)
        fin[k].add_incoming(new[k], loop)
    for k in range(nv):
        builder.store(fin[k], at[k], align=2)


_rows1, _rows2, _rows3, _rows4, _rows5, _rows6, _rows7, _rows8 = (_make_rows_add(k) for k in range(1, BLOCKS + 1))


@numba.njit(inline="always", **_JIT)  # inlined: a call would cost more than a tap's rows (array refcounts)
def _rows_add(t16, w, off, r0, r1, cog, tap):  # pragma: no cover - jitted
    """``t16[:cog] += sum of the rows w[o:o + cog]``, ``o = off[r] + tap`` for ``r`` in ``[r0, r1)``;
    ``cog`` a multiple of LANES / 2, up to BLOCKS blocks of sums in registers per pass over the rows
    (the last a 16-lane one where ``cog`` is an odd multiple of 16)."""
    j0 = 0
    while j0 + BLOCKS * LANES <= cog:
        _rows8(t16, w, off, r0, r1, j0, tap + j0, False)
        j0 += BLOCKS * LANES
    if j0 < cog:
        _rows_k(t16, w, off, r0, r1, j0, tap + j0, -(-(cog - j0) // LANES), (cog - j0) % LANES != 0)


@numba.njit(**_JIT)
def _row_offsets(chan, npos, b, Ci, step, offs):  # pragma: no cover - jitted
    """``offs[e] = chan[b, e] * step`` for the spikes of batch row ``b``: where each spike's rows start
    in the flat weights (``step = K * K * cog``; tap ``t`` adds ``t * cog``)."""
    cb = chan[b]
    nb = npos[b]
    for p in range(nb.shape[0]):
        for e in range(p * Ci, p * Ci + nb[p]):
            offs[e] = np.int64(cb[e]) * step


@numba.njit(inline="always", **_JIT)
def _rows_k(t16, w, rl, r0, r1, j0, jw, k, half):  # pragma: no cover - jitted
    """``t16[j0:j0 + k * LANES] += sum of the rows w[rl[r] + jw :][:k * LANES]``, ``r`` in ``[r0, r1)``:
    ``k`` (1..BLOCKS) blocks of sums held in registers over the whole row list, the last of them a
    16-lane one where ``half``."""
    if k == 8:
        _rows8(t16, w, rl, r0, r1, j0, jw, half)
    elif k == 7:
        _rows7(t16, w, rl, r0, r1, j0, jw, half)
    elif k == 6:
        _rows6(t16, w, rl, r0, r1, j0, jw, half)
    elif k == 5:
        _rows5(t16, w, rl, r0, r1, j0, jw, half)
    elif k == 4:
        _rows4(t16, w, rl, r0, r1, j0, jw, half)
    elif k == 3:
        _rows3(t16, w, rl, r0, r1, j0, jw, half)
    elif k == 2:
        _rows2(t16, w, rl, r0, r1, j0, jw, half)
    else:
        _rows1(t16, w, rl, r0, r1, j0, jw, half)


@numba.njit(**_JIT)
def _conv_spikes_dense_at(npos, b, q0, qstep, H, W, Ci, wt, stride, pad, flush, shift, rnd, bias, dst, add,
                          lo, hi, t16, tacc, offs, rl, lif, flag, lcnt):  # pragma: no cover - jitted
    """One group: output rows ``q0, q0 + qstep, ...`` of batch row ``b``.  The outputs are taken in
    blocks of up to ``BLOCKS * LANES`` (outermost, so that a block's weight columns stay in L2 while
    every position reads them); per output position, the row offsets of all its (spike, tap) pairs
    are listed in ``rl`` and summed in one pass with the block's sums in registers (flushed into
    the exact ``tacc`` every ``flush`` rows).  ``lif``: ``None``, or the LIF fused into the finish
    (:mod:`~snn.backends.chip.fusedlif`).  Returns ``(accumulates, saturations)``."""
    wide_vectors()
    _, Ho, Wo, Co = dst.shape
    K = wt.shape[1]
    cog = wt.shape[3]
    wf = wt.reshape(-1)
    nb = npos[b]
    nblk = -(-cog // LANES)  # the last one a 16-lane block where cog is an odd multiple of 16
    half = cog % LANES != 0
    n = 0
    n_sat = 0
    for jb in range(0, nblk, BLOCKS):
        k = min(BLOCKS, nblk - jb)
        j0 = jb * LANES
        j1 = min(j0 + k * LANES, cog)
        o1 = min(j1, Co)
        for oy in range(q0, Ho, qstep):
            for ox in range(Wo):
                nr = 0
                for ky in range(K):
                    iy = oy * stride - pad + ky
                    if iy < 0 or iy >= H:
                        continue
                    for kx in range(K):
                        ix = ox * stride - pad + kx
                        if ix < 0 or ix >= W:
                            continue
                        p = iy * W + ix
                        m = nb[p]
                        src = offs[p * Ci:p * Ci + m]  # slices, indices from 0: no wraparound checks
                        out = rl[nr:nr + m]
                        toff = (ky * K + kx) * cog
                        for e in range(m):
                            out[e] = src[e] + toff
                        nr += m
                if jb == 0:
                    n += nr * Co
                ts = t16[j0:j1]
                ta = tacc[j0:j1]
                ts[:] = 0
                ta[:] = 0
                r0 = 0
                while r0 < nr:
                    r1 = min(nr, r0 + flush)
                    _rows_k(t16, wf, rl, r0, r1, j0, j0, k, half and jb + k == nblk)
                    if r1 < nr:
                        for j in range(ts.shape[0]):
                            ta[j] += ts[j]
                            ts[j] = 0
                    r0 = r1
                if lif is None:
                    n_sat += _emit_range(tacc, t16, dst, b, oy, ox, j0, o1, shift, rnd, bias, add, lo, hi)
                else:
                    n_sat += emit_lif(tacc, t16, b, oy, ox, j0, o1, shift, rnd, bias, lo, hi, lif, flag, lcnt)
    return n, n_sat


@numba.njit(**_JIT)
def _conv_spikes_at(chan, npos, b, q0, qstep, H, W, Ci, wt, og, stride, pad, flush, shift, rnd, bias, dst, add,
                    lo, hi, t16, tacc, offs, lif, flag, lcnt):  # pragma: no cover - jitted
    """Output rows ``q0, q0 + qstep, ...`` of batch row ``b`` from spikes; returns
    ``(accumulates, saturations)``.  ``wt [Ci, K, K, cog]``; ``og[ci]``: first output of ``ci``'s group;
    ``offs``: the spikes' row offsets (:func:`_row_offsets`; one group only); ``lif``: ``None``, or
    the LIF fused into the finish (:mod:`~snn.backends.chip.fusedlif`)."""
    wide_vectors()
    _, Ho, Wo, Co = dst.shape
    K = wt.shape[1]
    KK = K * K
    cog = wt.shape[3]
    wt2 = wt.reshape(Ci * KK, cog)
    wf = wt.reshape(-1)
    cb = chan[b]
    nb = npos[b]
    dense = cog >= Co  # one group: every row spans all outputs (padded with zero weights to LANES)
    n = 0
    n_sat = 0
    for oy in range(q0, Ho, qstep):  # output rows q0, q0 + qstep, ...
        for ox in range(Wo):
            tacc[:] = 0
            t16[:] = 0
            rows = 0
            for ky in range(K):
                iy = oy * stride - pad + ky
                if iy < 0 or iy >= H:
                    continue
                for kx in range(K):
                    ix = ox * stride - pad + kx
                    if ix < 0 or ix >= W:
                        continue
                    p = iy * W + ix
                    tap = ky * K + kx
                    base = p * Ci
                    if dense:  # this tap's rows of the spikes at p, summed in registers
                        e0 = base
                        e1 = base + nb[p]
                        n += (e1 - e0) * Co
                        while e0 < e1:
                            e = min(e1, e0 + (flush - rows))
                            _rows_add(t16, wf, offs, e0, e, cog, tap * cog)
                            rows += e - e0
                            if rows == flush:
                                for j in range(cog):
                                    tacc[j] += t16[j]
                                    t16[j] = 0
                                rows = 0
                            e0 = e
                    elif cog == 1:  # depthwise: one weight per (spike, tap), straight into the exact row
                        for e in range(base, base + nb[p]):
                            ci = np.int64(cb[e])
                            tacc[og[ci]] += wt2[ci * KK + tap, 0]
                        n += nb[p]
                    else:  # grouped: each row adds into its group's slice
                        for e in range(base, base + nb[p]):
                            ci = np.int64(cb[e])
                            o0 = og[ci]
                            t = t16[o0:o0 + cog]
                            w = wt2[ci * KK + tap]
                            for j in range(cog):
                                t[j] += w[j]
                            rows += 1
                            n += cog
                            if rows == flush:
                                for j in range(Co):
                                    tacc[j] += t16[j]
                                    t16[j] = 0
                                rows = 0
            if lif is None:
                n_sat += _emit(tacc, t16, dst, b, oy, ox, shift, rnd, bias, add, lo, hi)
            else:
                n_sat += emit_lif(tacc, t16, b, oy, ox, 0, Co, shift, rnd, bias, lo, hi, lif, flag, lcnt)
    return n, n_sat


@numba.njit(**_JIT)
def conv_spikes(chan, npos, H, W, Ci, wt, og, stride, pad, flush, shift, rnd, bias, dst, add, lo, hi,
                acc_proto, offs, blocked, lif, lcnt):  # pragma: no cover - jitted
    """A conv on spikes into ``dst [B, Ho, Wo, Co]`` (set or residual add), on the calling thread;
    ``acc_proto``: a 1-element array of the exact accumulator's dtype; ``offs``: scratch of
    ``H * W * Ci`` row offsets; ``blocked``: one group, output blocks outermost
    (:func:`_conv_spikes_dense_at`; for weights larger than L2); ``lif``: ``None``, or the LIF fused
    into the finish (``dst`` is then not written; its saturations and spikes are added into
    ``lcnt``).  Returns ``(accumulates, saturations)``."""
    wide_vectors()
    B, Ho, Wo, Co = dst.shape
    t16 = np.zeros(max(Co, wt.shape[3]), np.int16)
    tacc = np.zeros(max(Co, wt.shape[3]), acc_proto.dtype)
    step = wt.shape[1] * wt.shape[2] * wt.shape[3]
    dense = blocked and wt.shape[3] >= Co
    rl = np.empty(wt.shape[1] * wt.shape[2] * Ci if dense else 0, offs.dtype)
    flag = np.zeros(Co + LANES, np.uint8)
    n = 0
    n_sat = 0
    for b in range(B):
        _row_offsets(chan, npos, b, Ci, step, offs)
        if dense:
            a, s = _conv_spikes_dense_at(npos, b, np.int64(0), np.int64(1), H, W, Ci, wt, stride, pad, flush, shift,
                                         rnd, bias, dst, add, lo, hi, t16, tacc, offs, rl, lif, flag, lcnt)
        else:
            a, s = _conv_spikes_at(chan, npos, b, np.int64(0), np.int64(1), H, W, Ci, wt, og, stride, pad, flush,
                                   shift, rnd, bias, dst, add, lo, hi, t16, tacc, offs, lif, flag, lcnt)
        n += a
        n_sat += s
    return n, n_sat


@numba.njit(parallel=True, **_JIT)
def conv_spikes_par(chan, npos, H, W, Ci, wt, og, stride, pad, flush, shift, rnd, bias, dst, add, lo, hi,
                    acc_proto, offs, blocked, lif, lcnt, parts):  # pragma: no cover - jitted
    """:func:`conv_spikes` with the output rows interleaved over ``parts`` threads."""
    wide_vectors()
    B, Ho, Wo, Co = dst.shape
    step = wt.shape[1] * wt.shape[2] * wt.shape[3]
    dense = blocked and wt.shape[3] >= Co
    nrl = wt.shape[1] * wt.shape[2] * Ci if dense else 0
    ns = np.zeros(parts, np.int64)
    sats = np.zeros(parts, np.int64)
    lcs = np.zeros((parts, 2), np.int64)
    for b in range(B):
        _row_offsets(chan, npos, b, Ci, step, offs)
        for part_u in numba.prange(parts):
            part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
            wide_vectors()
            t16 = np.zeros(max(Co, wt.shape[3]), np.int16)
            tacc = np.zeros(max(Co, wt.shape[3]), acc_proto.dtype)
            flag = np.zeros(Co + LANES, np.uint8)
            if dense:
                rl = np.empty(nrl, offs.dtype)
                a, s = _conv_spikes_dense_at(npos, b, part, parts, H, W, Ci, wt, stride, pad, flush, shift, rnd,
                                             bias, dst, add, lo, hi, t16, tacc, offs, rl, lif, flag, lcs[part])
            else:
                a, s = _conv_spikes_at(chan, npos, b, part, parts, H, W, Ci, wt, og, stride, pad, flush, shift,
                                       rnd, bias, dst, add, lo, hi, t16, tacc, offs, lif, flag, lcs[part])
            ns[part] += a
            sats[part] += s
    lcnt[0] += lcs[:, 0].sum()
    lcnt[1] += lcs[:, 1].sum()
    return ns.sum(), sats.sum()
