"""Event-driven fast path of a folded Meta-SpikeFormer (CPU, float32, inference only).

Almost every convolution / linear layer of the model reads a binary spike map (firing rates
~0.1), so its output is ``bias + sum of the weight rows of the active inputs``.  This module runs
the folded model that way, with every activation kept token-major (``[T, B, H, W, C]``, channels
innermost) so that a weight row ``W[ky, kx, c_in, :]`` is one contiguous vector:

* a LIF pass reads the membrane input and the old membrane, writes the new membrane and a compact
  list of the active channels of every pixel (CSR; no spike map is stored unless recorded);
* a gather kernel sums, for every output pixel, the weight rows of the active inputs in its
  receptive field (3x3 / 7x7 / 1x1, any stride), 8 rows per pass over the output (a short last
  group padded with an all-zero row), blocked over input channels, and - where the next op is a
  LIF neuron - applies that neuron to the finished output row while it is in L1 (the
  pre-activation map is never written).  Stride-1 convs store the taps in reverse order and
  unpadded so that the taps of one input pixel form one contiguous piece of the weight row and of
  the output row; other strides pad each tap to 16 floats (64-byte lines);
* the non-spike parts (depthwise convs of the SepConv / RepConv chains, their dense pointwise
  GEMMs) run dense;
* the attention (q/k/v neurons, Q (K^T V) of binary matrices, the attention neuron) is one serial
  kernel over the small token maps of stages 3/4 (:func:`sdsa3_lif`).

Arithmetic: the LIF update is the one of :mod:`snn.neurons._fused` (bit-identical); sums are the
same terms as the dense convs in another order (float32 rounding differs at the 1e-7 level).  The
attention products are integer-valued and exact.  Membranes and recorded spikes are returned in
the model's usual logical shapes (``[B, C, H, W]``, ...) as views of channels-last memory.
``precision="bf16"`` (:func:`install`; ``fold(fast_weights="bf16")``) stores the gather weights as
bfloat16 - not exact, off by default.

Kernels are numba (``parallel=True``; work split over output rows; small calls run on the calling
thread), compiled with the numpy error model (no zero-divisor check per division, which would keep
the LIF update from vectorising).  numba's pool follows torch's intra-op thread count, and starting it leaves torch's
setting as it was.  Eligible: CPU float32 input without autograd, LIF neurons, ``sdsa3``
attention, ``repconv="chain"`` folding.  Everything else takes the module's ordinary folded path.
"""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np
import torch
from torch import Tensor

import numba
from llvmlite import ir as _ir
from numba import njit, prange
from numba.core import types as _types
from numba.cpython.unsafe.numbers import trailing_zeros as _trailing_zeros
from numba.extending import intrinsic, overload

from ..neurons import LIFNode, LIFState

# L2 budget (bytes) for the block of weight rows a gather kernel sweeps at a time
WEIGHT_BLOCK_BYTES = 4 << 20


def _ld(q, o):
    """q[o] as float32: float32 weights as they are, bf16 weights (stored as uint16) widened.

    This is the plain-Python meaning; inside jitted kernels the ``overload`` below compiles it."""
    if q.dtype == np.uint16:
        return np.array(np.uint32(q[o]) << np.uint32(16), np.uint32).view(np.float32)[()]
    return np.float32(q[o])


@intrinsic
def _bf16_to_f32(typingctx, u):  # pragma: no cover - jitted
    # bf16 bits (uint16) -> float32: the bits are the top half of a float32 (exact widening)
    def codegen(context, builder, signature, args):
        v = builder.shl(builder.zext(args[0], _ir.IntType(32)), _ir.Constant(_ir.IntType(32), 16))
        return builder.bitcast(v, _ir.FloatType())

    return _types.float32(_types.uint16), codegen


@overload(_ld, inline="always")
def _ld_impl(q, o):  # pragma: no cover - jitted
    if q.dtype == _types.uint16:
        return lambda q, o: _bf16_to_f32(q[o])
    return lambda q, o: q[o]


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _pool_warmup(a):  # pragma: no cover - jitted
    for i in prange(a.shape[0]):
        a[i] += 1.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _lif_row(acc, vin, vout, tau, vth, soft, decay_input, sp):  # pragma: no cover - jitted
    # one pixel: membrane input acc[C], old membrane vin[C] -> new membrane vout[C], spikes sp[C] (0/1)
    for c in range(acc.shape[0]):
        vv = vin[c]
        xv = acc[c]
        if decay_input:
            h = vv + (xv - vv) / tau
        else:
            h = vv - vv / tau + xv
        s = h >= vth
        sp[c] = s
        if s:
            vout[c] = h - vth if soft else 0.0
        else:
            vout[c] = h


@intrinsic
def _load_u64(typingctx, a, i):  # pragma: no cover - jitted
    # the 8 bytes a[i:i + 8] of a uint8 array as one little-endian uint64 (unaligned load)
    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        p = builder.gep(arr.data, [args[1]])
        p = builder.bitcast(p, _ir.IntType(64).as_pointer())
        return builder.load(p, align=1)

    return _types.uint64(a, _types.intp), codegen


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _compact(sp, cs, idx, off):  # pragma: no cover - jitted
    # active channels of one pixel (sp: 0/1 bytes), in ascending order, with block boundaries
    # every cs channels.  Eight channels at a time: their spike bytes as one 64-bit word, one
    # iteration per set byte (lowest first, found with a trailing-zero count) - with firing
    # rates ~0.1 most bytes are zero, and a byte-by-byte loop costs ~1 ns per channel.
    C = sp.shape[0]
    nb = off.shape[0] - 1
    m = 0
    for k in range(nb):
        off[k] = m
        c = k * cs
        hi = min(C, c + cs)
        while c + 8 <= hi:
            w = _load_u64(sp, c)
            while w != 0:
                idx[m] = c + (_trailing_zeros(w) >> 3)
                m += 1
                w &= w - np.uint64(1)
            c += 8
        while c < hi:
            idx[m] = c
            m += sp[c]
            c += 1
    off[nb] = m


@njit(cache=True, nogil=True, error_model="numpy")
def _lif_csr_part(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec, lo, hi):  # pragma: no cover
    T, B, P, C = x.shape
    sp = np.empty(C, np.uint8)
    for r in range(lo, hi):
        b = r // P
        p = r % P
        vo = vout[b, p]
        vi = v[b, p]
        for c in range(C):
            vo[c] = vi[c]
        for t in range(T):
            _lif_row(x[t, b, p], vo, vo, tau, vth, soft, decay_input, sp)
            _compact(sp, cs, idx[t, b, p], off[t, b, p])
            if rec:
                for c in range(C):
                    spk[t, b, p, c] = sp[c]


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def lif_csr(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec, nth):  # pragma: no cover
    """LIF over x [T, B, P, C] from v [B, P, C]; new membrane -> vout; active lists -> idx/off
    [T, B, P, C] / [T, B, P, nb+1]; spikes (0/1 float) -> spk [T, B, P, C] when rec.
    ``nth`` <= 1 runs on the calling thread (no parallel region: small maps)."""
    T, B, P, C = x.shape
    R = B * P
    nblk = min(R, 4 * nth)
    if nth <= 1:
        _lif_csr_part(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec, 0, R)
    else:
        for blk in prange(nblk):
            _lif_csr_part(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec,
                          blk * R // nblk, (blk + 1) * R // nblk)


@njit(cache=True, nogil=True, error_model="numpy")
def _tap_table(W, K, stride, pad, Wo):  # pragma: no cover - jitted
    # oxt[ix, kx] = the output column that input column ix reaches through tap kx, or -1
    oxt = np.empty((W, K), np.int64)
    for ix in range(W):
        for kx in range(K):
            tx = ix + pad - kx
            ox = tx // stride
            oxt[ix, kx] = ox if (tx >= 0 and tx % stride == 0 and ox < Wo) else -1
    return oxt


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scatter_pixel(acc, w3, ii, j0, j1, rbase, oxs, K):  # pragma: no cover - jitted
    # input pixel (iy, ix) with active channels ii[j0:j1] -> output row acc [Wo, Co]:
    # acc[ox] += w3[rbase + c, kx, :Co] for every tap kx with ox = oxs[kx] >= 0.
    # Rows are summed 8 (or 4) at a time; a short last group is padded with the zero row (the
    # last row of w3; adding +0.0 leaves every sum unchanged), so each output value is read and
    # written once per group.  (Taps are indexed as w3[row][kx], not as offsets into a flat
    # row: the compiler must see non-negative indices to vectorize the inner loop.)
    Co = acc.shape[1]
    z = w3.shape[0] - 1
    j = j0
    while j < j1:
        n = j1 - j
        if n > 4:
            r0 = w3[rbase + ii[j]]
            r1 = w3[rbase + ii[j + 1]]
            r2 = w3[rbase + ii[j + 2]]
            r3 = w3[rbase + ii[j + 3]]
            r4 = w3[rbase + ii[j + 4]]
            r5 = w3[rbase + ii[j + 5] if n > 5 else z]
            r6 = w3[rbase + ii[j + 6] if n > 6 else z]
            r7 = w3[rbase + ii[j + 7] if n > 7 else z]
            for kx in range(K):
                ox = oxs[kx]
                if ox < 0:
                    continue
                a = acc[ox]
                q0 = r0[kx]
                q1 = r1[kx]
                q2 = r2[kx]
                q3 = r3[kx]
                q4 = r4[kx]
                q5 = r5[kx]
                q6 = r6[kx]
                q7 = r7[kx]
                for o in range(Co):
                    a[o] += ((_ld(q0, o) + _ld(q1, o)) + (_ld(q2, o) + _ld(q3, o))) + \
                        ((_ld(q4, o) + _ld(q5, o)) + (_ld(q6, o) + _ld(q7, o)))
            j += 8
        else:
            r0 = w3[rbase + ii[j]]
            r1 = w3[rbase + ii[j + 1] if n > 1 else z]
            r2 = w3[rbase + ii[j + 2] if n > 2 else z]
            r3 = w3[rbase + ii[j + 3] if n > 3 else z]
            for kx in range(K):
                ox = oxs[kx]
                if ox < 0:
                    continue
                a = acc[ox]
                q0 = r0[kx]
                q1 = r1[kx]
                q2 = r2[kx]
                q3 = r3[kx]
                for o in range(Co):
                    a[o] += (_ld(q0, o) + _ld(q1, o)) + (_ld(q2, o) + _ld(q3, o))
            j += 4


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scatter_flat(af, a0, wf, L, ii, j0, j1, rbase, m0, n):  # pragma: no cover - jitted
    # stride-1 convs (Cp == Co, the taps of each row stored in reverse order): the taps of input
    # pixel ix that land inside the output row are one contiguous piece wf[row*L + m0 : + n] of
    # the weight row (L floats), added to the contiguous piece af[a0 : a0 + n] of the flat
    # output - one long loop instead of one short loop per tap.  Same zero-row padding of short
    # groups.  Flat arrays and unsigned offsets: no array views per row and no negative-index
    # fix-ups in the inner loop (both cost more than the adds for short rows).
    z = np.uint64(wf.shape[0] // L - 1)
    Lu = np.uint64(L)
    mu = np.uint64(m0)
    au = np.uint64(a0)
    nu = np.uint64(n)
    rb = np.uint64(rbase)
    zo = z * Lu + mu
    j = j0
    while j < j1:
        c = j1 - j
        if c > 4:
            o0 = (rb + np.uint64(ii[j])) * Lu + mu
            o1 = (rb + np.uint64(ii[j + 1])) * Lu + mu
            o2 = (rb + np.uint64(ii[j + 2])) * Lu + mu
            o3 = (rb + np.uint64(ii[j + 3])) * Lu + mu
            o4 = (rb + np.uint64(ii[j + 4])) * Lu + mu
            o5 = (rb + np.uint64(ii[j + 5])) * Lu + mu if c > 5 else zo
            o6 = (rb + np.uint64(ii[j + 6])) * Lu + mu if c > 6 else zo
            o7 = (rb + np.uint64(ii[j + 7])) * Lu + mu if c > 7 else zo
            for m in range(nu):
                af[au + m] += ((_ld(wf, o0 + m) + _ld(wf, o1 + m)) + (_ld(wf, o2 + m) + _ld(wf, o3 + m))) + \
                    ((_ld(wf, o4 + m) + _ld(wf, o5 + m)) + (_ld(wf, o6 + m) + _ld(wf, o7 + m)))
            j += 8
        else:
            o0 = (rb + np.uint64(ii[j])) * Lu + mu
            o1 = (rb + np.uint64(ii[j + 1])) * Lu + mu if c > 1 else zo
            o2 = (rb + np.uint64(ii[j + 2])) * Lu + mu if c > 2 else zo
            o3 = (rb + np.uint64(ii[j + 3])) * Lu + mu if c > 3 else zo
            for m in range(nu):
                af[au + m] += (_ld(wf, o0 + m) + _ld(wf, o1 + m)) + (_ld(wf, o2 + m) + _ld(wf, o3 + m))
            j += 4


@njit(cache=True, nogil=True, error_model="numpy")
def _gather_part(idx, off, H, W, w3, K, stride, pad, bias, res, use_res, out, lif, v, vout, tau, vth,
                 soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, blk, nblk):  # pragma: no cover
    # output rows blk, blk + nblk, ... of gather_conv
    T, B, P_out, Co = out.shape
    Ci = (w3.shape[0] - 1) // K
    Wo = (W + 2 * pad - K) // stride + 1
    Ho = P_out // Wo
    nk = off.shape[3] - 1
    R = B * Ho
    oxt = _tap_table(W, K, stride, pad, Wo)
    flat = stride == 1 and w3.shape[2] == Co  # taps stored reversed (see Gather)
    L = w3.shape[1] * w3.shape[2]
    wf = w3.reshape(w3.shape[0] * L)
    outv = out.reshape(out.size)
    for k in range(nk):
        for r in range(blk, R, nblk):
            b = r // Ho
            oy = r % Ho
            for t in range(T):
                acc = out[t, b, oy * Wo:(oy + 1) * Wo]
                obase = (t * B + b) * P_out * Co
                if k == 0:
                    for ox in range(Wo):
                        a = acc[ox]
                        if use_res:
                            rr = res[t, b, oy * Wo + ox]
                            for o in range(Co):
                                a[o] = bias[o] + rr[o]
                        else:
                            for o in range(Co):
                                a[o] = bias[o]
                for ky in range(K):
                    iy = oy * stride - pad + ky
                    if iy < 0 or iy >= H:
                        continue
                    rbase = ky * Ci
                    for ix in range(W):
                        p = iy * W + ix
                        j0 = off[t, b, p, k]
                        j1 = off[t, b, p, k + 1]
                        if j0 < j1:
                            if flat:
                                k0 = max(0, K - 1 - pad - ix)
                                k1 = min(K, Wo + K - 1 - pad - ix)
                                f0 = (oy * Wo + ix + pad - (K - 1) + k0) * Co
                                n = (k1 - k0) * Co
                                _scatter_flat(outv, obase + f0, wf, L, idx[t, b, p], j0, j1, rbase, k0 * Co, n)
                            else:
                                _scatter_pixel(acc, w3, idx[t, b, p], j0, j1, rbase, oxt[ix], K)
    if lif:
        sp = np.empty(Co, np.uint8)
        for r in range(blk, R, nblk):
            b = r // Ho
            oy = r % Ho
            for ox in range(Wo):
                po = oy * Wo + ox
                vo = vout[b, po]
                vi = v[b, po]
                for o in range(Co):
                    vo[o] = vi[o]
                for t in range(T):
                    _lif_row(out[t, b, po], vo, vo, tau, vth, soft, decay_input, sp)
                    if want_csr:
                        _compact(sp, cs2, idx2[t, b, po], off2[t, b, po])
                    if want_dense:
                        d = spk2[t, b, po]
                        for o in range(Co):
                            d[o] = sp[o]


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def gather_conv(idx, off, H, W, w3, K, stride, pad, bias, res, use_res, out, lif, v, vout, tau, vth,
                soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, nth):  # pragma: no cover
    """out[t, b, oy, ox, :] = bias (+ res) + sum over the inputs (t, b, iy, ix, c) listed in
    idx/off (active channels per pixel, in channel blocks) of w3[ky*Ci + c, kx, :Co]
    (w3 [K*Ci + 1, K, Cp], Cp >= Co: each tap padded to whole cache lines; the last row is zero).

    out [T, B, Ho*Wo, Co], work split over output rows (interleaved: thread j takes rows j,
    j + nth, ... so that dense and sparse parts of the map are shared); for each output row the input rows
    are swept once per tap row ky, each active input adding its K contiguous taps.  With
    ``lif``: each finished output pixel goes through a LIF neuron (membrane v -> vout,
    [B, Ho*Wo, Co]); its spikes are written as active lists (idx2/off2, block size cs2) when
    want_csr and/or as a 0/1 float map into spk2 when want_dense.
    """
    T, B, P_out, Co = out.shape
    Wo = (W + 2 * pad - K) // stride + 1
    R = B * (P_out // Wo)
    nblk = min(R, nth)
    if nblk <= 1:
        _gather_part(idx, off, H, W, w3, K, stride, pad, bias, res, use_res, out, lif, v, vout, tau, vth,
                     soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, 0, 1)
    else:
        for blk in prange(nblk):
            _gather_part(idx, off, H, W, w3, K, stride, pad, bias, res, use_res, out, lif, v, vout, tau,
                         vth, soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, blk, nblk)


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def dense_input_conv(x, w3, bias, K, stride, pad, out):  # pragma: no cover - jitted
    """Conv of a sparse non-binary input (event frames), skipping zeros: x [N, H, W, Ci],
    w3 [K*Ci + 1, K, Cp] (as in :func:`gather_conv`), out [N, Ho, Wo, Co]; work split over rows."""
    N, H, W, Ci = x.shape
    _, Ho, Wo, Co = out.shape
    flat = stride == 1 and w3.shape[2] == Co  # taps stored reversed (see Gather)
    R = N * Ho
    oxt = _tap_table(W, K, stride, pad, Wo)
    for r in prange(R):
        n = r // Ho
        oy = r % Ho
        acc = out[n, oy]
        for ox in range(Wo):
            a = acc[ox]
            for o in range(Co):
                a[o] = bias[o]
        for ky in range(K):
            iy = oy * stride - pad + ky
            if iy < 0 or iy >= H:
                continue
            for ix in range(W):
                xr = x[n, iy, ix]
                for c in range(Ci):
                    val = xr[c]
                    if val == 0:
                        continue
                    wr = w3[ky * Ci + c]
                    for kx in range(K):
                        ox = oxt[ix, kx]
                        if ox < 0:
                            continue
                        a = acc[ox]
                        wk = wr[K - 1 - kx] if flat else wr[kx]
                        for o in range(Co):
                            a[o] += val * _ld(wk, o)


@njit(cache=True, nogil=True, error_model="numpy")
def _dw_rows(x, w, out, aug, lo, hi):  # pragma: no cover - jitted
    # output rows lo..hi-1 (row r = image r // H, line r % H).  Flat arrays with unsigned
    # offsets (no views per pixel, no negative-index fix-ups): the inner loops are pure
    # vector code.  The K taps of a kernel row are summed in one expression (K = 3, 7).
    N, H, W, C = x.shape
    K = w.shape[0]
    pad = K // 2
    Co = out.shape[3]
    xf = x.reshape(x.size)
    wf = w.reshape(w.size)
    of = out.reshape(out.size)
    Cu = np.uint64(C)
    for r in range(lo, hi):
        n = r // H
        y = r % H
        for xx in range(W):
            ob = np.uint64(((n * H + y) * W + xx) * Co)
            for c in range(Cu):
                of[ob + c] = 0.0
            interior = xx - pad >= 0 and xx - pad + K <= W
            for ky in range(K):
                iy = y - pad + ky
                if iy < 0 or iy >= H:
                    continue
                wb = np.uint64(ky * K * C)
                if interior and K == 7:
                    x0 = np.uint64(((n * H + iy) * W + xx - 3) * C)
                    x1 = x0 + Cu
                    x2 = x1 + Cu
                    x3 = x2 + Cu
                    x4 = x3 + Cu
                    x5 = x4 + Cu
                    x6 = x5 + Cu
                    w0 = wb
                    w1 = w0 + Cu
                    w2 = w1 + Cu
                    w3 = w2 + Cu
                    w4 = w3 + Cu
                    w5 = w4 + Cu
                    w6 = w5 + Cu
                    for c in range(Cu):
                        of[ob + c] += ((wf[w0 + c] * xf[x0 + c] + wf[w1 + c] * xf[x1 + c]) +
                                       (wf[w2 + c] * xf[x2 + c] + wf[w3 + c] * xf[x3 + c])) + \
                            ((wf[w4 + c] * xf[x4 + c] + wf[w5 + c] * xf[x5 + c]) + wf[w6 + c] * xf[x6 + c])
                elif interior and K == 3:
                    x0 = np.uint64(((n * H + iy) * W + xx - 1) * C)
                    x1 = x0 + Cu
                    x2 = x1 + Cu
                    w0 = wb
                    w1 = w0 + Cu
                    w2 = w1 + Cu
                    for c in range(Cu):
                        of[ob + c] += (wf[w0 + c] * xf[x0 + c] + wf[w1 + c] * xf[x1 + c]) + wf[w2 + c] * xf[x2 + c]
                else:
                    for kx in range(K):
                        ix = xx - pad + kx
                        if ix < 0 or ix >= W:
                            continue
                        xb = np.uint64(((n * H + iy) * W + ix) * C)
                        wk = wb + np.uint64(kx * C)
                        for c in range(Cu):
                            of[ob + c] += wf[wk + c] * xf[xb + c]
            if aug:
                of[ob + Cu] = 1.0


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def depthwise(x, w, out, aug, nth=2):  # pragma: no cover - jitted
    """Depthwise KxK conv, stride 1, zero padding K//2: x [N, H, W, C], w [K, K, C],
    out [N, H, W, C + aug] (with aug, the last column is set to 1 - a bias column for a GEMM).
    The K taps of a kernel row are summed in one expression (K = 3, 7) so the output row is
    read and written once per kernel row."""
    R = x.shape[0] * x.shape[1]
    nblk = min(R, 2 * nth)
    if nth <= 1:
        _dw_rows(x, w, out, aug, 0, R)
    else:
        for blk in prange(nblk):
            _dw_rows(x, w, out, aug, blk * R // nblk, (blk + 1) * R // nblk)


@njit(cache=True, nogil=True, error_model="numpy")
def sdsa3_lif(q, k, v, vq, vqo, vk, vko, vv, vvo, aq, ak, av, heads, scale, va, vao, aa,
              cs2, idx2, off2, rec, sq, sk, sv, sa):  # pragma: no cover - jitted
    """Spike-driven self-attention (sdsa3) from the Q/K/V membrane inputs to the attention
    neuron's active lists, in one serial pass (the token maps of stages 3/4 are small):

    LIF q/k/v (inputs [T, B, P, C], membranes [B, P, C] -> vqo/vko/vvo; neuron arguments
    ``aq`` = (tau, v_th, soft, decay_input)); per head KV = K^T V by adding, for every active
    key channel, the value spikes of its head; Y = Q KV (for every active query channel the
    KV row of its channel), times ``scale``; the attention LIF (``aa``, membrane va -> vao)
    on each finished token row -> active lists idx2/off2 (channel blocks of cs2).  Q KV of
    0/1 matrices is integer-valued (< 2^24), so the sums are exact in any order: the result
    equals ``matmul(q, matmul(k^T, v)) * scale``.  With ``rec`` the q/k/v/attention spikes are
    also written as 0/1 floats to sq/sk/sv/sa [T, B, P, C]."""
    T, B, P, C = q.shape
    d = C // heads
    kv = np.empty((C, d), np.float32)  # row i: KV[head of i][i mod d]
    spq = np.empty((P, C), np.uint8)
    spk = np.empty(C, np.uint8)
    spv = np.empty(C, np.uint8)
    sp = np.empty(C, np.uint8)
    vf = np.empty(C, np.float32)
    act = np.empty(C, np.int64)  # active channels of one token (_compact, one block)
    aoff = np.empty(2, np.int64)
    y = np.empty(C, np.float32)
    for b in range(B):
        for n in range(P):
            for c in range(C):
                vqo[b, n, c] = vq[b, n, c]
                vko[b, n, c] = vk[b, n, c]
                vvo[b, n, c] = vv[b, n, c]
                vao[b, n, c] = va[b, n, c]
        for t in range(T):
            kv[:] = 0.0
            for n in range(P):
                _lif_row(q[t, b, n], vqo[b, n], vqo[b, n], aq[0], aq[1], aq[2], aq[3], spq[n])
                _lif_row(k[t, b, n], vko[b, n], vko[b, n], ak[0], ak[1], ak[2], ak[3], spk)
                _lif_row(v[t, b, n], vvo[b, n], vvo[b, n], av[0], av[1], av[2], av[3], spv)
                if rec:
                    for c in range(C):
                        sq[t, b, n, c] = spq[n, c]
                        sk[t, b, n, c] = spk[c]
                        sv[t, b, n, c] = spv[c]
                for c in range(C):
                    vf[c] = spv[c]
                _compact(spk, C, act, aoff)
                for a in range(aoff[1]):  # active key channel i adds the value spikes of its head
                    i = act[a]
                    h0 = (i // d) * d
                    kr = kv[i]
                    vr = vf[h0:h0 + d]
                    for j in range(d):
                        kr[j] += vr[j]
            for n in range(P):
                y[:] = 0.0
                _compact(spq[n], C, act, aoff)
                for a in range(aoff[1]):  # active query channel i adds its KV row
                    i = act[a]
                    h0 = (i // d) * d
                    kr = kv[i]
                    yr = y[h0:h0 + d]
                    for j in range(d):
                        yr[j] += kr[j]
                for c in range(C):
                    y[c] = y[c] * scale
                _lif_row(y, vao[b, n], vao[b, n], aa[0], aa[1], aa[2], aa[3], sp)
                _compact(sp, cs2, idx2[t, b, n], off2[t, b, n])
                if rec:
                    for c in range(C):
                        sa[t, b, n, c] = sp[c]


_F32 = np.float32
_EMPTY_F = np.zeros((1, 1, 1, 1), np.float32)
_EMPTY_I16 = np.zeros((1, 1, 1, 1), np.int16)
_EMPTY_I32 = np.zeros((1, 1, 1, 1), np.int32)
_EMPTY_V = np.zeros((1, 1, 1), np.float32)
_ALIGN = 64  # bytes: weight rows, taps and output rows start on cache lines

# below these sizes (~20-50 us of work) a kernel runs on the calling thread: waking the pool costs
# ~10 us per call
SERIAL_LIF = 1 << 17  # elements of a LIF pass
SERIAL_DW = 1 << 18  # multiply-adds of a depthwise conv
SERIAL_GATHER = 1 << 19  # dense-equivalent multiply-adds / 10 of a gather
# SepConv depthwise 7x7 on maps of at least this many pixels, single-threaded: the library conv
DW_LIBRARY_PIXELS = 16 * 16


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dt = np.dtype(dtype)
    n = dt.itemsize
    for d in shape:
        n *= d
    buf = np.empty(n + _ALIGN, np.uint8)
    o = -buf.__array_interface__["data"][0] % _ALIGN
    return buf[o:o + n].view(dt).reshape(shape)


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def _np(t: Tensor) -> np.ndarray:
    return _aligned_copy(t.detach().to(torch.float32).contiguous().numpy())


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even (finite inputs)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return _aligned_copy(u.astype(np.uint16))


WEIGHT_PRECISIONS = ("fp32", "bf16")


def conv_params(mod) -> tuple:
    """(weight [Co, Ci/g, k, k] or [Co, Ci/g, k], bias [Co] or None, groups) of a (folded) conv or
    :class:`~snn.models.fold.Pointwise` / :class:`~snn.models.spikeconv.SpikeConv2d`."""
    from .fold import Pointwise
    from .spikeconv import SpikeConv2d

    if isinstance(mod, SpikeConv2d):
        mod = mod.conv
    if isinstance(mod, Pointwise):
        g, co, ci = mod.weight.shape
        w = mod.weight.detach().reshape(g * co, ci, 1, 1)
        b = mod.bias.detach().reshape(-1) if mod.bias is not None else None
        return w, b, g
    w = mod.weight.detach()
    if w.dim() == 3:
        w = w.unsqueeze(-1)
    b = mod.bias.detach() if mod.bias is not None else None
    return w, b, mod.groups


def block_size(K: int, Co: int, Ci: int) -> int:
    """Input channels per weight block of a gather kernel (rows of K*K*block*Co floats in L2)."""
    cs = max(8, WEIGHT_BLOCK_BYTES // (K * K * Co * 4))
    return min(cs, Ci)


class _Workspace:
    """Scratch arrays reused across steps, per (name, shape, thread): only for buffers that never
    leave a runner call (active lists, depthwise outputs, GEMM inputs)."""

    def __init__(self) -> None:
        self._bufs: dict = {}

    def get(self, name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        key = (name, shape, threading.get_ident())
        a = self._bufs.get(key)
        if a is None:
            if len(self._bufs) >= 256:  # many threads / shapes over time: start over
                self._bufs.clear()
            a = self._bufs[key] = aligned_empty(shape, dtype)
        return a


class Gather:
    """A conv / linear fed by spikes: ``w3[ky*Ci + c, kx, :Co] = W[:, c, ky, kx]`` (the K taps
    of one kernel row and input channel as one contiguous row; stride 1: taps in reverse order,
    Cp = Co, other strides: each tap padded to Cp = Co rounded up to 16 floats; 64-byte aligned
    array; one more row of zeros pads short groups of rows), the bias
    and the input-channel block size ``cs`` that its input's active lists must use."""

    def __init__(self, mod, stride: int = 1, pad: int = 0, precision: str = "fp32") -> None:
        w, b, g = conv_params(mod)
        if g != 1:
            raise ValueError("Gather needs an ungrouped conv")
        if precision not in WEIGHT_PRECISIONS:
            raise ValueError(f"precision must be one of {WEIGHT_PRECISIONS}, got {precision!r}")
        co, ci, K, K2 = w.shape
        if K != K2:
            raise ValueError("Gather needs a square kernel")
        self.K, self.Ci, self.Co = K, ci, co
        self.stride, self.pad = stride, pad
        # stride 1: the "flat" layout (taps in reverse order, unpadded: Cp = Co) whatever Co is - one
        # long contiguous loop per input pixel beats K short ones even when rows are not 64-byte aligned
        cp = co if stride == 1 else -(-co // 16) * 16
        w3 = torch.zeros(K * ci + 1, K, cp, dtype=torch.float32)  # last row: zeros
        wp = w.permute(2, 1, 3, 0).to(torch.float32)  # [ky, c, kx, o]
        if stride == 1 and cp == co:  # "flat" kernels (see _scatter_flat): taps in reverse order
            wp = wp.flip(2)
        w3[:-1].view(K, ci, K, cp)[..., :co] = wp
        self.w3 = _np(w3) if precision == "fp32" else to_bf16_bits(w3.numpy())
        self.bias = _np(b) if b is not None else np.zeros(co, _F32)
        self.cs = block_size(K, co, ci)
        self.nb = -(-ci // self.cs)
        self._hw: dict = {}

    def out_hw(self, H: int, W: int):
        hw = self._hw.get((H, W))
        if hw is None:
            hw = self._hw[(H, W)] = ((H + 2 * self.pad - self.K) // self.stride + 1,
                                     (W + 2 * self.pad - self.K) // self.stride + 1)
        return hw

    def threads(self, n_in: int, nth: int) -> int:
        """Threads for a call over n_in input pixels (serial below ~0.1 ms of work)."""
        return nth if n_in * self.Ci * self.Co * self.K * self.K // (10 * self.stride * self.stride) \
            >= SERIAL_GATHER else 1


class Spikes:
    """Active lists of a spike map ``[T, B, H, W, C]``: idx [T, B, P, C] int16, off [T, B, P, nb+1]."""

    __slots__ = ("idx", "off", "H", "W", "cs")

    def __init__(self, idx, off, H, W, cs):
        self.idx, self.off, self.H, self.W, self.cs = idx, off, H, W, cs


def _lif_args(n: LIFNode):
    return _F32(n.tau), _F32(n.v_threshold), bool(n.soft_reset), bool(n.decay_input)


class Neuron:
    """Reads / writes a LIF neuron's membrane in a :class:`StepContext`, channels-last."""

    def __init__(self, node: LIFNode) -> None:
        self.node = node
        self.key = node.state_key
        self.args = _lif_args(node)
        self._rest: dict = {}

    def v_in(self, ctx, B: int, P: int, C: int, logical: tuple) -> np.ndarray:
        """Old membrane as [B, P, C]; ``logical`` = the frame shape the model uses ([B, C, H, W] or
        [B, C, N]).  At rest: a cached zero array (kernels never write their input membrane)."""
        st = ctx.prev.get(self.key)
        if st is None:
            z = self._rest.get((B, P, C))
            if z is None:
                z = self._rest[(B, P, C)] = np.zeros((B, P, C), _F32)
            return z
        v = st.v
        if v.shape != logical:
            raise ValueError(
                f"{self.key}: state shape {tuple(v.shape)} does not match input frame shape {logical}"
            )
        if v.dtype == torch.float32 and not v.requires_grad:
            # our own states are channels-last memory seen as [B, C, ...]: numpy views, no copy
            a = v.numpy().transpose(_TO_LAST[v.dim()])
            if a.flags.c_contiguous:
                return a.reshape(B, P, C)
        return v.detach().to(torch.float32).movedim(1, -1).contiguous().numpy().reshape(B, P, C)

    def v_out(self, ctx, vout: np.ndarray, logical: tuple) -> None:
        # logical [B, C, *spatial] view of vout [B, P, C]
        ctx.new[self.key] = LIFState(torch.from_numpy(
            vout.reshape(logical[0], *logical[2:], logical[1]).transpose(_TO_FIRST[len(logical)])))

    def record(self, ctx, spk: np.ndarray, logical: tuple) -> None:
        T = spk.shape[0]
        ctx.spikes[self.key] = torch.from_numpy(spk).view(T, logical[0], *logical[2:], logical[1]).movedim(-1, 2)

    # ------------------------------------------------------------------ passes
    def to_spikes(self, ctx, ws: _Workspace, x: np.ndarray, logical: tuple, cs: int, hw: tuple, nth: int) -> Spikes:
        """LIF over the membrane input x [T, B, P, C] -> active lists (blocks of cs channels)."""
        T, B, P, C = x.shape
        v = self.v_in(ctx, B, P, C, logical)
        vout = np.empty((B, P, C), _F32)
        nb = -(-C // cs)
        idx = ws.get(self.key + ".idx", (T, B, P, C), np.int16)
        off = ws.get(self.key + ".off", (T, B, P, nb + 1), np.int32)
        rec = ctx.spikes is not None
        spk = np.empty((T, B, P, C), _F32) if rec else _EMPTY_F
        lif_csr(x, v, vout, *self.args, cs, idx, off, spk, rec, nth if x.size >= SERIAL_LIF else 1)
        self.v_out(ctx, vout, logical)
        if rec:
            self.record(ctx, spk, logical)
        return Spikes(idx, off, hw[0], hw[1], cs)


def run_gather(g: Gather, s: Spikes, T: int, B: int, res: Optional[np.ndarray] = None,
               ctx=None, neuron: Optional[Neuron] = None, out_cs: int = 0, dense: bool = False,
               logical: tuple = (), ws: Optional[_Workspace] = None, nth: int = 0, out=None):
    """Apply ``g`` to the active lists ``s``; optionally add ``res`` and feed the result to
    ``neuron`` (returning its spikes as active lists with block size ``out_cs`` or, with ``dense``,
    as a 0/1 map).  Returns ``(out, spikes)`` where out is the pre-activation [T, B, Ho*Wo, Co]
    (a fresh array unless ``out`` is given; with a neuron, the spikes live in ``ws``)."""
    assert s.cs == g.cs, (s.cs, g.cs)
    if nth <= 0:
        nth = _sync_threads()
    Ho, Wo = g.out_hw(s.H, s.W)
    P = Ho * Wo
    Co = g.Co
    if out is None:
        out = aligned_empty((T, B, P, Co))
    use_res = res is not None
    nth = g.threads(T * B * s.H * s.W, nth)
    if neuron is None:
        gather_conv(s.idx, s.off, s.H, s.W, g.w3, g.K, g.stride, g.pad, g.bias,
                    res if use_res else _EMPTY_F, use_res, out, False, _EMPTY_V, _EMPTY_V,
                    _F32(2.0), _F32(1.0), False, True, 1, _EMPTY_I16, _EMPTY_I32, _EMPTY_F, False, False, nth)
        return out, None
    if ws is None:
        ws = _Workspace()
    v = neuron.v_in(ctx, B, P, Co, logical)
    vout = np.empty((B, P, Co), _F32)
    rec = ctx.spikes is not None
    want_dense = dense or rec
    if rec:
        spk = np.empty((T, B, P, Co), _F32)
    elif dense:
        spk = ws.get(neuron.key + ".spk", (T, B, P, Co))
    else:
        spk = _EMPTY_F
    if dense:
        idx2, off2, cs2 = _EMPTY_I16, _EMPTY_I32, 1
    else:
        cs2 = out_cs
        idx2 = ws.get(neuron.key + ".idx", (T, B, P, Co), np.int16)
        off2 = ws.get(neuron.key + ".off", (T, B, P, -(-Co // cs2) + 1), np.int32)
    gather_conv(s.idx, s.off, s.H, s.W, g.w3, g.K, g.stride, g.pad, g.bias,
                res if use_res else _EMPTY_F, use_res, out, True, v, vout, *neuron.args,
                cs2, idx2, off2, spk, not dense, want_dense, nth)
    neuron.v_out(ctx, vout, logical)
    if rec:
        neuron.record(ctx, spk, logical)
    if dense:
        return out, spk
    return out, Spikes(idx2, off2, Ho, Wo, cs2)


# axis orders: channels first <-> channels last, for [B, C, *spatial] (by ndim)
_TO_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1)}
_TO_FIRST = {3: (0, 2, 1), 4: (0, 3, 1, 2)}


def to_nhwc(x: Tensor) -> np.ndarray:
    """[T, B, C, H, W] (any memory layout) -> float32 numpy [T, B, H*W, C] (no copy if channels-last)."""
    T, B, C = x.shape[:3]
    if not x.requires_grad:
        a = x.numpy().transpose(0, 1, 3, 4, 2)  # numpy views: cheaper than torch ops
        if a.flags.c_contiguous:
            return a.reshape(T, B, -1, C)
    return x.detach().movedim(2, -1).contiguous().numpy().reshape(T, B, -1, C)


def from_nhwc(a: np.ndarray, H: int, W: int) -> Tensor:
    """float32 numpy [T, B, H*W, C] -> logical [T, B, C, H, W] view."""
    T, B, P, C = a.shape
    return torch.from_numpy(a.reshape(T, B, H, W, C).transpose(0, 1, 4, 2, 3))


def eligible(x: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not (x.requires_grad and torch.is_grad_enabled())
    )


_THREADS = threading.local()
_POOL_STARTED = [False]


def _start_pool() -> None:
    # Starting numba's OpenMP pool (first parallel call) can reset the calling thread's OpenMP
    # thread count, which is also torch's intra-op thread count (seen: torch.set_num_threads(1)
    # silently became 2).  Start it once here and put torch's setting back.
    n = torch.get_num_threads()
    _pool_warmup(np.zeros(8))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _POOL_STARTED[0] = True


def _sync_threads() -> int:
    """numba's pool size for this thread = torch's intra-op threads (capped); returns it."""
    if not _POOL_STARTED[0]:
        _start_pool()
    n = torch.get_num_threads()
    tl = _THREADS.__dict__
    if tl.get("torch") != n:
        m = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
        if numba.get_num_threads() != m:
            numba.set_num_threads(m)
        tl["torch"], tl["numba"] = n, m
    return tl["numba"]


# ---------------------------------------------------------------------------------------- blocks
class FastDownsampling:
    """(LIF ->) strided conv (BN folded) as a gather over active inputs."""

    def __init__(self, m, precision: str = "fp32") -> None:
        conv = m.encode_conv
        inner = getattr(conv, "conv", conv)
        self.g = Gather(conv, inner.stride[0], inner.padding[0], precision)
        self.neuron = Neuron(m.encode_lif) if m.encode_lif is not None else None
        self.conv = conv
        self.ws = _Workspace()

    calls = 0

    def __call__(self, x: Tensor, ctx) -> Tensor:
        nth = _sync_threads()
        self.calls += 1
        T, B, C, H, W = x.shape
        g = self.g
        Ho, Wo = g.out_hw(H, W)
        if self.neuron is None:  # raw input frames: any values, usually sparse events
            xs = to_nhwc(x)
            if np.count_nonzero(xs) > 0.3 * xs.size:  # dense input (images): the library conv
                y = self.conv(x.flatten(0, 1))
                return y.view(T, B, *y.shape[1:])
            out = aligned_empty((T * B, Ho, Wo, g.Co))
            dense_input_conv(xs.reshape(T * B, H, W, C), g.w3, g.bias, g.K, g.stride, g.pad, out)
            return torch.from_numpy(out).view(T, B, Ho, Wo, g.Co).movedim(-1, 2)
        s = self.neuron.to_spikes(ctx, self.ws, to_nhwc(x), (B, C, H, W), g.cs, (H, W), nth)
        out, _ = run_gather(g, s, T, B, nth=nth)
        return from_nhwc(out, Ho, Wo)


class FastConvBlock:
    """MS_ConvBlock: x + SepConv(x); then x + conv2(LIF(conv1(LIF(x)))) - all gathers but the
    depthwise 7x7 (dense, on the spike map) and the last SepConv 1x1 (one GEMM)."""

    def __init__(self, m, precision: str = "fp32") -> None:
        sep = m.Conv
        self.lif_a = Neuron(sep.lif1)
        self.lif_b = Neuron(sep.lif2)
        self.lif_c = Neuron(m.lif1)
        self.lif_d = Neuron(m.lif2)
        self.pw1 = Gather(sep.pwconv1, precision=precision)
        wd, bd, gd = conv_params(sep.dwconv)
        if sep.dwconv.bias is not None or gd != wd.shape[0] or sep.dwconv.stride[0] != 1:
            raise ValueError("unexpected depthwise conv")
        self.dw = _np(wd[:, 0].permute(1, 2, 0))  # [K, K, C]
        self.dw_t = wd.to(torch.float32).contiguous()  # [C, 1, K, K] for the library depthwise conv
        self.dw_pad = sep.dwconv.padding[0]
        w2, b2, _ = conv_params(sep.pwconv2)
        w2 = w2[:, :, 0, 0]  # [C, 2C]
        b2 = b2 if b2 is not None else torch.zeros(w2.shape[0])
        self.pw2 = torch.from_numpy(_np(torch.cat([w2.t(), b2[None]], 0)))  # [2C + 1, C]: bias row
        self.pw2_w, self.pw2_b = self.pw2[:-1], self.pw2[-1]
        self.conv1 = Gather(m.conv1, 1, 1, precision)
        self.conv2 = Gather(m.conv2, 1, 1, precision)
        self.ws = _Workspace()

    calls = 0

    def __call__(self, x: Tensor, ctx) -> Tensor:
        nth = _sync_threads()
        self.calls += 1
        ws = self.ws
        T, B, C, H, W = x.shape
        P = H * W
        lg = (B, C, H, W)
        xa = to_nhwc(x)
        s = self.lif_a.to_spikes(ctx, ws, xa, lg, self.pw1.cs, (H, W), nth)
        med = self.pw1.Co
        _, s2 = run_gather(self.pw1, s, T, B, ctx=ctx, neuron=self.lif_b, dense=True, logical=(B, med, H, W),
                           ws=ws, nth=nth, out=ws.get("pw1", (T, B, P, med)))
        x2 = ws.get("x2", (T, B, P, C))
        x2t = torch.from_numpy(x2.reshape(-1, C))
        if P >= DW_LIBRARY_PIXELS and nth == 1:
            # large maps, one thread: the library's (oneDNN) channels-last depthwise conv is ~2-3x
            # faster than ours; with more threads it costs more than it saves (a second thread pool
            # to wake between numba kernels), so ours runs there
            s2t = torch.from_numpy(s2.reshape(T * B, H, W, med)).permute(0, 3, 1, 2)
            y = torch.nn.functional.conv2d(s2t, self.dw_t, padding=self.dw_pad, groups=med)
            t2 = y.permute(0, 2, 3, 1).reshape(-1, med)  # a view when the output is channels-last
            torch.add(torch.from_numpy(xa.reshape(-1, C)), self.pw2_b, out=x2t)
            x2t.addmm_(t2, self.pw2_w)
        else:
            t = ws.get("dw", (T * B, H, W, med + 1))
            depthwise(s2.reshape(T * B, H, W, med), self.dw, t, True,
                      nth if T * B * P * med * 49 >= SERIAL_DW else 1)
            torch.addmm(torch.from_numpy(xa.reshape(-1, C)), torch.from_numpy(t.reshape(-1, med + 1)), self.pw2,
                        out=x2t)
        s = self.lif_c.to_spikes(ctx, ws, x2, lg, self.conv1.cs, (H, W), nth)
        _, s = run_gather(self.conv1, s, T, B, ctx=ctx, neuron=self.lif_d, out_cs=self.conv2.cs,
                          logical=(B, self.conv1.Co, H, W), ws=ws, nth=nth,
                          out=ws.get("conv1", (T, B, P, self.conv1.Co)))
        out, _ = run_gather(self.conv2, s, T, B, res=x2, nth=nth)
        return from_nhwc(out, H, W)


class Chain:
    """Folded RepConv chain: 1x1 (gather, on spikes) -> depthwise 3x3 -> grouped 1x1 + bias (GEMMs)."""

    def __init__(self, seq, name: str, precision: str = "fp32") -> None:
        c1, dw, pw = seq[0], seq[1], seq[2]
        self.name = name
        self.g = Gather(c1, precision=precision)
        wd, bd, gd = conv_params(dw)
        if bd is not None:
            raise ValueError("unexpected depthwise bias")
        self.dw = _np(wd[:, 0].permute(1, 2, 0))  # [3, 3, G*mid]
        wp, bp, groups = conv_params(pw)
        self.groups = groups
        co = wp.shape[0] // groups
        mid = wp.shape[1]
        self.mid, self.co = mid, co
        wp = wp[:, :, 0, 0].reshape(groups, co, mid)
        bp = bp.reshape(groups, co) if bp is not None else torch.zeros(groups, co)
        # per group [mid + 1, co] with the bias as the last row
        self.pw = [torch.from_numpy(_np(torch.cat([wp[j].t(), bp[j][None]], 0))) for j in range(groups)]
        self.pw_w = torch.stack([p[:-1] for p in self.pw])  # [G, mid, co]
        self.pw_b = torch.stack([p[-1] for p in self.pw])[:, None, :]  # [G, 1, co]

    def __call__(self, s: Spikes, T: int, B: int, ws: _Workspace, nth: int, res: Optional[np.ndarray] = None):
        """Returns a list (one per group) of [T*B*P, co] float32 arrays (contiguous)."""
        H, W = s.H, s.W
        G, mid = self.groups, self.mid
        P = H * W
        n = self.name
        u, _ = run_gather(self.g, s, T, B, nth=nth, out=ws.get(n + ".u", (T, B, P, G * mid)))
        dnth = nth if T * B * P * G * mid * 9 >= SERIAL_DW else 1
        if G == 1:
            t = ws.get(n + ".dw", (T * B, H, W, mid + 1))
            depthwise(u.reshape(T * B, H, W, mid), self.dw, t, True, dnth)
            t2 = torch.from_numpy(t.reshape(-1, mid + 1))
            if res is not None:
                y = torch.addmm(torch.from_numpy(res.reshape(-1, self.co)), t2, self.pw[0])
            else:
                y = torch.mm(t2, self.pw[0])
            return [y.numpy()]
        t = ws.get(n + ".dw", (T * B, H, W, G * mid))
        depthwise(u.reshape(T * B, H, W, G * mid), self.dw, t, False, dnth)
        t3 = torch.from_numpy(t.reshape(-1, G, mid)).transpose(0, 1)  # [G, T*B*P, mid] view
        y = torch.baddbmm(self.pw_b, t3, self.pw_w)  # one batched call: ~20% faster than G GEMMs
        return [y[j].numpy() for j in range(G)]


class FastTransformerBlock:
    """MS_Block with sdsa3: x + proj(SN(Q (K^T V) / 8)); x + MLP(x); Q/K/V from one fused chain."""

    def __init__(self, m, precision: str = "fp32") -> None:
        a = m.attn
        self.heads = a.num_heads
        self.scale = float(a.scale)
        self.lif_h = Neuron(a.head_lif)
        self.lif_q, self.lif_k, self.lif_v = Neuron(a.q_lif), Neuron(a.k_lif), Neuron(a.v_lif)
        self.lif_attn = Neuron(a.attn_lif)
        self.qkv = Chain(a.qkv_conv, "qkv", precision)
        self.proj = Chain(a.proj_conv, "proj", precision)
        mlp = m.mlp
        self.lif_f1, self.lif_f2 = Neuron(mlp.fc1_lif), Neuron(mlp.fc2_lif)
        self.fc1 = Gather(mlp.fc1_conv, precision=precision)
        self.fc2 = Gather(mlp.fc2_conv, precision=precision)
        self.ws = _Workspace()

    def _attention(self, ctx, ws: _Workspace, q, k, v, lg: tuple, hw: tuple) -> Spikes:
        """LIF q/k/v, SN_0.5(Q (K^T V) * scale) in one serial kernel (:func:`sdsa3_lif`); returns
        the attention neuron's active lists for the projection's gather.  Membranes and recorded
        spikes go through the neurons as in the other passes."""
        T, B, P, C = q.shape
        cs2 = self.proj.g.cs
        la = (B, C, P)  # the attention neuron sees [B, C, N]
        nq, nk, nv, na = self.lif_q, self.lif_k, self.lif_v, self.lif_attn
        vq, vk, vv = (n.v_in(ctx, B, P, C, lg) for n in (nq, nk, nv))
        va = na.v_in(ctx, B, P, C, la)
        vqo, vko, vvo, vao = (np.empty((B, P, C), _F32) for _ in range(4))
        idx2 = ws.get(na.key + ".idx", (T, B, P, C), np.int16)
        off2 = ws.get(na.key + ".off", (T, B, P, -(-C // cs2) + 1), np.int32)
        rec = ctx.spikes is not None
        sq, sk, sv, sa = ((np.empty((T, B, P, C), _F32) for _ in range(4)) if rec else (_EMPTY_F,) * 4)
        sdsa3_lif(q, k, v, vq, vqo, vk, vko, vv, vvo, nq.args, nk.args, nv.args, self.heads,
                  _F32(self.scale), va, vao, na.args, cs2, idx2, off2, rec, sq, sk, sv, sa)
        for n, vo, sr, lgn in ((nq, vqo, sq, lg), (nk, vko, sk, lg), (nv, vvo, sv, lg), (na, vao, sa, la)):
            n.v_out(ctx, vo, lgn)
            if rec:
                n.record(ctx, sr, lgn)
        return Spikes(idx2, off2, hw[0], hw[1], cs2)

    calls = 0

    def __call__(self, x: Tensor, ctx) -> Tensor:
        nth = _sync_threads()
        self.calls += 1
        ws = self.ws
        T, B, C, H, W = x.shape
        P = H * W
        lg = (B, C, H, W)
        xa = to_nhwc(x)
        s = self.lif_h.to_spikes(ctx, ws, xa, lg, self.qkv.g.cs, (H, W), nth)
        q, k, v = self.qkv(s, T, B, ws, nth)
        s = self._attention(ctx, ws, q.reshape(T, B, P, C), k.reshape(T, B, P, C), v.reshape(T, B, P, C),
                            lg, (H, W))
        (x2,) = self.proj(s, T, B, ws, nth, res=xa)
        x2 = x2.reshape(T, B, P, C)
        s = self.lif_f1.to_spikes(ctx, ws, x2, (B, C, P), self.fc1.cs, (H, W), nth)
        _, s = run_gather(self.fc1, s, T, B, ctx=ctx, neuron=self.lif_f2, out_cs=self.fc2.cs,
                          logical=(B, self.fc1.Co, P), ws=ws, nth=nth, out=ws.get("fc1", (T, B, P, self.fc1.Co)))
        out, _ = run_gather(self.fc2, s, T, B, res=x2, nth=nth)
        return from_nhwc(out, H, W)


def install(model, precision: str = "fp32") -> int:
    """Attach fast runners to the blocks of a folded model (``repconv="chain"``); returns how many.

    ``precision="bf16"`` stores the weight rows of the gathers (every conv / linear fed by spikes) as
    bfloat16, widened to float32 and summed in float32: about half the weight bytes, but **not** the
    exact model (weights rounded to 8 significant bits); off by default."""
    if precision not in WEIGHT_PRECISIONS:
        raise ValueError(f"precision must be one of {WEIGHT_PRECISIONS}, got {precision!r}")
    from .attention import SpikeDrivenSelfAttention
    from .blocks import ConvBlock, Downsampling, TransformerBlock

    from ..neurons import SpikingNeuron

    if not all(isinstance(n, LIFNode) for n in model.modules() if isinstance(n, SpikingNeuron)):
        return 0
    n = 0
    for m in model.modules():
        fast = None
        if isinstance(m, Downsampling):
            fast = FastDownsampling(m, precision)
        elif isinstance(m, ConvBlock):
            fast = FastConvBlock(m, precision)
        elif isinstance(m, TransformerBlock):
            a = m.attn
            if isinstance(a, SpikeDrivenSelfAttention) and a.mode == "sdsa3" and a.qkv_conv is not None \
                    and isinstance(a.qkv_conv, torch.nn.Sequential):
                fast = FastTransformerBlock(m, precision)
        if fast is not None:
            object.__setattr__(m, "_fast", fast)
            n += 1
    return n
