"""Building blocks of Meta-SpikeFormer (Spike-driven Transformer V2).

Every block maps a sequence ``[T, B, C, H, W]`` to a sequence and threads neuron state through a
:class:`~snn.models.state.StepContext`.  Convolutions and BatchNorms see ``T * B`` frames at once
(so BatchNorm statistics in training run over T*B, as in the official code).  Submodule names match
the official checkpoint keys so released weights load strictly.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import SpikingNeuron
from .state import StepContext

NeuronFactory = Callable[..., SpikingNeuron]


def _fast_runner(module: nn.Module, x: Tensor):
    """The event-driven runner installed by ``fold(fast=True)`` if it can take ``x``, else None."""
    fast = module.__dict__.get("_fast")
    if fast is not None:
        from .fastpath import eligible

        if eligible(x):
            return fast
    return None


def _tb(fn, x: Tensor) -> Tensor:
    """Apply a frame-wise op to ``[T, B, ...]`` by flattening T and B."""
    y = fn(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class BNAndPad(nn.Module):
    """BatchNorm2d followed by padding with the BN's response to 0 (official ``BNAndPadLayer``)."""

    def __init__(self, pad_pixels: int, num_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features)
        self.pad_pixels = pad_pixels

    def pad_value(self) -> Tensor:
        bn = self.bn
        std = torch.sqrt(bn.running_var + bn.eps)
        if bn.affine:
            return bn.bias.detach() - bn.running_mean * bn.weight.detach() / std
        return -bn.running_mean / std

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(x)
        p = self.pad_pixels
        if p > 0:
            val = self.pad_value().view(1, -1, 1, 1)
            y = F.pad(y, [p] * 4)
            # fill the border (not in place on a view that autograd needs: build a mask)
            h, w = y.shape[-2:]
            border = torch.ones(h, w, dtype=torch.bool, device=y.device)
            border[p : h - p, p : w - p] = False
            y = torch.where(border, val.to(y.dtype), y)
        return y


class RepConv(nn.Module):
    """1x1 conv -> BN with BN(0) border -> depthwise 3x3 (valid) -> 1x1 conv -> BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            BNAndPad(1, in_channels),
            nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            ),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """Spiking inverted separable conv: LIF -> 1x1 -> BN -> LIF -> dw kxk -> 1x1 -> BN."""

    def __init__(self, dim: int, neuron: NeuronFactory, expansion: float = 2, kernel_size: int = 7) -> None:
        super().__init__()
        med = int(expansion * dim)
        self.lif1 = neuron()
        self.pwconv1 = nn.Conv2d(dim, med, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(med)
        self.lif2 = neuron()
        self.dwconv = nn.Conv2d(med, med, kernel_size, padding=kernel_size // 2, groups=med, bias=False)
        self.pwconv2 = nn.Conv2d(med, dim, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        x = ctx.run(self.lif1, x)
        x = _tb(lambda z: self.bn1(self.pwconv1(z)), x)
        x = ctx.run(self.lif2, x)
        return _tb(lambda z: self.bn2(self.pwconv2(self.dwconv(z))), x)


class ConvBlock(nn.Module):
    """Official ``MS_ConvBlock``: x + SepConv(x), then a spiking 3x3 conv channel MLP with shortcut."""

    def __init__(self, dim: int, neuron: NeuronFactory, mlp_ratio: int = 4, sep_expansion: float = 2,
                 sep_kernel: int = 7) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.Conv = SepConv(dim, neuron, sep_expansion, sep_kernel)
        self.lif1 = neuron()
        self.conv1 = nn.Conv2d(dim, hidden, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.lif2 = neuron()
        self.conv2 = nn.Conv2d(hidden, dim, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        fast = _fast_runner(self, x)
        if fast is not None:
            return fast(x, ctx)
        x = self.Conv(x, ctx) + x
        y = _tb(lambda z: self.bn1(self.conv1(z)), ctx.run(self.lif1, x))
        y = _tb(lambda z: self.bn2(self.conv2(z)), ctx.run(self.lif2, y))
        return x + y


class Downsampling(nn.Module):
    """Official ``MS_DownSampling``: (LIF, except the first layer) -> strided conv -> BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 neuron: NeuronFactory, first_layer: bool = False) -> None:
        super().__init__()
        self.encode_conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.encode_bn = nn.BatchNorm2d(out_channels)
        self.encode_lif = None if first_layer else neuron()

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        fast = _fast_runner(self, x)
        if fast is not None:
            return fast(x, ctx)
        if self.encode_lif is not None:
            x = ctx.run(self.encode_lif, x)
        return _tb(lambda z: self.encode_bn(self.encode_conv(z)), x)


class ChannelMLP(nn.Module):
    """Official ``MS_MLP``: LIF -> 1x1 Conv1d -> BN1d -> LIF -> 1x1 Conv1d -> BN1d over tokens."""

    def __init__(self, dim: int, hidden: int, neuron: NeuronFactory) -> None:
        super().__init__()
        self.fc1_conv = nn.Conv1d(dim, hidden, 1)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc1_lif = neuron()
        self.fc2_conv = nn.Conv1d(hidden, dim, 1)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = neuron()

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        T, B, C, H, W = x.shape
        x = ctx.run(self.fc1_lif, x.flatten(3))
        x = _tb(lambda z: self.fc1_bn(self.fc1_conv(z)), x)
        x = ctx.run(self.fc2_lif, x)
        x = _tb(lambda z: self.fc2_bn(self.fc2_conv(z)), x)
        return x.reshape(T, B, C, H, W)


class TransformerBlock(nn.Module):
    """Official ``MS_Block``: x + SDSA(x), then x + ChannelMLP(x) (membrane shortcuts)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, neuron: NeuronFactory,
                 attn_mode: str = "sdsa3") -> None:
        super().__init__()
        from .attention import SpikeDrivenSelfAttention

        self.attn = SpikeDrivenSelfAttention(dim, num_heads, neuron, mode=attn_mode)
        self.mlp = ChannelMLP(dim, int(dim * mlp_ratio), neuron)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        fast = _fast_runner(self, x)
        if fast is not None:
            return fast(x, ctx)
        x = x + self.attn(x, ctx)
        return x + self.mlp(x, ctx)
