"""Event-driven convolution for spike inputs (inference only).

A conv whose input is a spike map (mostly zeros, small non-negative integers) costs, done densely,
``Ci * H * W * k * k * Co`` multiply-adds whatever the firing rate.  Scattering each non-zero input
``x[ci, y, x]`` as ``x * W[ci, :, :, :]`` into the output costs ``nnz * k * k * Co`` - a small
fraction at typical SNN firing rates.  :class:`SpikeConv2d` measures the density of every input
and takes the scatter path below ``max_density`` on output maps of at most ``max_out_pixels``
pixels (a larger map falls out of cache) with at least ``min_out_channels`` output channels, the
dense conv otherwise.  Single-thread CPU time on this project's 2-core box (3x3, Co >= 160): the
scatter costs ~0.3x the dense conv at density 0.05, ~0.5-0.7x at 0.1, ~1x at 0.2; the dense conv
also uses the second thread, so the default threshold is 0.06.  Results equal the
dense conv up to float summation order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

import numba


@numba.njit(cache=True, nogil=True)
def _scatter_conv(x, wt, bias, stride, pad, Ho, Wo):  # pragma: no cover - jitted
    # x [N, Ci, H, W]; wt [Ci, K, K, Co]; out [N, Ho, Wo, Co]
    N, Ci, H, W = x.shape
    K = wt.shape[1]
    Co = wt.shape[3]
    out = np.empty((N, Ho, Wo, Co), dtype=wt.dtype)
    for n in range(N):
        for oy in range(Ho):
            for ox in range(Wo):
                for o in range(Co):
                    out[n, oy, ox, o] = bias[o]
        for ci in range(Ci):
            for y in range(H):
                for xx in range(W):
                    val = x[n, ci, y, xx]
                    if val == 0:
                        continue
                    for ky in range(K):
                        ty = y + pad - ky
                        if ty < 0 or ty % stride != 0:
                            continue
                        oy = ty // stride
                        if oy >= Ho:
                            continue
                        for kx in range(K):
                            tx = xx + pad - kx
                            if tx < 0 or tx % stride != 0:
                                continue
                            ox = tx // stride
                            if ox >= Wo:
                                continue
                            if val == 1:
                                for o in range(Co):
                                    out[n, oy, ox, o] += wt[ci, ky, kx, o]
                            else:
                                for o in range(Co):
                                    out[n, oy, ox, o] += val * wt[ci, ky, kx, o]
    return out



class SpikeConv2d(nn.Module):
    """Drop-in for an (ungrouped, square-kernel) ``nn.Conv2d`` fed with spikes; eval only."""

    def __init__(self, conv: nn.Conv2d, max_density: float = 0.06, max_out_pixels: int = 4096,
                 min_out_channels: int = 128) -> None:
        super().__init__()
        if conv.groups != 1 or conv.kernel_size[0] != conv.kernel_size[1]:
            raise ValueError("SpikeConv2d needs an ungrouped conv with a square kernel")
        self.conv = conv
        self.stride = conv.stride[0]
        self.padding = conv.padding[0]
        self.max_density = float(max_density)
        # the scatter writes all over the output map: keep it to maps that stay in cache
        self.max_out_pixels = int(max_out_pixels)
        # the scatter adds rows of Co weights: short rows vectorise poorly
        self.min_out_channels = int(min_out_channels)
        w = conv.weight.detach()
        self.register_buffer("wt", w.permute(1, 2, 3, 0).contiguous(), persistent=False)
        b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        self.register_buffer("b", b.contiguous(), persistent=False)
        self.sparse_calls = 0

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.device.type != "cpu"
            or x.dtype != self.wt.dtype
            or (torch.is_grad_enabled() and x.requires_grad)
        ):
            return self.conv(x)
        H, W = x.shape[-2:]
        K = self.wt.shape[1]
        Ho = (H + 2 * self.padding - K) // self.stride + 1
        Wo = (W + 2 * self.padding - K) // self.stride + 1
        if Ho * Wo > self.max_out_pixels or self.wt.shape[-1] < self.min_out_channels:
            return self.conv(x)
        nnz = torch.count_nonzero(x).item()
        if nnz > self.max_density * x.numel():
            return self.conv(x)
        self.sparse_calls += 1
        out = _scatter_conv(x.contiguous().numpy(), self.wt.numpy(), self.b.numpy(), self.stride, self.padding, Ho, Wo)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
