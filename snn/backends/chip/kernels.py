"""Numba kernels of the event-driven executor (layouts: maps ``[B, H, W, C]``; spikes as address
lists ``addr[b, :cnt[b]]`` of ``(y * W + x) * C + c``, in increasing order).

Sums are exact (int32 where the compiler's bound allows it, else int64) and saturated once, at the
end, as :mod:`~snn.backends.chip.reference` defines.
"""

from __future__ import annotations

import numba
import numpy as np


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


@numba.njit(cache=True, nogil=True)
def input_codes(frame, lut, clip, out):  # pragma: no cover - jitted
    """``frame [B, C, H, W]`` counts -> ``out [B, H, W, C]`` codes; returns the clamped count."""
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


@numba.njit(cache=True, nogil=True)
def conv_spikes(addr, cnt, H, W, Ci, wt, stride, pad, acc):  # pragma: no cover - jitted
    """Scatter weight rows ``wt[ci, ky, kx, :]`` of every spike into ``acc [B, Ho, Wo, Co]``
    (``acc`` holds 0 on entry; groups: input ci feeds outputs ``(ci // cig) * cog + [0, cog)``).
    Returns the number of accumulates (weights added)."""
    B, Ho, Wo, Co = acc.shape
    K = wt.shape[1]
    cog = wt.shape[3]
    groups = Co // cog
    cig = Ci // groups
    n = 0
    for b in range(B):
        for e in range(cnt[b]):
            a = addr[b, e]
            ci = a % Ci
            p = a // Ci
            x = p % W
            y = p // W
            o0 = (ci // cig) * cog
            for ky in range(K):
                ty = y + pad - ky
                if ty < 0 or ty % stride != 0:
                    continue
                oy = ty // stride
                if oy >= Ho:
                    continue
                for kx in range(K):
                    tx = x + pad - kx
                    if tx < 0 or tx % stride != 0:
                        continue
                    ox = tx // stride
                    if ox >= Wo:
                        continue
                    # slices, not row[o0 + j]: indices numba can prove non-negative let LLVM vectorise
                    row = acc[b, oy, ox, o0:o0 + cog]
                    w = wt[ci, ky, kx]
                    for j in range(cog):
                        row[j] += w[j]
                    n += cog
    return n


@numba.njit(cache=True, nogil=True)
def conv_graded(src, wt, stride, pad, acc):  # pragma: no cover - jitted
    """Like :func:`conv_spikes` for graded ``src [B, H, W, Ci]``: every non-zero value multiplies its
    weight rows.  Returns the number of multiply-accumulates."""
    B, H, W, Ci = src.shape
    _, Ho, Wo, Co = acc.shape
    K = wt.shape[1]
    cog = wt.shape[3]
    groups = Co // cog
    cig = Ci // groups
    n = 0
    for b in range(B):
        for y in range(H):
            for x in range(W):
                for ci in range(Ci):
                    v = src[b, y, x, ci]
                    if v == 0:
                        continue
                    o0 = (ci // cig) * cog
                    for ky in range(K):
                        ty = y + pad - ky
                        if ty < 0 or ty % stride != 0:
                            continue
                        oy = ty // stride
                        if oy >= Ho:
                            continue
                        for kx in range(K):
                            tx = x + pad - kx
                            if tx < 0 or tx % stride != 0:
                                continue
                            ox = tx // stride
                            if ox >= Wo:
                                continue
                            row = acc[b, oy, ox, o0:o0 + cog]
                            w = wt[ci, ky, kx]
                            for j in range(cog):
                                row[j] += v * w[j]
                            n += cog
    return n


@numba.njit(cache=True, nogil=True)
def finish(acc, shift, bias, dst, add, lo, hi, half_up):  # pragma: no cover - jitted
    """``dst = sat((add ? dst : 0) + bias + acc >> shift)``; returns the saturation count."""
    B, Ho, Wo, Co = acc.shape
    n_sat = 0
    for b in range(B):
        for y in range(Ho):
            for x in range(Wo):
                for o in range(Co):
                    v = _shr(np.int64(acc[b, y, x, o]), shift[o], half_up) + bias[o]
                    if add:
                        v += dst[b, y, x, o]
                    v, s = _sat(v, lo, hi)
                    n_sat += s
                    dst[b, y, x, o] = v
    return n_sat


@numba.njit(cache=True, nogil=True)
def lif(x, v, theta, in_shift, lo, hi, half_up, v_new, addr, cnt):  # pragma: no cover - jitted
    """Membranes ``v`` -> ``v_new`` for currents ``x`` (all ``[B, H, W, C]``); spikes go to the
    address lists.  Returns ``(saturations, spikes)``."""
    B, H, W, C = x.shape
    n_sat = 0
    n_spk = 0
    for b in range(B):
        k = 0
        for y in range(H):
            for xx in range(W):
                base = (y * W + xx) * C
                for c in range(C):
                    h = _shr(np.int64(v[b, y, xx, c]) + (np.int64(x[b, y, xx, c]) << in_shift), 1, half_up)
                    h, s = _sat(h, lo, hi)
                    n_sat += s
                    if h >= theta[c]:
                        v_new[b, y, xx, c] = 0
                        addr[b, k] = base + c
                        k += 1
                    else:
                        v_new[b, y, xx, c] = h
        cnt[b] = k
        n_spk += k
    return n_sat, n_spk


@numba.njit(cache=True, nogil=True)
def attention(addr, cnt, N, C, heads, y, lo, hi):  # pragma: no cover - jitted
    """SDSA-3 from the Q/K/V spike list (``3C`` channels per token): ``M = K^T V`` per head by
    +1 per (k, v) spike pair of a token, then ``y[token] += M[i]`` per q spike ``i``.
    ``y [B, N, C]`` is overwritten.  Returns ``(increments, row adds, saturations)``."""
    B = cnt.shape[0]
    d = C // heads
    C3 = 3 * C
    m = np.zeros((heads, d, d), np.int32)
    ks = np.empty(C, np.int32)
    vs = np.empty(C, np.int32)
    n_inc = 0
    n_row = 0
    n_sat = 0
    for b in range(B):
        m[:] = 0
        e = 0
        n_e = cnt[b]
        while e < n_e:  # one token at a time
            t = addr[b, e] // C3
            nk = 0
            nv = 0
            while e < n_e and addr[b, e] // C3 == t:
                c = addr[b, e] % C3
                if c >= 2 * C:
                    vs[nv] = c - 2 * C
                    nv += 1
                elif c >= C:
                    ks[nk] = c - C
                    nk += 1
                e += 1
            for a in range(nk):
                i = ks[a]
                h = i // d
                for q in range(nv):
                    j = vs[q]
                    if j // d == h:
                        m[h, i - h * d, j - h * d] += 1
                        n_inc += 1
        for t in range(N):
            for c in range(C):
                y[b, t, c] = 0
        for e in range(n_e):
            a = addr[b, e]
            c = a % C3
            if c >= C:
                continue
            t = a // C3
            h = c // d
            i = c - h * d
            row = m[h, i]
            out = y[b, t, h * d:(h + 1) * d]
            for j in range(d):
                out[j] += row[j]
            n_row += 1
        for t in range(N):
            for c in range(C):
                v, s = _sat(np.int64(y[b, t, c]), lo, hi)
                y[b, t, c] = v
                n_sat += s
    return n_inc, n_row, n_sat


@numba.njit(cache=True, nogil=True)
def pool(x, shift, half_up, lo, hi, out):  # pragma: no cover - jitted
    """``out[b, c] = sat(sum over positions of x[b, :, :, c] >> shift)``; returns saturations."""
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


@numba.njit(cache=True, nogil=True, parallel=True)
def conv_spikes_split(addr, cnt, H, W, Ci, wt, stride, pad, acc, parts):  # pragma: no cover - jitted
    """:func:`conv_spikes` on ``parts`` threads, each adding its own slice of every weight row
    (no two threads write the same output); same sums, same count."""
    B, Ho, Wo, Co = acc.shape
    K = wt.shape[1]
    cog = wt.shape[3]
    groups = Co // cog
    cig = Ci // groups
    step = (cog + parts - 1) // parts
    counts = np.zeros(parts, np.int64)
    for part in numba.prange(parts):
        j0 = part * step
        j1 = min(cog, j0 + step)
        n = 0
        for b in range(B):
            for e in range(cnt[b]):
                a = addr[b, e]
                ci = a % Ci
                p = a // Ci
                x = p % W
                y = p // W
                o0 = (ci // cig) * cog
                for ky in range(K):
                    ty = y + pad - ky
                    if ty < 0 or ty % stride != 0:
                        continue
                    oy = ty // stride
                    if oy >= Ho:
                        continue
                    for kx in range(K):
                        tx = x + pad - kx
                        if tx < 0 or tx % stride != 0:
                            continue
                        ox = tx // stride
                        if ox >= Wo:
                            continue
                        row = acc[b, oy, ox, o0 + j0:o0 + j1]
                        w = wt[ci, ky, kx, j0:j1]
                        for j in range(j1 - j0):
                            row[j] += w[j]
                        n += j1 - j0
        counts[part] = n
    return counts.sum()
