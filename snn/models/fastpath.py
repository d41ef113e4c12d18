"""Event-driven fast path of a folded Meta-SpikeFormer (CPU, float32, inference only).

Almost every convolution / linear layer of the model reads a binary spike map (firing rates
~0.1), so its output is ``bias + sum of the weight rows of the active inputs``.  This module runs
the folded model that way, with every activation kept token-major (``[T, B, H, W, C]``, channels
innermost) so that a weight row ``W[ky, kx, c_in, :]`` is one contiguous vector:

* a LIF pass reads the membrane input and the old membrane, writes the new membrane and a compact
  list of the active channels of every pixel (CSR; no spike map is stored unless recorded);
* a gather kernel sums, for every output pixel, the weight rows of the active inputs in its
  receptive field (3x3 / 7x7 / 1x1, any stride), blocked over input channels so that the weight
  block stays in L2, and - where the next op is a LIF neuron - applies that neuron to the finished
  output row while it is in L1 (the pre-activation map is never written);
* the non-spike parts (depthwise convs of the SepConv / RepConv chains, their dense pointwise
  GEMMs, the attention products Q (K^T V) of binary matrices) run dense.

Arithmetic: the LIF update is the one of :mod:`snn.neurons._fused` (bit-identical); sums are the
same terms as the dense convs in another order (float32 rounding differs at the 1e-7 level).  The
attention products are integer-valued and exact.  Membranes and recorded spikes are returned in
the model's usual logical shapes (``[B, C, H, W]``, ...) as views of channels-last memory.

Kernels are numba (``parallel=True``; work split over output rows).  Eligible: CPU float32 input
without autograd, LIF neurons, ``sdsa3`` attention, ``repconv="chain"`` folding.  Everything else
takes the module's ordinary folded path.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ..neurons import LIFNode, LIFState

try:
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except Exception:  # pragma: no cover
    HAVE_NUMBA = False

# L2 budget (bytes) for the block of weight rows a gather kernel sweeps at a time
WEIGHT_BLOCK_BYTES = 4 << 20


if HAVE_NUMBA:

    @njit(cache=True, nogil=True, inline="always")
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

    @njit(cache=True, nogil=True, inline="always")
    def _compact(sp, cs, idx, off):  # pragma: no cover - jitted
        # active channels of one pixel, in ascending order, with block boundaries every cs channels
        C = sp.shape[0]
        nb = off.shape[0] - 1
        m = 0
        for k in range(nb):
            off[k] = m
            hi = min(C, (k + 1) * cs)
            for c in range(k * cs, hi):
                idx[m] = c
                m += sp[c]
        off[nb] = m

    @njit(cache=True, nogil=True, parallel=True)
    def lif_csr(x, v, vout, tau, vth, soft, decay_input, cs, idx, off, spk, rec, nth):  # pragma: no cover
        """LIF over x [T, B, P, C] from v [B, P, C]; new membrane -> vout; active lists -> idx/off
        [T, B, P, C] / [T, B, P, nb+1]; spikes (0/1 float) -> spk [T, B, P, C] when rec."""
        T, B, P, C = x.shape
        R = B * P
        nblk = min(R, 4 * nth)
        for blk in prange(nblk):
            lo = blk * R // nblk
            hi = (blk + 1) * R // nblk
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

    @njit(cache=True, nogil=True)
    def _tap_table(W, K, stride, pad, Wo):  # pragma: no cover - jitted
        # oxt[ix, kx] = the output column that input column ix reaches through tap kx, or -1
        oxt = np.empty((W, K), np.int64)
        for ix in range(W):
            for kx in range(K):
                tx = ix + pad - kx
                ox = tx // stride
                oxt[ix, kx] = ox if (tx >= 0 and tx % stride == 0 and ox < Wo) else -1
        return oxt

    @njit(cache=True, nogil=True, inline="always")
    def _scatter_pixel(acc, w3, ii, j0, j1, rbase, oxs, K):  # pragma: no cover - jitted
        # input pixel (iy, ix) with active channels ii[j0:j1] -> output row acc [Wo, Co]:
        # acc[ox] += w3[rbase + c, kx*Co:(kx+1)*Co] for every tap kx with ox = oxs[kx] >= 0
        Co = acc.shape[1]
        j = j0
        while j + 8 <= j1:
            r0 = w3[rbase + ii[j]]
            r1 = w3[rbase + ii[j + 1]]
            r2 = w3[rbase + ii[j + 2]]
            r3 = w3[rbase + ii[j + 3]]
            r4 = w3[rbase + ii[j + 4]]
            r5 = w3[rbase + ii[j + 5]]
            r6 = w3[rbase + ii[j + 6]]
            r7 = w3[rbase + ii[j + 7]]
            for kx in range(K):
                ox = oxs[kx]
                if ox < 0:
                    continue
                a = acc[ox]
                s0 = kx * Co
                for o in range(Co):
                    a[o] += ((r0[s0 + o] + r1[s0 + o]) + (r2[s0 + o] + r3[s0 + o])) + \
                        ((r4[s0 + o] + r5[s0 + o]) + (r6[s0 + o] + r7[s0 + o]))
            j += 8
        while j + 4 <= j1:
            r0 = w3[rbase + ii[j]]
            r1 = w3[rbase + ii[j + 1]]
            r2 = w3[rbase + ii[j + 2]]
            r3 = w3[rbase + ii[j + 3]]
            for kx in range(K):
                ox = oxs[kx]
                if ox < 0:
                    continue
                a = acc[ox]
                s0 = kx * Co
                for o in range(Co):
                    a[o] += (r0[s0 + o] + r1[s0 + o]) + (r2[s0 + o] + r3[s0 + o])
            j += 4
        while j < j1:
            r0 = w3[rbase + ii[j]]
            for kx in range(K):
                ox = oxs[kx]
                if ox < 0:
                    continue
                a = acc[ox]
                s0 = kx * Co
                for o in range(Co):
                    a[o] += r0[s0 + o]
            j += 1

    @njit(cache=True, nogil=True, parallel=True)
    def gather_conv(idx, off, H, W, w3, K, stride, pad, bias, res, use_res, out, lif, v, vout, tau, vth,
                    soft, decay_input, cs2, idx2, off2, spk2, want_csr, want_dense, nth):  # pragma: no cover
        """out[t, b, oy, ox, :] = bias (+ res) + sum over the inputs (t, b, iy, ix, c) listed in
        idx/off (active channels per pixel, in channel blocks) of w3[ky*Ci + c, kx*Co:(kx+1)*Co].

        out [T, B, Ho*Wo, Co], work split over output rows; for each output row the input rows
        are swept once per tap row ky, each active input adding its K contiguous taps.  With
        ``lif``: each finished output pixel goes through a LIF neuron (membrane v -> vout,
        [B, Ho*Wo, Co]); its spikes are written as active lists (idx2/off2, block size cs2) when
        want_csr and/or as a 0/1 float map into spk2 when want_dense.
        """
        T, B, P_out, Co = out.shape
        Ci = w3.shape[0] // K
        Wo = (W + 2 * pad - K) // stride + 1
        Ho = P_out // Wo
        nk = off.shape[3] - 1
        R = B * Ho
        nblk = min(R, nth)
        for blk in prange(nblk):
            lo = blk * R // nblk
            hi = (blk + 1) * R // nblk
            oxt = _tap_table(W, K, stride, pad, Wo)
            for k in range(nk):
                for r in range(lo, hi):
                    b = r // Ho
                    oy = r % Ho
                    for t in range(T):
                        acc = out[t, b, oy * Wo:(oy + 1) * Wo]
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
                                    _scatter_pixel(acc, w3, idx[t, b, p], j0, j1, rbase, oxt[ix], K)
            if lif:
                sp = np.empty(Co, np.uint8)
                for r in range(lo, hi):
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

    @njit(cache=True, nogil=True, parallel=True)
    def dense_input_conv(x, w3, bias, K, stride, pad, out):  # pragma: no cover - jitted
        """Conv of a sparse non-binary input (event frames), skipping zeros: x [N, H, W, Ci],
        w3 [K*Ci, K*Co] (as in :func:`gather_conv`), out [N, Ho, Wo, Co]; work split over rows."""
        N, H, W, Ci = x.shape
        _, Ho, Wo, Co = out.shape
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
                            s0 = kx * Co
                            for o in range(Co):
                                a[o] += val * wr[s0 + o]

    @njit(cache=True, nogil=True, parallel=True)
    def depthwise(x, w, out, aug):  # pragma: no cover - jitted
        """Depthwise KxK conv, stride 1, zero padding K//2: x [N, H, W, C], w [K, K, C],
        out [N, H, W, C + aug] (with aug, the last column is set to 1 - a bias column for a GEMM).
        The K taps of a kernel row are summed in one expression (K = 3, 7) so the output row is
        read and written once per kernel row."""
        N, H, W, C = x.shape
        K = w.shape[0]
        pad = K // 2
        R = N * H
        for r in prange(R):
            n = r // H
            y = r % H
            for xx in range(W):
                o = out[n, y, xx]
                for c in range(C):
                    o[c] = 0.0
                interior = xx - pad >= 0 and xx - pad + K <= W
                for ky in range(K):
                    iy = y - pad + ky
                    if iy < 0 or iy >= H:
                        continue
                    wk = w[ky]
                    if interior and K == 7:
                        x0 = x[n, iy, xx - 3]
                        x1 = x[n, iy, xx - 2]
                        x2 = x[n, iy, xx - 1]
                        x3 = x[n, iy, xx]
                        x4 = x[n, iy, xx + 1]
                        x5 = x[n, iy, xx + 2]
                        x6 = x[n, iy, xx + 3]
                        w0 = wk[0]
                        w1 = wk[1]
                        w2 = wk[2]
                        w3 = wk[3]
                        w4 = wk[4]
                        w5 = wk[5]
                        w6 = wk[6]
                        for c in range(C):
                            o[c] += ((w0[c] * x0[c] + w1[c] * x1[c]) + (w2[c] * x2[c] + w3[c] * x3[c])) + \
                                ((w4[c] * x4[c] + w5[c] * x5[c]) + w6[c] * x6[c])
                    elif interior and K == 3:
                        x0 = x[n, iy, xx - 1]
                        x1 = x[n, iy, xx]
                        x2 = x[n, iy, xx + 1]
                        w0 = wk[0]
                        w1 = wk[1]
                        w2 = wk[2]
                        for c in range(C):
                            o[c] += (w0[c] * x0[c] + w1[c] * x1[c]) + w2[c] * x2[c]
                    else:
                        for kx in range(K):
                            ix = xx - pad + kx
                            if ix < 0 or ix >= W:
                                continue
                            xr = x[n, iy, ix]
                            wr = wk[kx]
                            for c in range(C):
                                o[c] += wr[c] * xr[c]
                if aug:
                    o[C] = 1.0

    @njit(cache=True, nogil=True, parallel=True)
    def lif_dense(x, v, vout, tau, vth, soft, decay_input, spk):  # pragma: no cover - jitted
        """LIF over x [T, R, C] from v [R, C]: new membrane -> vout, 0/1 float spikes -> spk."""
        T, R, C = x.shape
        for r in prange(R):
            vo = vout[r]
            vi = v[r]
            for c in range(C):
                vo[c] = vi[c]
            for t in range(T):
                xr = x[t, r]
                sr = spk[t, r]
                for c in range(C):
                    vv = vo[c]
                    xv = xr[c]
                    if decay_input:
                        h = vv + (xv - vv) / tau
                    else:
                        h = vv - vv / tau + xv
                    if h >= vth:
                        sr[c] = 1.0
                        vo[c] = h - vth if soft else 0.0
                    else:
                        sr[c] = 0.0
                        vo[c] = h


_F32 = np.float32
_EMPTY_F = np.zeros((1, 1, 1, 1), np.float32)
_EMPTY_I16 = np.zeros((1, 1, 1, 1), np.int16)
_EMPTY_I32 = np.zeros((1, 1, 1, 1), np.int32)
_EMPTY_V = np.zeros((1, 1, 1), np.float32)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).contiguous().numpy()


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


class Gather:
    """A conv / linear fed by spikes: ``w3[ky*Ci + c] = [W[:, c, ky, 0], ..., W[:, c, ky, K-1]]`` (the K
    taps of one kernel row and input channel as one contiguous row), the bias, and the input-channel
    block size ``cs`` that its input's active lists must use."""

    def __init__(self, mod, stride: int = 1, pad: int = 0) -> None:
        w, b, g = conv_params(mod)
        if g != 1:
            raise ValueError("Gather needs an ungrouped conv")
        co, ci, K, K2 = w.shape
        if K != K2:
            raise ValueError("Gather needs a square kernel")
        self.K, self.Ci, self.Co = K, ci, co
        self.stride, self.pad = stride, pad
        # w3[ky*Ci + c, kx*Co + o] = W[o, c, ky, kx]: the K taps of one (ky, c) are one contiguous row
        self.w3 = _np(w.permute(2, 1, 3, 0).reshape(K * ci, K * co))
        self.bias = _np(b) if b is not None else np.zeros(co, _F32)
        self.cs = block_size(K, co, ci)
        self.nb = -(-ci // self.cs)

    def out_hw(self, H: int, W: int):
        return ((H + 2 * self.pad - self.K) // self.stride + 1, (W + 2 * self.pad - self.K) // self.stride + 1)


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

    def v_in(self, ctx, B: int, spatial: tuple, C: int, logical: tuple) -> np.ndarray:
        """Old membrane as [B, P, C] (zeros at rest); ``logical`` = the frame shape the model uses."""
        st = ctx.prev.get(self.key)
        P = 1
        for d in spatial:
            P *= d
        if st is None:
            return np.zeros((B, P, C), _F32)
        v = st.v
        if tuple(v.shape) != logical:
            raise ValueError(
                f"{self.key}: state shape {tuple(v.shape)} does not match input frame shape {logical}"
            )
        return v.detach().to(torch.float32).movedim(1, -1).contiguous().numpy().reshape(B, P, C)

    def v_out(self, ctx, vout: np.ndarray, B: int, spatial: tuple, C: int) -> None:
        t = torch.from_numpy(vout).view(B, *spatial, C).movedim(-1, 1)
        ctx.new[self.key] = LIFState(t)

    def record(self, ctx, spk: np.ndarray, T: int, B: int, spatial: tuple, C: int) -> None:
        ctx.spikes[self.key] = torch.from_numpy(spk).view(T, B, *spatial, C).movedim(-1, 2)

    # ------------------------------------------------------------------ passes
    def to_spikes(self, ctx, x: np.ndarray, logical: tuple, cs: int, hw: tuple) -> Spikes:
        """LIF over the membrane input x [T, B, P, C] -> active lists (blocks of cs channels)."""
        T, B, P, C = x.shape
        spatial = logical[2:]
        v = self.v_in(ctx, B, spatial, C, logical)
        vout = np.empty_like(v)
        nb = -(-C // cs)
        idx = np.empty((T, B, P, C), np.int16)
        off = np.empty((T, B, P, nb + 1), np.int32)
        rec = ctx.spikes is not None
        spk = np.empty((T, B, P, C), _F32) if rec else _EMPTY_F
        lif_csr(x, v, vout, *self.args, cs, idx, off, spk, rec, _nth())
        self.v_out(ctx, vout, B, spatial, C)
        if rec:
            self.record(ctx, spk, T, B, spatial, C)
        return Spikes(idx, off, hw[0], hw[1], cs)

    def dense(self, ctx, x: np.ndarray, logical: tuple) -> np.ndarray:
        """LIF over x [T, B, P, C] -> 0/1 float spikes [T, B, P, C]."""
        T, B, P, C = x.shape
        spatial = logical[2:]
        v = self.v_in(ctx, B, spatial, C, logical)
        vout = np.empty_like(v)
        spk = np.empty_like(x)
        lif_dense(x.reshape(T, B * P, C), v.reshape(B * P, C), vout.reshape(B * P, C), *self.args,
                  spk.reshape(T, B * P, C))
        self.v_out(ctx, vout, B, spatial, C)
        if ctx.spikes is not None:
            self.record(ctx, spk, T, B, spatial, C)
        return spk


def run_gather(g: Gather, s: Spikes, T: int, B: int, res: Optional[np.ndarray] = None,
               ctx=None, neuron: Optional[Neuron] = None, out_cs: int = 0, dense: bool = False,
               logical: tuple = ()):
    """Apply ``g`` to the active lists ``s``; optionally add ``res`` and feed the result to
    ``neuron`` (returning its spikes as active lists with block size ``out_cs`` or, with ``dense``,
    as a 0/1 map).  Returns ``(out, spikes)`` where out is the pre-activation [T, B, Ho*Wo, Co]."""
    assert s.cs == g.cs, (s.cs, g.cs)
    Ho, Wo = g.out_hw(s.H, s.W)
    P = Ho * Wo
    Co = g.Co
    out = np.empty((T, B, P, Co), _F32)
    use_res = res is not None
    if neuron is None:
        gather_conv(s.idx, s.off, s.H, s.W, g.w3, g.K, g.stride, g.pad, g.bias,
                    res if use_res else _EMPTY_F, use_res, out, False, _EMPTY_V, _EMPTY_V,
                    _F32(2.0), _F32(1.0), False, True, 1, _EMPTY_I16, _EMPTY_I32, _EMPTY_F, False, False, _nth())
        return out, None
    spatial = logical[2:]
    v = neuron.v_in(ctx, B, spatial, Co, logical)
    vout = np.empty_like(v)
    rec = ctx.spikes is not None
    want_dense = dense or rec
    spk = np.empty((T, B, P, Co), _F32) if want_dense else _EMPTY_F
    if dense:
        idx2, off2, cs2 = _EMPTY_I16, _EMPTY_I32, 1
    else:
        cs2 = out_cs
        idx2 = np.empty((T, B, P, Co), np.int16)
        off2 = np.empty((T, B, P, -(-Co // cs2) + 1), np.int32)
    gather_conv(s.idx, s.off, s.H, s.W, g.w3, g.K, g.stride, g.pad, g.bias,
                res if use_res else _EMPTY_F, use_res, out, True, v, vout, *neuron.args,
                cs2, idx2, off2, spk, not dense, want_dense, _nth())
    neuron.v_out(ctx, vout, B, spatial, Co)
    if rec:
        neuron.record(ctx, spk, T, B, spatial, Co)
    if dense:
        return out, spk
    return out, Spikes(idx2, off2, Ho, Wo, cs2)


def to_nhwc(x: Tensor) -> np.ndarray:
    """[T, B, C, H, W] (any memory layout) -> float32 numpy [T, B, H*W, C] (no copy if channels-last)."""
    T, B, C = x.shape[:3]
    return x.detach().movedim(2, -1).contiguous().numpy().reshape(T, B, -1, C)


def from_nhwc(a: np.ndarray, H: int, W: int) -> Tensor:
    """float32 numpy [T, B, H*W, C] -> logical [T, B, C, H, W] view."""
    T, B, P, C = a.shape
    return torch.from_numpy(a).view(T, B, H, W, C).movedim(-1, 2)


def eligible(x: Tensor) -> bool:
    return (
        HAVE_NUMBA
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not (torch.is_grad_enabled() and x.requires_grad)
    )


def _nth() -> int:
    return numba.get_num_threads()


def _sync_threads() -> None:
    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


# ---------------------------------------------------------------------------------------- blocks
class FastDownsampling:
    """(LIF ->) strided conv (BN folded) as a gather over active inputs."""

    def __init__(self, m) -> None:
        conv = m.encode_conv
        inner = getattr(conv, "conv", conv)
        self.g = Gather(conv, inner.stride[0], inner.padding[0])
        self.neuron = Neuron(m.encode_lif) if m.encode_lif is not None else None
        self.conv = conv

    calls = 0

    def __call__(self, x: Tensor, ctx) -> Tensor:
        _sync_threads()
        self.calls += 1
        T, B, C, H, W = x.shape
        g = self.g
        Ho, Wo = g.out_hw(H, W)
        if self.neuron is None:  # raw input frames: any values, usually sparse events
            xs = to_nhwc(x)
            if np.count_nonzero(xs) > 0.3 * xs.size:  # dense input (images): the library conv
                y = self.conv(x.flatten(0, 1))
                return y.view(T, B, *y.shape[1:])
            out = np.empty((T * B, Ho, Wo, g.Co), _F32)
            dense_input_conv(xs.reshape(T * B, H, W, C), g.w3, g.bias, g.K, g.stride, g.pad, out)
            return torch.from_numpy(out).view(T, B, Ho, Wo, g.Co).movedim(-1, 2)
        s = self.neuron.to_spikes(ctx, to_nhwc(x), (B, C, H, W), g.cs, (H, W))
        out, _ = run_gather(g, s, T, B)
        return from_nhwc(out, Ho, Wo)


class FastConvBlock:
    """MS_ConvBlock: x + SepConv(x); then x + conv2(LIF(conv1(LIF(x)))) - all gathers but the
    depthwise 7x7 (dense, on the spike map) and the last SepConv 1x1 (one GEMM)."""

    def __init__(self, m) -> None:
        sep = m.Conv
        self.lif_a = Neuron(sep.lif1)
        self.lif_b = Neuron(sep.lif2)
        self.lif_c = Neuron(m.lif1)
        self.lif_d = Neuron(m.lif2)
        self.pw1 = Gather(sep.pwconv1)
        wd, bd, gd = conv_params(sep.dwconv)
        if sep.dwconv.bias is not None or gd != wd.shape[0] or sep.dwconv.stride[0] != 1:
            raise ValueError("unexpected depthwise conv")
        self.dw = _np(wd[:, 0].permute(1, 2, 0))  # [K, K, C]
        w2, b2, _ = conv_params(sep.pwconv2)
        w2 = w2[:, :, 0, 0]  # [C, 2C]
        b2 = b2 if b2 is not None else torch.zeros(w2.shape[0])
        self.pw2 = torch.from_numpy(_np(torch.cat([w2.t(), b2[None]], 0)))  # [2C + 1, C]: bias row
        self.conv1 = Gather(m.conv1, 1, 1)
        self.conv2 = Gather(m.conv2, 1, 1)

    calls = 0

    def __call__(self, x: Tensor, ctx) -> Tensor:
        _sync_threads()
        self.calls += 1
        T, B, C, H, W = x.shape
        P = H * W
        lg = (B, C, H, W)
        xa = to_nhwc(x)
        s = self.lif_a.to_spikes(ctx, xa, lg, self.pw1.cs, (H, W))
        med = self.pw1.Co
        _, s2 = run_gather(self.pw1, s, T, B, ctx=ctx, neuron=self.lif_b, dense=True, logical=(B, med, H, W))
        t = np.empty((T * B, H, W, med + 1), _F32)
        depthwise(s2.reshape(T * B, H, W, med), self.dw, t, True)
        x2 = np.empty((T, B, P, C), _F32)
        torch.addmm(torch.from_numpy(xa.reshape(-1, C)), torch.from_numpy(t.reshape(-1, med + 1)), self.pw2,
                    out=torch.from_numpy(x2.reshape(-1, C)))
        s = self.lif_c.to_spikes(ctx, x2, lg, self.conv1.cs, (H, W))
        _, s = run_gather(self.conv1, s, T, B, ctx=ctx, neuron=self.lif_d, out_cs=self.conv2.cs,
                          logical=(B, self.conv1.Co, H, W))
        out, _ = run_gather(self.conv2, s, T, B, res=x2)
        return from_nhwc(out, H, W)


class Chain:
    """Folded RepConv chain: 1x1 (gather, on spikes) -> depthwise 3x3 -> grouped 1x1 + bias (GEMMs)."""

    def __init__(self, seq) -> None:
        c1, dw, pw = seq[0], seq[1], seq[2]
        self.g = Gather(c1)
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

    def __call__(self, s: Spikes, T: int, B: int, res: Optional[np.ndarray] = None):
        """Returns a list (one per group) of [T*B*P, co] float32 tensors (contiguous)."""
        u, _ = run_gather(self.g, s, T, B)
        H, W = s.H, s.W
        G, mid = self.groups, self.mid
        P = H * W
        outs = []
        if G == 1:
            t = np.empty((T * B, H, W, mid + 1), _F32)
            depthwise(u.reshape(T * B, H, W, mid), self.dw, t, True)
            t2 = torch.from_numpy(t.reshape(-1, mid + 1))
            if res is not None:
                y = torch.empty(T * B * P, self.co)
                torch.addmm(torch.from_numpy(res.reshape(-1, self.co)), t2, self.pw[0], out=y)
            else:
                y = torch.mm(t2, self.pw[0])
            return [y]
        t = np.empty((T * B, H, W, G * mid), _F32)
        depthwise(u.reshape(T * B, H, W, G * mid), self.dw, t, False)
        t2 = torch.from_numpy(t.reshape(-1, G * mid))
        for j in range(G):
            pw = self.pw[j]
            outs.append(torch.addmm(pw[-1], t2[:, j * mid:(j + 1) * mid], pw[:-1]))
        return outs


class FastTransformerBlock:
    """MS_Block with sdsa3: x + proj(SN(Q (K^T V) / 8)); x + MLP(x); Q/K/V from one fused chain."""

    def __init__(self, m) -> None:
        a = m.attn
        self.heads = a.num_heads
        self.scale = float(a.scale)
        self.lif_h = Neuron(a.head_lif)
        self.lif_q, self.lif_k, self.lif_v = Neuron(a.q_lif), Neuron(a.k_lif), Neuron(a.v_lif)
        self.lif_attn = Neuron(a.attn_lif)
        self.qkv = Chain(a.qkv_conv)
        self.proj = Chain(a.proj_conv)
        mlp = m.mlp
        self.lif_f1, self.lif_f2 = Neuron(mlp.fc1_lif), Neuron(mlp.fc2_lif)
        self.fc1 = Gather(mlp.fc1_conv)
        self.fc2 = Gather(mlp.fc2_conv)

    calls = 0

    def __call__(self, x: Tensor, ctx) -> Tensor:
        _sync_threads()
        self.calls += 1
        T, B, C, H, W = x.shape
        P = H * W
        lg = (B, C, H, W)
        xa = to_nhwc(x)
        s = self.lif_h.to_spikes(ctx, xa, lg, self.qkv.g.cs, (H, W))
        q, k, v = self.qkv(s, T, B)
        q = self.lif_q.dense(ctx, q.numpy().reshape(T, B, P, C), lg)
        k = self.lif_k.dense(ctx, k.numpy().reshape(T, B, P, C), lg)
        v = self.lif_v.dense(ctx, v.numpy().reshape(T, B, P, C), lg)
        nh = self.heads
        d = C // nh
        # [T*B, heads, N, d] views of token-major spikes; Q (K^T V) is integer-valued (exact)
        qh = torch.from_numpy(q).view(T * B, P, nh, d).transpose(1, 2)
        kh = torch.from_numpy(k).view(T * B, P, nh, d).transpose(1, 2)
        vh = torch.from_numpy(v).view(T * B, P, nh, d).transpose(1, 2)
        y = torch.matmul(qh, torch.matmul(kh.transpose(-2, -1), vh)).mul_(self.scale)  # [TB, h, N, d]
        y = y.transpose(1, 2).contiguous().numpy().reshape(T, B, P, C)
        s = self.lif_attn.to_spikes(ctx, y, (B, C, P), self.proj.g.cs, (H, W))
        (x2,) = self.proj(s, T, B, res=xa)
        x2 = x2.numpy().reshape(T, B, P, C)
        s = self.lif_f1.to_spikes(ctx, x2, (B, C, P), self.fc1.cs, (H, W))
        _, s = run_gather(self.fc1, s, T, B, ctx=ctx, neuron=self.lif_f2, out_cs=self.fc2.cs,
                          logical=(B, self.fc1.Co, P))
        out, _ = run_gather(self.fc2, s, T, B, res=x2)
        return from_nhwc(out, H, W)


def install(model) -> int:
    """Attach fast runners to the blocks of a folded model (``repconv="chain"``); returns how many."""
    from .attention import SpikeDrivenSelfAttention
    from .blocks import ConvBlock, Downsampling, TransformerBlock

    if not HAVE_NUMBA:
        return 0
    from ..neurons import SpikingNeuron

    if not all(isinstance(n, LIFNode) for n in model.modules() if isinstance(n, SpikingNeuron)):
        return 0
    n = 0
    for m in model.modules():
        fast = None
        if isinstance(m, Downsampling):
            fast = FastDownsampling(m)
        elif isinstance(m, ConvBlock):
            fast = FastConvBlock(m)
        elif isinstance(m, TransformerBlock):
            a = m.attn
            if isinstance(a, SpikeDrivenSelfAttention) and a.mode == "sdsa3" and a.qkv_conv is not None \
                    and isinstance(a.qkv_conv, torch.nn.Sequential):
                fast = FastTransformerBlock(m)
        if fast is not None:
            object.__setattr__(m, "_fast", fast)
            n += 1
    return n
