"""Numba kernels of the event-driven executor.

Layouts: maps ``[B, H, W, C]`` (int32); spikes of a ``C``-channel LIF buffer as per-position address
lists, like AER packets grouped by pixel: ``npos[b, p]`` spikes at position ``p = y * W + x``, their
channels (increasing) in ``chan[b, p * C : p * C + npos[b, p]]``.

A conv gathers, per output position, the weight rows its receptive field's inputs select and sums
them in a small accumulator row that stays in L1, then applies shift, bias, residual add and
saturation once (:func:`_emit`) - no pass over silent inputs, no accumulator map.  Convs on spikes
live in :mod:`~snn.backends.chip.spikeconv` (int8 rows summed in int16 vector registers); here,
convs on graded inputs: one row ``wt[ci, ky, kx, :]`` per non-zero value, times the value, in int32
(or int64) lanes.  The results equal :mod:`~snn.backends.chip.reference` bit for bit.

A depthwise conv on spikes (stride 1, K <= 8) scatters instead: each spike adds its K reversed
kernel rows into K contiguous columns of a channel-major scratch (one 8-lane add per kernel row).

The convs and neuron updates exist as a serial function and a ``*_par`` version that splits the
work over ``parts`` numba threads (output rows interleaved for convs, channel blocks for the
depthwise conv, position blocks for neurons); no two threads write the same output, and integer
sums are the same in any order, so the results are those of one thread.
"""

from __future__ import annotations

import numba
import numpy as np

from .compress import LANES, compress32
from .exponent import weigh
from .vecmac import add8, mac_store
from .wide import wide_vectors

#: ``flush`` value meaning "the int16 row cannot overflow: never flush" (spike convs)
FLUSH_NEVER = 1 << 62

_JIT = dict(cache=True, nogil=True, boundscheck=False)


@numba.njit(cache=True, nogil=True, inline="always")
def _shr(x, k, half_up):
    if k <= 0:
        return x
    if half_up:
        return (x + (np.int64(1) << (k - 1))) >> k
    return x >> k


@numba.njit(cache=True, nogil=True, inline="always")
def _sat(x, lo, hi):
    if x < lo:
        return lo, 1
    if x > hi:
        return hi, 1
    return x, 0


@numba.njit(**_JIT)
def input_codes(frame, lut, clip, out):  # pragma: no cover - jitted
    """``frame [B, C, H, W]`` counts -> ``out [B, H, W, C]`` codes; returns the clamped count."""
    wide_vectors()
    B, C, H, W = frame.shape
    n_sat = 0
    for b in range(B):
        for c in range(C):
            for y in range(H):
                for x in range(W):
                    v = np.int64(frame[b, c, y, x])
                    if v < 0:
                        v = 0
                        n_sat += 1
                    elif v > clip:
                        v = clip
                        n_sat += 1
                    out[b, y, x, c] = lut[v]
    return n_sat


# ---------------------------------------------------------------------------------------- neurons
@numba.njit(**_JIT)
def _lif_span(x, v, theta, in_shift, lo, hi, half_up, v_new, chan, npos, b, p0, p1):  # pragma: no cover
    """LIF update of positions ``[p0, p1)`` of batch row ``b``; returns ``(saturations, spikes)``."""
    wide_vectors()
    _, H, W, C = x.shape
    xb = x[b].reshape(H * W, C)
    vb = v[b].reshape(H * W, C)
    ob = v_new[b].reshape(H * W, C)
    cb = chan[b]
    flag = np.zeros(C + LANES, np.uint8)  # padded: the compress reads 32 flags at a time
    n_sat = 0
    n_spk = 0
    for p in range(p0, p1):
        for c in range(np.uint64(C)):  # vectorised: membranes and spike flags (unsigned: no views, no wraparound)
            h = _shr(np.int64(vb[p, c]) + (np.int64(xb[p, c]) << in_shift), 1, half_up)
            n_sat += (h < lo) + (h > hi)
            h = min(max(h, lo), hi)
            s = h >= theta[c]
            ob[p, c] = 0 if s else h
            flag[c] = s
        base = p * C
        k = 0
        for c0 in range(0, C, LANES):  # the spiking channels' numbers, 32 channels per compress-store
            k += compress32(cb, base + k, flag, c0, min(LANES, C - c0))
        npos[b, p] = k
        n_spk += k
    return n_sat, n_spk


@numba.njit(**_JIT)
def lif(x, v, theta, in_shift, lo, hi, half_up, v_new, chan, npos):  # pragma: no cover - jitted
    """Membranes ``v`` -> ``v_new`` for currents ``x`` (all ``[B, H, W, C]``); spikes go to the
    per-position address lists.  Returns ``(saturations, spikes)``."""
    wide_vectors()
    B, H, W, _ = x.shape
    n_sat = 0
    n_spk = 0
    for b in range(B):
        s, k = _lif_span(x, v, theta, in_shift, lo, hi, half_up, v_new, chan, npos, b, np.int64(0), np.int64(H * W))
        n_sat += s
        n_spk += k
    return n_sat, n_spk


@numba.njit(parallel=True, **_JIT)
def lif_par(x, v, theta, in_shift, lo, hi, half_up, v_new, chan, npos, parts):  # pragma: no cover
    """:func:`lif` with the positions of each batch row split into ``parts`` blocks, one per thread."""
    wide_vectors()
    B, H, W, _ = x.shape
    P = H * W
    sat = np.zeros(parts, np.int64)
    spk = np.zeros(parts, np.int64)
    for part_u in numba.prange(parts):
        part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
        wide_vectors()
        p0 = part * P // parts
        p1 = (part + 1) * P // parts
        for b in range(B):
            s, k = _lif_span(x, v, theta, in_shift, lo, hi, half_up, v_new, chan, npos, b, p0, p1)
            sat[part] += s
            spk[part] += k
    return sat.sum(), spk.sum()


# ---------------------------------------------------------------------------------------- convs
@numba.njit(inline="always", **_JIT)
def _emit_range(tacc, tlo, dst, b, oy, ox, o0, o1, shift, rnd, bias, add, lo, hi):  # pragma: no cover
    """``dst[b, oy, ox, o] = sat((add ? dst : 0) + bias + (tacc + tlo + rnd) >> shift)`` for outputs
    ``o`` in ``[o0, o1)``, branch-free (``shift [2, Co]``: the signed weight exponents as right and
    left shifts, :func:`~snn.backends.chip.exponent.split`; ``rnd``: 0, or half a step for rounding
    half up); returns saturations.  Inlined, unsigned output indices, no array views (a view per
    array and output position cost more than the outputs of a short row)."""
    wide_vectors()
    n_sat = 0
    uo = np.uint64(o0)
    for k in range(np.uint64(o1 - o0)):
        o = uo + k
        v = weigh(np.int64(tacc[o]) + np.int64(tlo[o]) + rnd[o], shift[0, o], shift[1, o], tacc[o]) + bias[o]
        if add:
            v += dst[b, oy, ox, o]
        n_sat += (v < lo) + (v > hi)
        dst[b, oy, ox, o] = min(max(v, lo), hi)
    return n_sat


@numba.njit(inline="always", **_JIT)
def _emit(tacc, tlo, dst, b, oy, ox, shift, rnd, bias, add, lo, hi):  # pragma: no cover
    """:func:`_emit_range` for every output of ``dst``."""
    return _emit_range(tacc, tlo, dst, b, oy, ox, 0, dst.shape[3], shift, rnd, bias, add, lo, hi)


@numba.njit(**_JIT)
def _conv_graded_at(src, b, q0, qstep, wt, og, stride, pad, shift, rnd, bias, dst, add, lo, hi,
                    tacc, tzero, idx, val):  # pragma: no cover - jitted
    """Output rows ``q0, q0 + qstep, ...`` of batch row ``b`` from a graded map ``src``: every
    non-zero value multiplies its rows.  Returns ``(multiply-accumulates, saturations)``."""
    wide_vectors()
    _, H, W, Ci = src.shape
    _, Ho, Wo, Co = dst.shape
    K = wt.shape[1]
    KK = K * K
    cog = wt.shape[3]
    wt2 = wt.reshape(Ci * KK, cog)
    wf = wt.reshape(-1)
    dense = cog >= Co  # one group: rows padded with zero weights to a multiple of 16 lanes
    n = 0
    n_sat = 0
    for oy in range(q0, Ho, qstep):  # output rows q0, q0 + qstep, ...
        for ox in range(Wo):
            tacc[:] = 0
            nr = 0
            for ky in range(K):
                iy = oy * stride - pad + ky
                if iy < 0 or iy >= H:
                    continue
                for kx in range(K):
                    ix = ox * stride - pad + kx
                    if ix < 0 or ix >= W:
                        continue
                    tap = ky * K + kx
                    s = src[b, iy, ix]
                    for ci in range(Ci):
                        v = s[ci]
                        if v == 0:
                            continue
                        if dense:
                            idx[nr] = (ci * KK + tap) * cog
                            val[nr] = v
                            nr += 1
                        else:
                            o0 = og[ci]
                            t = tacc[o0:o0 + cog]
                            w = wt2[ci * KK + tap]
                            for j in range(cog):
                                t[j] += v * w[j]
                            n += cog
            if dense:  # the listed rows, summed in registers (explicit 512-bit blocks)
                n += nr * Co
                mac_store(tacc, wf, idx, val, nr, cog)
            n_sat += _emit(tacc, tzero, dst, b, oy, ox, shift, rnd, bias, add, lo, hi)
    return n, n_sat


@numba.njit(**_JIT)
def conv_graded(src, wt, og, stride, pad, shift, rnd, bias, dst, add, lo, hi, acc_proto):  # pragma: no cover
    """A conv on a graded map ``src [B, H, W, Ci]`` (zeros skipped) into ``dst``; returns ``(MACs, saturations)``."""
    wide_vectors()
    B, Ho, Wo, Co = dst.shape
    Ci = src.shape[3]
    tacc = np.zeros(max(Co, wt.shape[3]), acc_proto.dtype)
    tzero = np.zeros(max(Co, wt.shape[3]), np.int16)
    nmax = Ci * wt.shape[1] * wt.shape[2]
    idx = np.empty(nmax, np.int64)
    val = np.empty(nmax, acc_proto.dtype)
    n = 0
    n_sat = 0
    for b in range(B):
        a, s = _conv_graded_at(src, b, np.int64(0), np.int64(1), wt, og, stride, pad, shift, rnd, bias, dst, add, lo,
                               hi, tacc, tzero, idx, val)
        n += a
        n_sat += s
    return n, n_sat


@numba.njit(parallel=True, **_JIT)
def conv_graded_par(src, wt, og, stride, pad, shift, rnd, bias, dst, add, lo, hi, acc_proto,
                    parts):  # pragma: no cover - jitted
    """:func:`conv_graded` with the output rows interleaved over ``parts`` threads."""
    wide_vectors()
    B, Ho, Wo, Co = dst.shape
    Ci = src.shape[3]
    nmax = Ci * wt.shape[1] * wt.shape[2]
    ns = np.zeros(parts, np.int64)
    sats = np.zeros(parts, np.int64)
    for part_u in numba.prange(parts):
        part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
        wide_vectors()
        tacc = np.zeros(max(Co, wt.shape[3]), acc_proto.dtype)
        tzero = np.zeros(max(Co, wt.shape[3]), np.int16)
        idx = np.empty(nmax, np.int64)
        val = np.empty(nmax, acc_proto.dtype)
        for b in range(B):
            a, s = _conv_graded_at(src, b, part, parts, wt, og, stride, pad, shift, rnd, bias, dst, add, lo, hi,
                                   tacc, tzero, idx, val)
            ns[part] += a
            sats[part] += s
    return ns.sum(), sats.sum()


# ---------------------------------------------------------------------------------------- depthwise
@numba.njit(**_JIT)
def _dw_span(chan, npos, b, H, W, C, wr, pad, fx, c0, c1, shift, rnd, bias, dst, add, lo, hi, cm):  # pragma: no cover
    """Depthwise conv (stride 1, K <= 8) on spikes, channels ``[c0, c1)`` of batch row ``b``: each
    spike adds its K reversed taps ``wr[c, ky, :8]`` into K contiguous columns of a channel-major
    scratch ``cm [C, Ho, W + 2 pad + 8]`` (one 8-lane add per kernel row), then the outputs are
    finished from it, a channel's row at a time.  Returns ``(accumulates, saturations)``."""
    wide_vectors()
    _, Ho, Wo, _ = dst.shape
    K = wr.shape[1]
    cb = chan[b]
    nb = npos[b]
    for c in range(c0, c1):
        cm[c] = 0
    cmf = cm.reshape(-1)  # flat offsets, one 8-lane add per kernel row (add8: no array views)
    wrf = wr.reshape(-1)
    Wc = cm.shape[2]
    n = 0
    for p in range(H * W):
        y = p // W
        x = p - y * W
        for e in range(p * C, p * C + nb[p]):
            c = np.int64(cb[e])
            if c < c0 or c >= c1:
                continue
            ky0 = max(0, y + pad - Ho + 1)
            ky1 = min(K, y + pad + 1)
            for ky in range(ky0, ky1):
                oy = y + pad - ky
                add8(cmf, (c * Ho + oy) * Wc + x + pad, wrf, (c * K + ky) * 8)  # column ox + K - 1: output ox
            n += fx[x] * (ky1 - ky0)
    n_sat = 0
    for oy in range(Ho):  # finished a channel's row at a time: contiguous reads of the scratch
        for c in range(c0, c1):
            row = cm[c, oy]
            sr = shift[0, c]
            sl = shift[1, c]
            rd = rnd[c]
            bs = bias[c]
            for ox in range(Wo):
                v = weigh(np.int64(row[ox + K - 1]) + rd, sr, sl, row[0]) + bs
                if add:
                    v += dst[b, oy, ox, c]
                n_sat += (v < lo) + (v > hi)
                dst[b, oy, ox, c] = min(max(v, lo), hi)
    return n, n_sat


@numba.njit(**_JIT)
def conv_dw(chan, npos, H, W, C, wr, pad, fx, shift, rnd, bias, dst, add, lo, hi, cm):  # pragma: no cover
    """Depthwise spike conv into ``dst`` on the calling thread; returns ``(accumulates, saturations)``."""
    wide_vectors()
    n = 0
    n_sat = 0
    for b in range(dst.shape[0]):
        a, s = _dw_span(chan, npos, b, H, W, C, wr, pad, fx, np.int64(0), np.int64(C), shift, rnd, bias, dst, add,
                        lo, hi, cm)
        n += a
        n_sat += s
    return n, n_sat


@numba.njit(parallel=True, **_JIT)
def conv_dw_par(chan, npos, H, W, C, wr, pad, fx, shift, rnd, bias, dst, add, lo, hi, cm, parts):  # pragma: no cover
    """:func:`conv_dw` with the channels split into ``parts`` blocks, one per thread."""
    wide_vectors()
    ns = np.zeros(parts, np.int64)
    sats = np.zeros(parts, np.int64)
    for part_u in numba.prange(parts):
        part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
        wide_vectors()
        c0 = part * C // parts
        c1 = (part + 1) * C // parts
        for b in range(dst.shape[0]):
            a, s = _dw_span(chan, npos, b, H, W, C, wr, pad, fx, c0, c1, shift, rnd, bias, dst, add, lo, hi, cm)
            ns[part] += a
            sats[part] += s
    return ns.sum(), sats.sum()


# ---------------------------------------------------------------------------------------- attention, pool
@numba.njit(**_JIT)
def attention(chan, npos, N, C, heads, y, lo, hi):  # pragma: no cover - jitted
    """SDSA-3 from the Q/K/V spike lists (``3C`` channels per token, increasing: q, then k, then v):
    ``M = K^T V`` per head by +1 per (k, v) spike pair of a token, then ``y[token] += M[i]`` per q
    spike ``i``.  ``y [B, N, C]`` is overwritten.  Returns ``(increments, row adds, saturations)``."""
    wide_vectors()
    B = npos.shape[0]
    d = C // heads
    C3 = 3 * C
    m = np.zeros((heads, d, d), np.int32)
    ks = np.empty(C, np.int32)
    vs = np.empty(C, np.int32)
    hs = np.empty(heads + 1, np.int64)
    n_inc = 0
    n_row = 0
    n_sat = 0
    for b in range(B):
        m[:] = 0
        cb = chan[b]
        for t in range(N):
            nk = 0
            nv = 0
            for e in range(t * C3, t * C3 + npos[b, t]):
                c = np.int64(cb[e])
                if c >= 2 * C:
                    vs[nv] = c - 2 * C
                    nv += 1
                elif c >= C:
                    ks[nk] = c - C
                    nk += 1
            q = 0  # the v spikes are increasing: head h's are vs[hs[h]:hs[h + 1]]
            for h in range(heads):
                hs[h] = q
                while q < nv and vs[q] < (h + 1) * d:
                    q += 1
            hs[heads] = nv
            for a in range(nk):  # only the (k, v) pairs of one head: no test (nor division) per pair
                i = ks[a]
                h = i // d
                mh = m[h, i - h * d]
                for q in range(hs[h], hs[h + 1]):
                    mh[vs[q] - h * d] += 1
                n_inc += hs[h + 1] - hs[h]
        yb = y[b]
        yb[:] = 0
        for t in range(N):
            for e in range(t * C3, t * C3 + npos[b, t]):
                c = np.int64(cb[e])
                if c >= C:
                    break  # increasing: the q spikes come first
                h = c // d
                row = m[h, c - h * d]
                out = yb[t, h * d:(h + 1) * d]
                for j in range(d):
                    out[j] += row[j]
                n_row += 1
        for t in range(N):
            for c in range(C):
                v, s = _sat(np.int64(yb[t, c]), lo, hi)
                yb[t, c] = v
                n_sat += s
    return n_inc, n_row, n_sat


@numba.njit(**_JIT)
def absmax(x):  # pragma: no cover - jitted
    """``max |x|`` over a map (the graded input's dynamic bound: it picks the accumulator width)."""
    wide_vectors()
    m = np.int64(0)
    for v in x.reshape(-1):
        m = max(m, abs(np.int64(v)))
    return m


@numba.njit(**_JIT)
def pool(x, shift, half_up, lo, hi, out):  # pragma: no cover - jitted
    """``out[b, c] = sat(sum over positions of x[b, :, :, c] >> shift)``; returns saturations."""
    wide_vectors()
    B, H, W, C = x.shape
    n_sat = 0
    for b in range(B):
        for c in range(C):
            s = np.int64(0)
            for y in range(H):
                for xx in range(W):
                    s += x[b, y, xx, c]
            v, k = _sat(_shr(s, shift, half_up), lo, hi)
            out[b, c] = v
            n_sat += k
    return n_sat
