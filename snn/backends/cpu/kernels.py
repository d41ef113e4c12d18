"""numba kernels of the CPU fast path that read spikes: the LIF pass that writes active lists, the
gather conv over active inputs (with the next LIF fused), and the zero-skipping first-layer conv.

Almost every convolution / linear layer of the model reads a binary spike map (firing rates
~0.1), so its output is ``bias + sum of the weight rows of the active inputs``.  Activations are
token-major (``[T, B, H, W, C]``, channels innermost), so a weight row ``W[ky, kx, c_in, :]`` is
one contiguous vector (the packing is in :mod:`.layout`):

* a LIF pass reads the membrane input and the old membrane, writes the new membrane and a compact
  list of the active channels of every pixel (CSR; no spike map is stored unless recorded);
* a gather kernel sums, for every output pixel, the weight rows of the active inputs in its
  receptive field (3x3 / 7x7 / 1x1, any stride), 8 rows per pass over the output (a short last
  group padded with an all-zero row), blocked over input channels, and - where the next op is a
  LIF neuron - applies that neuron to the finished output row while it is in L1 (the
  pre-activation map is never written).  Stride-1 convs store the taps in reverse order and
  unpadded so that the taps of one input pixel form one contiguous piece of the weight row and of
  the output row; other strides pad each tap to 16 floats (64-byte lines).

Arithmetic: the LIF update is the one of :mod:`snn.neurons._fused` (bit-identical); sums are the
same terms as the dense convs in another order (float32 rounding differs at the 1e-7 level).
Weights may be bfloat16 bit patterns (uint16), widened exactly to float32 on load (``_ld``).

Kernels are numba (``parallel=True``; work split over output rows; small calls run on the calling
thread when ``nth`` <= 1), compiled with the numpy error model (no zero-divisor check per
division, which would keep the LIF update from vectorising).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as _ir
from numba import njit, prange
from numba.core import types as _types
from numba.cpython.unsafe.numbers import trailing_zeros as _trailing_zeros
from numba.extending import intrinsic, overload


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
        _lif_csr_part(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec, np.int64(0), np.int64(R))
    else:
        for blk in prange(nblk):
            b = np.int64(blk)  # one int64 signature for the part (tests/test_kernel_signatures.py)
            _lif_csr_part(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec,
                          b * R // nblk, (b + 1) * R // nblk)


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
                     soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, np.int64(0), np.int64(1))
    else:
        for blk in prange(nblk):
            _gather_part(idx, off, H, W, w3, K, stride, pad, bias, res, use_res, out, lif, v, vout, tau,
                         vth, soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, np.int64(blk),
                         np.int64(nblk))


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
