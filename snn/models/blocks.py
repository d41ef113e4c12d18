"""Blocks of Meta-SpikeFormer (Spike-driven Transformer V2), in the MetaFormer shape.

A block is ``x + token_mixer(x)`` followed by ``x + channel_mlp(x)`` (membrane shortcuts); the
token mixer is passed in, as timm's ``MetaFormerBlock`` takes it: the conv stages mix tokens with
a :class:`SepConv`, the transformer stages with
:class:`~snn.models.attention.SpikeDrivenSelfAttention` (or any module with the same call).

Every block maps a sequence ``[T, B, C, H, W]`` to a sequence and threads neuron state through a
:class:`~snn.state.StepContext`.  Convolutions and BatchNorms see ``T * B`` frames at once (so
BatchNorm statistics in training run over T*B, as in the official code).  Submodule names match
the official checkpoint keys so released weights load strictly.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..state import StepContext
from .layers import NeuronFactory, per_frame

__all__ = ["ChannelMLP", "ConvBlock", "Downsampling", "SepConv", "TransformerBlock"]


class SepConv(nn.Module):
    """Spiking inverted separable conv (the conv stages' token mixer):
    LIF -> 1x1 -> BN -> LIF -> dw kxk -> 1x1 -> BN."""

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
        x = per_frame(lambda z: self.bn1(self.pwconv1(z)), x)
        x = ctx.run(self.lif2, x)
        return per_frame(lambda z: self.bn2(self.pwconv2(self.dwconv(z))), x)


class ConvBlock(nn.Module):
    """Official ``MS_ConvBlock``: x + token_mixer(x) (a :class:`SepConv` unless given), then a spiking
    3x3 conv channel MLP with shortcut.  (The mixer's attribute name, ``Conv``, is the official key.)"""

    def __init__(self, dim: int, neuron: NeuronFactory, mlp_ratio: int = 4, sep_expansion: float = 2,
                 sep_kernel: int = 7, token_mixer: Optional[nn.Module] = None) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.Conv = token_mixer if token_mixer is not None else SepConv(dim, neuron, sep_expansion, sep_kernel)
        self.lif1 = neuron()
        self.conv1 = nn.Conv2d(dim, hidden, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.lif2 = neuron()
        self.conv2 = nn.Conv2d(hidden, dim, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        x = self.Conv(x, ctx) + x
        y = per_frame(lambda z: self.bn1(self.conv1(z)), ctx.run(self.lif1, x))
        y = per_frame(lambda z: self.bn2(self.conv2(z)), ctx.run(self.lif2, y))
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
        if self.encode_lif is not None:
            x = ctx.run(self.encode_lif, x)
        return per_frame(lambda z: self.encode_bn(self.encode_conv(z)), x)


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
        x = per_frame(lambda z: self.fc1_bn(self.fc1_conv(z)), x)
        x = ctx.run(self.fc2_lif, x)
        x = per_frame(lambda z: self.fc2_bn(self.fc2_conv(z)), x)
        return x.reshape(T, B, C, H, W)


class TransformerBlock(nn.Module):
    """Official ``MS_Block``: x + token_mixer(x), then x + mlp(x) (membrane shortcuts).

    ``token_mixer`` and ``mlp`` are modules called as ``f(x, ctx)``; the network passes a
    :class:`~snn.models.attention.SpikeDrivenSelfAttention` and a :class:`ChannelMLP` (attribute
    names ``attn`` / ``mlp``: the official keys)."""

    def __init__(self, token_mixer: nn.Module, mlp: nn.Module) -> None:
        super().__init__()
        self.attn = token_mixer
        self.mlp = mlp

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        x = x + self.attn(x, ctx)
        return x + self.mlp(x, ctx)
