"""Runners of the CPU fast path: each runs one block of a folded model (``repconv="chain"``, LIF
neurons) event-driven through the kernels of :mod:`.kernels` / :mod:`.dense_kernels`, reading and
writing neuron state through the model's :class:`~snn.state.StepContext`.

* :class:`FastDownsampling`: (LIF ->) strided conv as a gather (raw frames: a zero-skipping conv);
* :class:`FastConvBlock`: ``MS_ConvBlock`` - gathers, the depthwise 7x7 dense, one GEMM;
* :class:`FastTransformerBlock`: ``MS_Block`` with ``sdsa3`` - Q/K/V from one fused chain, the
  attention in one kernel (:func:`~.dense_kernels.sdsa3_lif`), the MLP as gathers.

Membranes and recorded spikes are returned in the model's usual logical shapes (``[B, C, H, W]``,
``[B, C, N]``) as views of channels-last memory, so states pass freely between a runner and the
folded block it replaces.  Each runner counts its calls (``calls``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from ...neurons import LIFNode, LIFState
from .dense_kernels import depthwise, sdsa3_lif
from .kernels import dense_input_conv, gather_conv, lif_csr
from .layout import (Gather, Spikes, Workspace, aligned_empty, conv_params, from_nhwc, no_f32, no_i16, no_i32,
                     packed_f32, to_nhwc)
from .threads import ThreadSync

_F32 = np.float32

# below these sizes (~20-50 us of work) a kernel runs on the calling thread: waking the pool costs
# ~10 us per call
SERIAL_LIF = 1 << 17  # elements of a LIF pass
SERIAL_DW = 1 << 18  # multiply-adds of a depthwise conv
# SepConv depthwise 7x7 on maps of at least this many pixels, single-threaded: the library conv
DW_LIBRARY_PIXELS = 16 * 16

# axis orders: channels first <-> channels last, for [B, C, *spatial] (by ndim)
_TO_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1)}
_TO_FIRST = {3: (0, 2, 1), 4: (0, 3, 1, 2)}


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
    def to_spikes(self, ctx, ws: Workspace, x: np.ndarray, logical: tuple, cs: int, hw: tuple, nth: int) -> Spikes:
        """LIF over the membrane input x [T, B, P, C] -> active lists (blocks of cs channels)."""
        T, B, P, C = x.shape
        v = self.v_in(ctx, B, P, C, logical)
        vout = np.empty((B, P, C), _F32)
        nb = -(-C // cs)
        idx = ws.get(self.key + ".idx", (T, B, P, C), np.int16)
        off = ws.get(self.key + ".off", (T, B, P, nb + 1), np.int32)
        rec = ctx.spikes is not None
        spk = np.empty((T, B, P, C), _F32) if rec else no_f32()
        lif_csr(x, v, vout, *self.args, cs, idx, off, spk, rec, nth if x.size >= SERIAL_LIF else 1)
        self.v_out(ctx, vout, logical)
        if rec:
            self.record(ctx, spk, logical)
        return Spikes(idx, off, hw[0], hw[1], cs)


def run_gather(g: Gather, s: Spikes, T: int, B: int, res: Optional[np.ndarray] = None,
               ctx=None, neuron: Optional[Neuron] = None, out_cs: int = 0, dense: bool = False,
               logical: tuple = (), ws: Optional[Workspace] = None, nth: int = 1, out=None):
    """Apply ``g`` to the active lists ``s``; optionally add ``res`` and feed the result to
    ``neuron`` (returning its spikes as active lists with block size ``out_cs`` or, with ``dense``,
    as a 0/1 map).  Returns ``(out, spikes)`` where out is the pre-activation [T, B, Ho*Wo, Co]
    (a fresh array unless ``out`` is given; with a neuron, the spikes live in ``ws``)."""
    if s.cs != g.cs:
        raise ValueError(f"active lists in blocks of {s.cs} channels; this gather needs {g.cs}")
    if nth < 1:
        raise ValueError(f"nth must be >= 1, got {nth}")
    Ho, Wo = g.out_hw(s.H, s.W)
    P = Ho * Wo
    Co = g.Co
    if out is None:
        out = aligned_empty((T, B, P, Co))
    use_res = res is not None
    nth = g.threads(T * B * s.H * s.W, nth)
    if neuron is None:
        gather_conv(s.idx, s.off, s.H, s.W, g.w3, g.K, g.stride, g.pad, g.bias,
                    res if use_res else no_f32(), use_res, out, False, no_f32(3), no_f32(3),
                    _F32(2.0), _F32(1.0), False, True, 1, no_i16(), no_i32(), no_f32(), False, False, nth)
        return out, None
    if ws is None:
        ws = Workspace()
    v = neuron.v_in(ctx, B, P, Co, logical)
    vout = np.empty((B, P, Co), _F32)
    rec = ctx.spikes is not None
    want_dense = dense or rec
    if rec:
        spk = np.empty((T, B, P, Co), _F32)
    elif dense:
        spk = ws.get(neuron.key + ".spk", (T, B, P, Co))
    else:
        spk = no_f32()
    if dense:
        idx2, off2, cs2 = no_i16(), no_i32(), 1
    else:
        cs2 = out_cs
        idx2 = ws.get(neuron.key + ".idx", (T, B, P, Co), np.int16)
        off2 = ws.get(neuron.key + ".off", (T, B, P, -(-Co // cs2) + 1), np.int32)
    gather_conv(s.idx, s.off, s.H, s.W, g.w3, g.K, g.stride, g.pad, g.bias,
                res if use_res else no_f32(), use_res, out, True, v, vout, *neuron.args,
                cs2, idx2, off2, spk, not dense, want_dense, nth)
    neuron.v_out(ctx, vout, logical)
    if rec:
        neuron.record(ctx, spk, logical)
    if dense:
        return out, spk
    return out, Spikes(idx2, off2, Ho, Wo, cs2)


class FastDownsampling:
    """(LIF ->) strided conv (BN folded) as a gather over active inputs."""

    def __init__(self, m, precision: str = "fp32", threads: Optional[ThreadSync] = None) -> None:
        self.threads = threads if threads is not None else ThreadSync()
        self.calls = 0
        conv = m.encode_conv
        inner = getattr(conv, "conv", conv)
        self.g = Gather(conv, inner.stride[0], inner.padding[0], precision)
        self.neuron = Neuron(m.encode_lif) if m.encode_lif is not None else None
        self.conv = conv
        self.ws = Workspace()

    def __call__(self, x: Tensor, ctx) -> Tensor:
        nth = self.threads()
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

    def __init__(self, m, precision: str = "fp32", threads: Optional[ThreadSync] = None) -> None:
        self.threads = threads if threads is not None else ThreadSync()
        self.calls = 0
        sep = m.Conv
        self.lif_a = Neuron(sep.lif1)
        self.lif_b = Neuron(sep.lif2)
        self.lif_c = Neuron(m.lif1)
        self.lif_d = Neuron(m.lif2)
        self.pw1 = Gather(sep.pwconv1, precision=precision)
        wd, bd, gd = conv_params(sep.dwconv)
        if sep.dwconv.bias is not None or gd != wd.shape[0] or sep.dwconv.stride[0] != 1:
            raise ValueError("unexpected depthwise conv")
        self.dw = packed_f32(wd[:, 0].permute(1, 2, 0))  # [K, K, C]
        self.dw_t = wd.to(torch.float32).contiguous()  # [C, 1, K, K] for the library depthwise conv
        self.dw_pad = sep.dwconv.padding[0]
        w2, b2, _ = conv_params(sep.pwconv2)
        w2 = w2[:, :, 0, 0]  # [C, 2C]
        b2 = b2 if b2 is not None else torch.zeros(w2.shape[0])
        self.pw2 = torch.from_numpy(packed_f32(torch.cat([w2.t(), b2[None]], 0)))  # [2C + 1, C]: bias row
        self.pw2_w, self.pw2_b = self.pw2[:-1], self.pw2[-1]
        self.conv1 = Gather(m.conv1, 1, 1, precision)
        self.conv2 = Gather(m.conv2, 1, 1, precision)
        self.ws = Workspace()

    def __call__(self, x: Tensor, ctx) -> Tensor:
        nth = self.threads()
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
        self.dw = packed_f32(wd[:, 0].permute(1, 2, 0))  # [3, 3, G*mid]
        wp, bp, groups = conv_params(pw)
        self.groups = groups
        co = wp.shape[0] // groups
        mid = wp.shape[1]
        self.mid, self.co = mid, co
        wp = wp[:, :, 0, 0].reshape(groups, co, mid)
        bp = bp.reshape(groups, co) if bp is not None else torch.zeros(groups, co)
        # per group [mid + 1, co] with the bias as the last row
        self.pw = [torch.from_numpy(packed_f32(torch.cat([wp[j].t(), bp[j][None]], 0))) for j in range(groups)]
        self.pw_w = torch.stack([p[:-1] for p in self.pw])  # [G, mid, co]
        self.pw_b = torch.stack([p[-1] for p in self.pw])[:, None, :]  # [G, 1, co]

    def __call__(self, s: Spikes, T: int, B: int, ws: Workspace, nth: int, res: Optional[np.ndarray] = None):
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


class DenseKernels:
    """Folded dense 3x3 attention convs (``attn_conv="dense"`` models): each group (Q, K, V; or the
    projection) gathered on the spikes like the conv blocks' 3x3 convs; the same call shape as
    :class:`Chain` (a list of one ``[T*B*P, co]`` array per group)."""

    def __init__(self, conv: nn.Conv2d, groups: int, name: str, precision: str = "fp32") -> None:
        co = conv.out_channels // groups
        self.name, self.co = name, co
        self.gs = []
        for j in range(groups):
            part = nn.Conv2d(conv.in_channels, co, 3, padding=1, bias=True)
            part.weight = nn.Parameter(conv.weight[j * co:(j + 1) * co].detach().clone(), requires_grad=False)
            part.bias = nn.Parameter(conv.bias[j * co:(j + 1) * co].detach().clone(), requires_grad=False)
            self.gs.append(Gather(part, 1, 1, precision))
        self.g = self.gs[0]  # the spikes' block size (.cs) is the same for every group

    def __call__(self, s: Spikes, T: int, B: int, ws: Workspace, nth: int, res: Optional[np.ndarray] = None):
        P = s.H * s.W
        outs = []
        for j, g in enumerate(self.gs):
            out, _ = run_gather(g, s, T, B, res=res, nth=nth, out=ws.get(f"{self.name}.{j}", (T, B, P, self.co)))
            outs.append(out.reshape(-1, self.co))
        return outs


class FastTransformerBlock:
    """MS_Block with sdsa3: x + proj(SN(Q (K^T V) / 8)); x + MLP(x); Q/K/V from one fused chain."""

    def __init__(self, m, precision: str = "fp32", threads: Optional[ThreadSync] = None) -> None:
        self.threads = threads if threads is not None else ThreadSync()
        self.calls = 0
        a = m.attn
        self.heads = a.num_heads
        self.scale = float(a.scale)
        self.lif_h = Neuron(a.head_lif)
        self.lif_q, self.lif_k, self.lif_v = Neuron(a.q_lif), Neuron(a.k_lif), Neuron(a.v_lif)
        self.lif_attn = Neuron(a.attn_lif)
        if isinstance(a.qkv_conv, nn.Conv2d):  # dense attention convs (attn_conv="dense")
            self.qkv, self.proj = DenseKernels(a.qkv_conv, 3, "qkv", precision), DenseKernels(a.proj_conv, 1, "proj",
                                                                                             precision)
        else:
            self.qkv = Chain(a.qkv_conv, "qkv", precision)
            self.proj = Chain(a.proj_conv, "proj", precision)
        mlp = m.mlp
        self.lif_f1, self.lif_f2 = Neuron(mlp.fc1_lif), Neuron(mlp.fc2_lif)
        self.fc1 = Gather(mlp.fc1_conv, precision=precision)
        self.fc2 = Gather(mlp.fc2_conv, precision=precision)
        self.ws = Workspace()

    def _attention(self, ctx, ws: Workspace, q, k, v, lg: tuple, hw: tuple) -> Spikes:
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
        sq, sk, sv, sa = ((np.empty((T, B, P, C), _F32) for _ in range(4)) if rec else (no_f32(),) * 4)
        sdsa3_lif(q, k, v, vq, vqo, vk, vko, vv, vvo, nq.args, nk.args, nv.args, self.heads,
                  _F32(self.scale), va, vao, na.args, cs2, idx2, off2, rec, sq, sk, sv, sa)
        for n, vo, sr, lgn in ((nq, vqo, sq, lg), (nk, vko, sk, lg), (nv, vvo, sv, lg), (na, vao, sa, la)):
            n.v_out(ctx, vo, lgn)
            if rec:
                n.record(ctx, sr, lgn)
        return Spikes(idx2, off2, hw[0], hw[1], cs2)

    def __call__(self, x: Tensor, ctx) -> Tensor:
        nth = self.threads()
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

