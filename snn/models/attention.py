"""Spike-driven self-attention (SDSA) token mixers with RepConv-generated spike Q/K/V.

Modes
-----
``sdsa3`` (official V2, default):  ``SN_0.5(Q @ (K^T @ V) * 0.125)`` per head.
``sdsa1`` (V1 column-sum form):   ``Q * SN_0.5(sum_tokens(K * V))`` per channel.
``sdsa2``:                         ``Q @ (K^T @ V) * 0.125`` without the output neuron
                                   (the V2 paper's linear variant; no official code to pin it).
"""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import NeuronFactory, RepConv, _tb
from .state import StepContext

ATTN_MODES = ("sdsa1", "sdsa2", "sdsa3")


class SpikeDrivenSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, neuron: NeuronFactory, mode: str = "sdsa3",
                 scale: float = 0.125) -> None:
        super().__init__()
        if mode not in ATTN_MODES:
            raise ValueError(f"unknown attention mode {mode!r}; choose one of {ATTN_MODES}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.mode, self.scale = dim, num_heads, mode, scale
        self.head_lif = neuron()
        self.q_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.k_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.v_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.q_lif = neuron()
        self.k_lif = neuron()
        self.v_lif = neuron()
        self.attn_lif = neuron(attention=True) if mode != "sdsa2" else None
        self.proj_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.qkv_conv = None  # set by snn.models.fold

    def _heads(self, s: Tensor) -> Tensor:
        # [T, B, C, H, W] spikes -> [T, B, heads, N, d]
        T, B, C = s.shape[:3]
        d = C // self.num_heads
        return s.flatten(3).transpose(-1, -2).reshape(T, B, -1, self.num_heads, d).permute(0, 1, 3, 2, 4)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        T, B, C, H, W = x.shape
        x = ctx.run(self.head_lif, x)
        if self.qkv_conv is not None:  # folded inference path: one fused conv
            q, k, v = _tb(self.qkv_conv, x).chunk(3, dim=2)
        else:
            q, k, v = _tb(self.q_conv, x), _tb(self.k_conv, x), _tb(self.v_conv, x)
        q = ctx.run(self.q_lif, q)
        k = ctx.run(self.k_lif, k)
        v = ctx.run(self.v_lif, v)
        if self.mode == "sdsa1":
            kv = (k * v).flatten(3).sum(-1, keepdim=True)  # [T, B, C, 1]
            kv = ctx.run(self.attn_lif, kv)
            y = q * kv.unsqueeze(-1)
        else:
            qh, kh, vh = self._heads(q), self._heads(k), self._heads(v)
            y = (qh @ (kh.transpose(-2, -1) @ vh)) * self.scale  # [T, B, heads, N, d]
            y = y.transpose(3, 4).reshape(T, B, C, H * W)
            if self.attn_lif is not None:
                y = ctx.run(self.attn_lif, y)
            y = y.reshape(T, B, C, H, W)
        return _tb(self.proj_conv, y)
