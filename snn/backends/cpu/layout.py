"""Memory layout of the CPU fast path: 64-byte aligned arrays, weight packing for the gather
kernels (:class:`Gather`), active lists (:class:`Spikes`), channels-last views of the model's
tensors, scratch buffers (:class:`Workspace`).  No module-level mutable state: caches live on the
objects that own them."""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor

from .modules import Pointwise
from .spikeconv import SpikeConv2d

_F32 = np.float32
_ALIGN = 64  # bytes: weight rows, taps and output rows start on cache lines

# L2 budget (bytes) for the block of weight rows a gather kernel sweeps at a time
WEIGHT_BLOCK_BYTES = 4 << 20
# below this size (~20-50 us of work) a gather runs on the calling thread: waking the pool costs
# ~10 us per call
SERIAL_GATHER = 1 << 19  # dense-equivalent multiply-adds / 10 of a gather

WEIGHT_PRECISIONS = ("fp32", "bf16")


def no_f32(ndim: int = 4) -> np.ndarray:
    """A placeholder float32 array for a kernel argument that the call does not use."""
    return np.zeros((1,) * ndim, np.float32)


def no_i16() -> np.ndarray:
    return np.zeros((1, 1, 1, 1), np.int16)


def no_i32() -> np.ndarray:
    return np.zeros((1, 1, 1, 1), np.int32)


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dt = np.dtype(dtype)
    n = dt.itemsize
    for d in shape:
        n *= d
    buf = np.empty(n + _ALIGN, np.uint8)
    o = -buf.__array_interface__["data"][0] % _ALIGN
    return buf[o:o + n].view(dt).reshape(shape)


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def packed_f32(t: Tensor) -> np.ndarray:
    return _aligned_copy(t.detach().to(torch.float32).contiguous().numpy())


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even (finite inputs)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return _aligned_copy(u.astype(np.uint16))




def conv_params(mod) -> tuple:
    """(weight [Co, Ci/g, k, k] or [Co, Ci/g, k], bias [Co] or None, groups) of a (folded) conv or
    :class:`~snn.backends.cpu.modules.Pointwise` / :class:`~snn.backends.cpu.spikeconv.SpikeConv2d`."""
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


class Workspace:
    """Scratch arrays reused across steps, per (name, shape, thread): only for buffers that never
    leave a runner call (active lists, depthwise outputs, GEMM inputs)."""

    def __init__(self) -> None:
        self._bufs: dict = {}

    def get(self, name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        key = (name, shape, threading.get_ident())
        a = self._bufs.get(key)
        if a is None:
            if len(self._bufs) >= 256:  # many threads / shapes over time: start over
                self._bufs.clear()
            a = self._bufs[key] = aligned_empty(shape, dtype)
        return a


class Gather:
    """A conv / linear fed by spikes: ``w3[ky*Ci + c, kx, :Co] = W[:, c, ky, kx]`` (the K taps
    of one kernel row and input channel as one contiguous row; stride 1: taps in reverse order,
    Cp = Co, other strides: each tap padded to Cp = Co rounded up to 16 floats; 64-byte aligned
    array; one more row of zeros pads short groups of rows), the bias
    and the input-channel block size ``cs`` that its input's active lists must use."""

    def __init__(self, mod, stride: int = 1, pad: int = 0, precision: str = "fp32") -> None:
        w, b, g = conv_params(mod)
        if g != 1:
            raise ValueError("Gather needs an ungrouped conv")
        if precision not in WEIGHT_PRECISIONS:
            raise ValueError(f"precision must be one of {WEIGHT_PRECISIONS}, got {precision!r}")
        co, ci, K, K2 = w.shape
        if K != K2:
            raise ValueError("Gather needs a square kernel")
        self.K, self.Ci, self.Co = K, ci, co
        self.stride, self.pad = stride, pad
        # stride 1: the "flat" layout (taps in reverse order, unpadded: Cp = Co) whatever Co is - one
        # long contiguous loop per input pixel beats K short ones even when rows are not 64-byte aligned
        cp = co if stride == 1 else -(-co // 16) * 16
        w3 = torch.zeros(K * ci + 1, K, cp, dtype=torch.float32)  # last row: zeros
        wp = w.permute(2, 1, 3, 0).to(torch.float32)  # [ky, c, kx, o]
        if stride == 1 and cp == co:  # "flat" kernels (see _scatter_flat): taps in reverse order
            wp = wp.flip(2)
        w3[:-1].view(K, ci, K, cp)[..., :co] = wp
        self.w3 = packed_f32(w3) if precision == "fp32" else to_bf16_bits(w3.numpy())
        self.bias = packed_f32(b) if b is not None else np.zeros(co, _F32)
        self.cs = block_size(K, co, ci)
        self.nb = -(-ci // self.cs)
        self._hw: dict = {}

    def out_hw(self, H: int, W: int):
        hw = self._hw.get((H, W))
        if hw is None:
            hw = self._hw[(H, W)] = ((H + 2 * self.pad - self.K) // self.stride + 1,
                                     (W + 2 * self.pad - self.K) // self.stride + 1)
        return hw

    def threads(self, n_in: int, nth: int) -> int:
        """Threads for a call over n_in input pixels (serial below ~0.1 ms of work)."""
        return nth if n_in * self.Ci * self.Co * self.K * self.K // (10 * self.stride * self.stride) \
            >= SERIAL_GATHER else 1


class Spikes:
    """Active lists of a spike map ``[T, B, H, W, C]``: idx [T, B, P, C] int16, off [T, B, P, nb+1]."""

    __slots__ = ("idx", "off", "H", "W", "cs")

    def __init__(self, idx, off, H, W, cs):
        self.idx, self.off, self.H, self.W, self.cs = idx, off, H, W, cs


# axis orders: channels first <-> channels last, for [B, C, *spatial] (by ndim)
_TO_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1)}
_TO_FIRST = {3: (0, 2, 1), 4: (0, 3, 1, 2)}


def to_nhwc(x: Tensor) -> np.ndarray:
    """[T, B, C, H, W] (any memory layout) -> float32 numpy [T, B, H*W, C] (no copy if channels-last)."""
    T, B, C = x.shape[:3]
    if not x.requires_grad:
        a = x.numpy().transpose(0, 1, 3, 4, 2)  # numpy views: cheaper than torch ops
        if a.flags.c_contiguous:
            return a.reshape(T, B, -1, C)
    return x.detach().movedim(2, -1).contiguous().numpy().reshape(T, B, -1, C)


def from_nhwc(a: np.ndarray, H: int, W: int) -> Tensor:
    """float32 numpy [T, B, H*W, C] -> logical [T, B, C, H, W] view."""
    T, B, P, C = a.shape
    return torch.from_numpy(a.reshape(T, B, H, W, C).transpose(0, 1, 4, 2, 3))

