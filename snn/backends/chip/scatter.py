"""The first layer's conv, input-stationary: each non-zero count code multiplies the rows of the
outputs it reaches, into an accumulator map.

The first layer reads the frame's integer codes, which are sparse (events): a gather per output
position would look at ``K * K * C_in`` inputs, mostly zero, for each of the outputs.  Here every
non-zero input ``v`` at ``(iy, ix, ci)`` adds ``v * wt[ci, ky, kx, :]`` to the exact accumulator
row of each output ``(oy, ox)`` with ``oy * stride - pad + ky = iy`` (and the same in x): the same
multiply-accumulates as the gather (counted the same), in another order - integer sums do not
depend on it.  Then every output is shifted, biased and saturated once
(:func:`~snn.backends.chip.kernels._emit_range`).  The ``*_par`` version gives each thread a block
of output rows (it scans the input rows that reach them): no two threads write the same output.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import _JIT, _emit_range
from .vecmac import mac_add
from .wide import wide_vectors


@numba.njit(**_JIT)
def _scatter_rows(src, b, oy0, oy1, wt, stride, pad, shift, rnd, bias, dst, add, lo, hi, accm, tzero):  # pragma: no cover
    """Outputs of rows ``[oy0, oy1)`` of batch row ``b``; ``accm [Ho, Wo, Co]`` scratch of the
    exact accumulator's dtype.  Returns ``(multiply-accumulates, saturations)``."""
    wide_vectors()
    _, H, W, Ci = src.shape
    _, Ho, Wo, Co = dst.shape
    K = wt.shape[1]
    cop = wt.shape[3]  # Co padded to a multiple of 16
    wf = wt.reshape(-1)
    af = accm.reshape(-1)
    nvec = cop // (512 // (af.itemsize * 8))  # explicit 512-bit blocks (vecmac)
    for oy in range(oy0, oy1):
        accm[oy] = 0
    n = 0
    iy0 = max(0, oy0 * stride - pad)
    iy1 = min(H, (oy1 - 1) * stride - pad + K)
    for iy in range(iy0, iy1):
        ky0 = (iy + pad) % stride  # the taps that reach an output row: ky0, ky0 + stride, ...
        oya = (iy + pad - ky0) // stride  # ... reaching rows oya, oya - 1, ...
        for ix in range(W):
            s = src[b, iy, ix]
            kx0 = (ix + pad) % stride
            oxa = (ix + pad - kx0) // stride
            for ci in range(Ci):
                v = s[ci]
                if v == 0:
                    continue
                wc = ci * K * K
                oy = oya
                for ky in range(ky0, K, stride):
                    if oy < oy0:
                        break
                    if oy < oy1:
                        ox = oxa
                        for kx in range(kx0, K, stride):
                            if ox < 0:
                                break
                            if ox < Wo:
                                ao = (oy * Wo + ox) * cop
                                wo = (wc + ky * K + kx) * cop
                                mac_add(af, ao, wf, wo, v, nvec)
                                n += Co
                            ox -= 1
                    oy -= 1
    n_sat = 0
    for oy in range(oy0, oy1):
        for ox in range(Wo):
            n_sat += _emit_range(accm[oy, ox], tzero, dst, b, oy, ox, 0, Co, shift, rnd, bias, add, lo, hi)
    return n, n_sat


@numba.njit(**_JIT)
def conv_scatter(src, wt, stride, pad, shift, rnd, bias, dst, add, lo, hi, accm):  # pragma: no cover - jitted
    """A one-group conv on a sparse graded map ``src [B, H, W, Ci]`` (``wt [Ci, K, K, Cop]`` int32,
    ``Cop``: ``Co`` padded with zero weights to a multiple of 16; ``accm [Ho, Wo, Cop]``) into ``dst``;
    returns ``(MACs, saturations)``."""
    wide_vectors()
    tzero = np.zeros(dst.shape[3], np.int16)
    n = 0
    n_sat = 0
    for b in range(dst.shape[0]):
        a, s = _scatter_rows(src, b, np.int64(0), np.int64(dst.shape[1]), wt, stride, pad, shift, rnd, bias, dst,
                             add, lo, hi, accm, tzero)
        n += a
        n_sat += s
    return n, n_sat


@numba.njit(parallel=True, **_JIT)
def conv_scatter_par(src, wt, stride, pad, shift, rnd, bias, dst, add, lo, hi, accm, parts):  # pragma: no cover
    """:func:`conv_scatter` with the output rows split into ``parts`` blocks, one per thread."""
    wide_vectors()
    Ho = dst.shape[1]
    ns = np.zeros(parts, np.int64)
    sats = np.zeros(parts, np.int64)
    for part_u in numba.prange(parts):
        part = np.int64(part_u)  # one int64 signature per callee (tests/test_kernel_signatures.py)
        wide_vectors()
        tzero = np.zeros(dst.shape[3], np.int16)
        oy0 = part * Ho // parts
        oy1 = (part + 1) * Ho // parts
        if oy1 > oy0:
            for b in range(dst.shape[0]):
                a, s = _scatter_rows(src, b, oy0, oy1, wt, stride, pad, shift, rnd, bias, dst, add, lo, hi, accm, tzero)
                ns[part] += a
                sats[part] += s
    return ns.sum(), sats.sum()
