"""numba kernels of the CPU fast path for the parts that are not spike-driven: the depthwise convs
of the SepConv / RepConv chains (dense, on spike maps or chain outputs) and the fused spike-driven
attention (``sdsa3``) of a transformer block.  Same conventions as :mod:`.kernels`."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernels import _compact, _lif_row

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
        _dw_rows(x, w, out, aug, np.int64(0), np.int64(R))
    else:
        for blk in prange(nblk):
            b = np.int64(blk)  # one int64 signature for the rows (tests/test_kernel_signatures.py)
            _dw_rows(x, w, out, aug, b * R // nblk, (b + 1) * R // nblk)


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


