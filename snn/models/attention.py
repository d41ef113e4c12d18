"""Spike-driven self-attention (SDSA): the token mixer of the transformer blocks, with RepConv-
generated spike Q/K/V.

Modes
-----
``sdsa3`` (official V2, default):  ``SN_0.5(Q @ (K^T @ V) * 0.125)`` per head.
``sdsa1`` (V1 column-sum form):   ``Q * SN_0.5(sum_tokens(K * V))`` per channel.
``sdsa2``:                         ``Q @ (K^T @ V) * 0.125`` without the output neuron
                                   (the V2 paper's linear variant; no official code to pin it).

The forward pass is three public pieces - :meth:`~SpikeDrivenSelfAttention.project_qkv` (the
membrane inputs of Q, K and V), :meth:`~SpikeDrivenSelfAttention.mix` (neurons and the attention
product) and the output projection - so that a compiled form (e.g. :mod:`snn.compile`'s fused
Q/K/V conv) can replace one piece and keep the others.
"""

from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn

from ..state import StepContext
from .layers import NeuronFactory, RepConv, per_frame

ATTN_MODES = ("sdsa1", "sdsa2", "sdsa3")
#: the Q/K/V and projection convs: ``repconv`` (official: 1x1 -> BN-padded depthwise 3x3 -> 1x1,
#: then BN) or ``dense`` (one 3x3 conv, then BN: RepConv's re-parameterised deployment form, which
#: holds any 3x3 kernel - what a chip snapped to its integer grid needs, ``docs/chip.md``)
ATTN_CONVS = ("repconv", "dense")

__all__ = ["ATTN_CONVS", "ATTN_MODES", "SpikeDrivenSelfAttention"]


def _attn_conv(dim: int, kind: str) -> nn.Sequential:
    if kind == "dense":
        return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim))
    return nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))


class SpikeDrivenSelfAttention(nn.Module):
    """Token mixer ``[T, B, C, H, W] -> [T, B, C, H, W]`` (membrane in, membrane out)."""

    def __init__(self, dim: int, num_heads: int, neuron: NeuronFactory, mode: str = "sdsa3",
                 scale: float = 0.125, conv: str = "repconv") -> None:
        super().__init__()
        if mode not in ATTN_MODES:
            raise ValueError(f"unknown attention mode {mode!r}; choose one of {ATTN_MODES}")
        if conv not in ATTN_CONVS:
            raise ValueError(f"unknown attention conv {conv!r}; choose one of {ATTN_CONVS}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.mode, self.scale = dim, num_heads, mode, scale
        self.head_lif = neuron()
        self.q_conv = _attn_conv(dim, conv)
        self.k_conv = _attn_conv(dim, conv)
        self.v_conv = _attn_conv(dim, conv)
        self.q_lif = neuron()
        self.k_lif = neuron()
        self.v_lif = neuron()
        self.attn_lif = neuron(attention=True) if mode != "sdsa2" else None
        self.proj_conv = _attn_conv(dim, conv)

    def _heads(self, s: Tensor) -> Tensor:
        # [T, B, C, H, W] spikes -> [T, B, heads, N, d]
        T, B, C = s.shape[:3]
        d = C // self.num_heads
        return s.flatten(3).transpose(-1, -2).reshape(T, B, -1, self.num_heads, d).permute(0, 1, 3, 2, 4)

    def project_qkv(self, s: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Membrane inputs of the Q, K and V neurons from the head neuron's spikes ``s``."""
        return per_frame(self.q_conv, s), per_frame(self.k_conv, s), per_frame(self.v_conv, s)

    def mix(self, q: Tensor, k: Tensor, v: Tensor, ctx: StepContext) -> Tensor:
        """Q/K/V neurons and the spike-driven attention product: ``[T, B, C, H, W]`` spikes (or,
        for ``sdsa2``, the product itself) for the output projection."""
        T, B, C, H, W = q.shape
        q = ctx.run(self.q_lif, q)
        k = ctx.run(self.k_lif, k)
        v = ctx.run(self.v_lif, v)
        if self.mode == "sdsa1":
            kv = (k * v).flatten(3).sum(-1, keepdim=True)  # [T, B, C, 1]
            kv = ctx.run(self.attn_lif, kv)
            return q * kv.unsqueeze(-1)
        qh, kh, vh = self._heads(q), self._heads(k), self._heads(v)
        y = (qh @ (kh.transpose(-2, -1) @ vh)) * self.scale  # [T, B, heads, N, d]
        y = y.transpose(3, 4).reshape(T, B, C, H * W)
        if self.attn_lif is not None:
            y = ctx.run(self.attn_lif, y)
        return y.reshape(T, B, C, H, W)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        s = ctx.run(self.head_lif, x)
        return per_frame(self.proj_conv, self.mix(*self.project_qkv(s), ctx))
