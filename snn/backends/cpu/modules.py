"""torch modules of the CPU backend: 1x1 convs as GEMMs, and the wrapper that runs a folded block
through its event-driven runner when the input allows it."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["FastBlock", "Pointwise", "eligible"]


class Pointwise(nn.Module):
    """A (grouped) 1x1 convolution over ``[N, C, *spatial]`` run as a matrix product.

    PyTorch sends small-batch 1x1 convs to a slow im2col path on CPU; a GEMM is several times faster.
    """

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        g = conv.groups
        w = conv.weight.detach().reshape(conv.out_channels, conv.in_channels // g)
        self.groups = g
        self.weight = nn.Parameter(w.reshape(g, conv.out_channels // g, -1).contiguous(), requires_grad=False)
        b = conv.bias.detach() if conv.bias is not None else None
        self.bias = nn.Parameter(b.reshape(g, -1, 1).contiguous(), requires_grad=False) if b is not None else None

    @staticmethod
    def applies_to(m: nn.Module) -> bool:
        """True for a 1x1, stride-1, unpadded Conv1d / Conv2d."""
        return isinstance(m, (nn.Conv1d, nn.Conv2d)) and all(k == 1 for k in m.kernel_size) and \
            all(s == 1 for s in m.stride) and all(p == 0 for p in m.padding)

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        g = self.groups
        xs = x.reshape(n, g, c // g, -1)
        co = self.weight.shape[1]
        y = x.new_empty(n, g, co, xs.shape[-1])
        # one plain GEMM per (frame, group): batched matmul is much slower for these shapes on CPU
        for i in range(n):
            for j in range(g):
                if self.bias is not None:
                    torch.addmm(self.bias[j], self.weight[j], xs[i, j], out=y[i, j])
                else:
                    torch.mm(self.weight[j], xs[i, j], out=y[i, j])
        return y.reshape(n, g * co, *x.shape[2:])


def eligible(x: Tensor) -> bool:
    """Input the event-driven runners take: CPU float32 without autograd."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not (x.requires_grad and torch.is_grad_enabled())
    )


class FastBlock(nn.Module):
    """A folded block with its event-driven runner (:mod:`.runners`): ``forward(x, ctx)`` runs the
    runner on :func:`eligible` input and the folded block (``self.block``, plain torch modules)
    otherwise, e.g. for float64, CUDA or autograd input.  The runner holds its own packed copy of
    the weights (numpy), made when the model was built."""

    def __init__(self, block: nn.Module, runner: Callable) -> None:
        super().__init__()
        self.block = block
        self.runner = runner  # not a Module: its packed weights are not parameters

    def forward(self, x: Tensor, ctx) -> Tensor:
        if eligible(x):
            return self.runner(x, ctx)
        return self.block(x, ctx)

    def extra_repr(self) -> str:
        return f"runner={type(self.runner).__name__}"
