"""Lowering: a Meta-SpikeFormer (eval, unfolded) -> a float graph of chip ops.

The graph has the ops of :mod:`~snn.backends.chip.program` with float64 weights (BatchNorms folded,
each RepConv collapsed into one dense 3x3 conv, the Q/K/V convs fused into one 3C conv) and the
float thresholds; :mod:`~snn.backends.chip.quantise` turns it into integers.  Every part of the
model the chip cannot express raises :class:`~snn.backends.chip.errors.CompileError` naming it.

Buffers: ``frame`` (integer counts), ``input`` (codes), one stream per stage (the membrane
shortcut, written by several convs), and per layer a current, a spike map or a graded map.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import numpy as np
from torch import nn

from ...models.attention import SpikeDrivenSelfAttention
from ...models.blocks import ConvBlock, Downsampling, SepConv, TransformerBlock
from ...models.metaspikeformer import STAGES
from ...neurons import LIFNode, SpikingNeuron
from ._fold import fold_attn_conv, fold_conv_bn
from .errors import CompileError
from .program import Op, conv_out_hw


@dataclasses.dataclass
class Graph:
    ops: List[Op]
    buffers: Dict[str, Tuple[int, int, int]]
    kinds: Dict[str, str]          # buffer -> "count" | "graded" | "current" | "spike"
    output: str


def _f64(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class _Lowerer:
    def __init__(self, in_shape: Tuple[int, int, int]):
        self.ops: List[Op] = []
        self.buffers: Dict[str, Tuple[int, int, int]] = {"frame": in_shape}
        self.kinds: Dict[str, str] = {"frame": "count"}

    def buf(self, name: str, shape, kind: str) -> str:
        if name in self.buffers and self.buffers[name] != tuple(shape):
            raise CompileError(name, f"buffer shape {shape} clashes with {self.buffers[name]}")
        self.buffers[name] = tuple(int(s) for s in shape)
        self.kinds[name] = kind
        return name

    # ------------------------------------------------------------------ ops
    def lif(self, neurons, name: str, src: str, in_shift: int = 0) -> str:
        thresholds = []
        keys = []
        for n in neurons:
            check_neuron(n, getattr(n, "state_key", "") or name)
            keys.append(n.state_key or name)
        c, h, w = self.buffers[src]
        per = c // len(neurons)
        for n in neurons:
            thresholds += [n.v_threshold] * per
        dst = self.buf(name, (c, h, w), "spike")
        self.ops.append(Op("lif", name, src, dst, {"state": name, "in_shift": in_shift, "float_keys": keys},
                           {"threshold": np.array(thresholds, np.float64)}))
        return dst

    def conv(self, name: str, src: str, dst: str, weight: np.ndarray, bias: np.ndarray | None,
             stride: int, pad: int, groups: int, mode: str, dst_kind: str = "current") -> str:
        ci, h, w = self.buffers[src]
        co, cig, kh, kw = weight.shape
        if kh != kw:
            raise CompileError(name, f"non-square kernel {kh}x{kw}")
        if cig * groups != ci:
            raise CompileError(name, f"weight expects {cig * groups} input channels, the input has {ci}")
        ho, wo = conv_out_hw(h, w, kh, stride, pad)
        if ho < 1 or wo < 1:
            raise CompileError(name, f"input {h}x{w} is too small for a {kh}x{kh}/{stride} conv")
        if mode == "add":
            if self.buffers.get(dst) != (co, ho, wo):
                raise CompileError(name, f"adds {(co, ho, wo)} into {dst} of shape {self.buffers.get(dst)}")
        else:
            self.buf(dst, (co, ho, wo), dst_kind)
        src_kind = "spike" if self.kinds[src] == "spike" else "graded"
        b = np.zeros(co) if bias is None else bias
        self.ops.append(Op("conv", name, src, dst, {"kernel": kh, "stride": stride, "pad": pad, "groups": groups,
                                                    "mode": mode, "src_kind": src_kind},
                           {"weight": weight, "bias": b}))
        return dst

    def torch_conv(self, name: str, conv: nn.Module, src: str, dst: str, mode: str, dst_kind="current") -> str:
        if not isinstance(conv, (nn.Conv1d, nn.Conv2d)):
            raise CompileError(name, f"expected a convolution, found {type(conv).__name__}")
        w = _f64(conv.weight)
        if w.ndim == 3:  # Conv1d over tokens: a 1x1 conv on the token map
            if conv.kernel_size[0] != 1:
                raise CompileError(name, "Conv1d over tokens must have kernel 1")
            w = w[:, :, :, None]
        stride = conv.stride[0]
        pad = conv.padding[0] if not isinstance(conv.padding, str) else None
        if pad is None or conv.dilation[0] != 1 or len(set(conv.stride)) != 1 or len(set(conv.padding)) != 1:
            raise CompileError(name, "only square stride/padding without dilation are supported")
        if getattr(conv, "padding_mode", "zeros") != "zeros":
            raise CompileError(name, f"padding mode {conv.padding_mode!r} (only zeros)")
        b = _f64(conv.bias) if conv.bias is not None else None
        return self.conv(name, src, dst, w, b, stride, pad, conv.groups, mode, dst_kind)


def check_neuron(n, name: str) -> None:
    """Only tau = 2, decay-input, hard-reset LIF neurons map onto ``h = (v + x) >> 1``."""
    if not isinstance(n, SpikingNeuron):
        raise CompileError(name, f"expected a spiking neuron, found {type(n).__name__}")
    if not isinstance(n, LIFNode):
        raise CompileError(name, f"neuron {type(n).__name__} is not a LIF neuron (graded/multi-spike "
                                 "outputs are not binary events)")
    if n.tau != 2.0:
        raise CompileError(name, f"LIF tau={n.tau}: only tau=2 is a shift (h = (v + x) >> 1)")
    if not n.decay_input:
        raise CompileError(name, "LIF with decay_input=False is not supported")
    if n.soft_reset:
        raise CompileError(name, "soft-reset LIF is not supported (the chip resets to 0)")
    if not n.v_threshold > 0:
        raise CompileError(name, f"threshold {n.v_threshold} must be > 0")


def _downsampling(lw: _Lowerer, m, name: str, src: str) -> str:
    if not isinstance(m, Downsampling):
        raise CompileError(name, f"expected a Downsampling, found {type(m).__name__}")
    if m.encode_lif is not None:
        src = lw.lif([m.encode_lif], f"{name}.encode_lif", src)
    conv = fold_conv_bn(m.encode_conv, m.encode_bn)
    return lw.torch_conv(f"{name}.encode_conv", conv, src, name, "set", "current")


def _convblock(lw: _Lowerer, m, name: str, stream: str) -> None:
    if not isinstance(m, ConvBlock):
        raise CompileError(name, f"expected a ConvBlock, found {type(m).__name__}")
    sep = m.Conv
    if not isinstance(sep, SepConv):
        raise CompileError(f"{name}.Conv", f"expected a SepConv, found {type(sep).__name__}")
    p = f"{name}.Conv"
    s = lw.lif([sep.lif1], f"{p}.lif1", stream)
    cur = lw.torch_conv(f"{p}.pwconv1", fold_conv_bn(sep.pwconv1, sep.bn1), s, f"{p}.pwconv1", "set")
    s = lw.lif([sep.lif2], f"{p}.lif2", cur)
    dw = sep.dwconv
    if dw.bias is not None:
        raise CompileError(f"{p}.dwconv", "the depthwise conv has a bias (the official one has none)")
    g = lw.torch_conv(f"{p}.dwconv", dw, s, f"{p}.dwconv", "set", "graded")
    lw.torch_conv(f"{p}.pwconv2", fold_conv_bn(sep.pwconv2, sep.bn2), g, stream, "add")
    s = lw.lif([m.lif1], f"{name}.lif1", stream)
    cur = lw.torch_conv(f"{name}.conv1", fold_conv_bn(m.conv1, m.bn1), s, f"{name}.conv1", "set")
    s = lw.lif([m.lif2], f"{name}.lif2", cur)
    lw.torch_conv(f"{name}.conv2", fold_conv_bn(m.conv2, m.bn2), s, stream, "add")


def _transformer(lw: _Lowerer, m, name: str, stream: str) -> None:
    if not isinstance(m, TransformerBlock):
        raise CompileError(name, f"expected a TransformerBlock, found {type(m).__name__}")
    a = m.attn
    p = f"{name}.attn"
    if not isinstance(a, SpikeDrivenSelfAttention):
        raise CompileError(p, f"token mixer {type(a).__name__} is not spike-driven self-attention")
    if a.mode != "sdsa3":
        raise CompileError(p, f"attention mode {a.mode!r}: the chip runs SDSA-3 (Q (K^T V) -> neuron)")
    if getattr(a, "qkv_conv", None) is not None or not hasattr(a, "q_conv"):
        raise CompileError(p, "the attention is already folded; pass the unfolded model")
    s = lw.lif([a.head_lif], f"{p}.head_lif", stream)
    convs = [fold_attn_conv(seq) for seq in (a.q_conv, a.k_conv, a.v_conv)]
    w = np.concatenate([_f64(c.weight) for c in convs])
    b = np.concatenate([_f64(c.bias) for c in convs])
    cur = lw.conv(f"{p}.qkv_conv", s, f"{p}.qkv_conv", w, b, 1, 1, 1, "set")
    qkv = lw.lif([a.q_lif, a.k_lif, a.v_lif], f"{p}.qkv_lif", cur)
    c, h, wd = lw.buffers[stream]
    y = lw.buf(f"{p}.attn", (c, h, wd), "graded")
    lw.ops.append(Op("attn", f"{p}.attn", qkv, y, {"heads": a.num_heads, "scale": float(a.scale)}, {}))
    s = lw.lif([a.attn_lif], f"{p}.attn_lif", y)
    proj = fold_attn_conv(a.proj_conv)
    lw.conv(f"{p}.proj_conv", s, stream, _f64(proj.weight), _f64(proj.bias), 1, 1, 1, "add")
    mlp = m.mlp
    q = f"{name}.mlp"
    s = lw.lif([mlp.fc1_lif], f"{q}.fc1_lif", stream)
    cur = lw.torch_conv(f"{q}.fc1_conv", fold_conv_bn(mlp.fc1_conv, mlp.fc1_bn), s, f"{q}.fc1_conv", "set")
    s = lw.lif([mlp.fc2_lif], f"{q}.fc2_lif", cur)
    lw.torch_conv(f"{q}.fc2_conv", fold_conv_bn(mlp.fc2_conv, mlp.fc2_bn), s, stream, "add")


def _head(lw: _Lowerer, model, stream: str) -> str:
    c, h, w = lw.buffers[stream]
    pooled = lw.buf("head.pool", (c, 1, 1), "graded")
    lw.ops.append(Op("pool", "head.pool", stream, pooled, {"n": h * w}, {}))
    z = lw.lif([model.lif], "lif", pooled)
    heads = [(model.head, z if model.head_input == "spikes" else pooled)]
    if model.head_kd is not None:  # eval: (head + head_kd) / 2
        heads.append((model.head_kd, z))
    if not isinstance(model.head, nn.Linear):
        raise CompileError("head", f"expected a Linear head, found {type(model.head).__name__}")
    k = len(heads)
    if k == 2 and heads[0][1] == heads[1][1]:  # both on spikes: one conv with the mean weights
        lin = [m for m, _ in heads]
        wgt = sum(_f64(m.weight) for m in lin) / 2
        bias = sum(_f64(m.bias) for m in lin) / 2
        heads, k = [(None, z)], 1
        lw.conv("head", z, "logits", wgt[:, :, None, None], bias, 1, 0, 1, "set", "current")
        return "logits"
    for i, (lin, src) in enumerate(heads):
        lw.conv("head" if i == 0 else "head_kd", src, "logits", _f64(lin.weight)[:, :, None, None] / k,
                _f64(lin.bias) / k, 1, 0, 1, "set" if i == 0 else "add", "current")
    return "logits"


def lower(model, input_size: Tuple[int, int]) -> Graph:
    """Lower ``model`` for frames of ``input_size = (W, H)``."""
    if getattr(model, "is_folded", False):
        raise CompileError("model", "the model is already folded; pass the unfolded model (the compiler folds it)")
    for name in STAGES + ("lif", "head"):
        if not hasattr(model, name):
            raise CompileError(name, f"the model has no {name!r} (not a Meta-SpikeFormer?)")
    W, H = int(input_size[0]), int(input_size[1])
    lw = _Lowerer((int(model.in_channels), H, W))
    c_in = model.in_channels
    lw.buf("input", (c_in, H, W), "graded")
    lw.ops.append(Op("input", "input", "frame", "input", {}, {}))
    x = "input"
    for stage in STAGES:
        mod = getattr(model, stage)
        if isinstance(mod, nn.ModuleList):
            for i, blk in enumerate(mod):
                nm = f"{stage}.{i}"
                if isinstance(blk, ConvBlock):
                    _convblock(lw, blk, nm, x)
                elif isinstance(blk, TransformerBlock):
                    _transformer(lw, blk, nm, x)
                else:
                    raise CompileError(nm, f"unknown block {type(blk).__name__}")
        else:
            x = _downsampling(lw, mod, stage, x)
    out = _head(lw, model, x)
    return Graph(lw.ops, lw.buffers, lw.kinds, out)
