"""Layers shared by the blocks of Meta-SpikeFormer: frame-wise application, the BN border pad and
the RepConv chain (official ``BNAndPadLayer`` / ``RepConv``)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import SpikingNeuron

# builds one spiking neuron; ``attention=True`` gives the attention neuron (its own threshold)
NeuronFactory = Callable[..., SpikingNeuron]

__all__ = ["BNAndPad", "NeuronFactory", "RepConv", "per_frame"]


def per_frame(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
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
