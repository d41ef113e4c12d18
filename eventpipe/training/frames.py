"""Clip -> frame helpers shared by the training datasets.

``bin_clip`` turns events into exactly ``T`` count frames ``(T, 2, H, W)`` of
``window_us`` each from ``t0``; ``resize_frames`` area-resizes to the model
input (mean counts per output pixel, so the density does not depend on the
sensor resolution); ``represent`` maps counts to the network input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from eventpipe.events import as_events
from eventpipe.kernels import to_frames


def bin_clip(events, sensor_size, t0: int, T: int, window_us: int, clip_count: int = 255) -> np.ndarray:
    """``(T, 2, H, W)`` uint8 counts (saturating at ``clip_count``) of windows
    ``[t0 + k*window_us, t0 + (k+1)*window_us)``, k = 0..T-1."""
    ev = as_events(events)
    W, H = int(sensor_size[0]), int(sensor_size[1])
    out = np.zeros((T, 2, H, W), np.uint8)
    if len(ev) == 0:
        return out
    fr = to_frames(ev, (W, H), time_window=int(window_us), start_time=int(t0),
                   end_time=int(t0) + T * int(window_us), include_incomplete=False,
                   clip=int(min(clip_count, 255)), dtype=np.int16)
    n = min(T, fr.shape[0])
    out[:n] = fr[:n]
    return out


def resize_frames(x: torch.Tensor, size) -> torch.Tensor:
    """Area-resize ``[..., H, W]`` float frames to ``size = (H, W)``."""
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    lead = x.shape[:-2]
    y = x.reshape(-1, 1, *x.shape[-2:])
    if y.shape[-2] >= h and y.shape[-1] >= w:
        y = F.interpolate(y, size=(h, w), mode="area")
    else:
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
    return y.reshape(*lead, h, w)


def represent(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Counts (float) -> network input: ``log`` = log1p, ``binary`` = count > 0.25, ``counts``."""
    if kind == "log":
        return torch.log1p(x)
    if kind == "binary":
        return (x > 0.25).to(x.dtype)
    if kind == "counts":
        return x
    raise ValueError(f"unknown representation {kind!r}")


def to_channels(fr: np.ndarray, channels: str) -> np.ndarray:
    """Binned counts -> model channels.  ``polarity``: ``(T, 2, H, W)`` unchanged.  ``halves``:
    ``fr`` holds ``2T`` half-windows ``(2T, 2, H, W)``; returns ``(T, 2, H, W)`` whose channel 0/1
    is the ON+OFF count of the first/second half of each window (uint8, saturating)."""
    if channels == "polarity":
        return fr
    if channels == "halves":
        n = fr.shape[0] // 2
        merged = fr[: 2 * n].astype(np.uint16).sum(1)               # (2n, H, W)
        out = merged.reshape(n, 2, *fr.shape[-2:])
        return np.minimum(out, 255).astype(np.uint8)
    raise ValueError(f"unknown channels {channels!r}")


def model_frames(events, sensor_size, t0: int, T: int, window_us: int, input_size,
                 representation: str = "log", channels: str = "polarity",
                 clip_count: int = 255) -> torch.Tensor:
    """Events -> the model input ``[T, 2, H, W]`` float32 exactly as training builds it
    (bin from ``t0``, channels, area-resize to ``input_size``, representation).  A runtime
    reads the arguments from the checkpoint: ``meta["T"]``, ``meta["input_size"]`` and
    ``meta["extra"]`` (``window_us``, ``representation``, ``channels``, ``clip_count``)."""
    if channels == "halves":
        fr = to_channels(bin_clip(events, sensor_size, t0, 2 * T, window_us // 2, clip_count), channels)
    else:
        fr = bin_clip(events, sensor_size, t0, T, window_us, clip_count)
    x = resize_frames(torch.from_numpy(fr.astype(np.float32)), input_size)
    return represent(x, representation).contiguous()


def center_start(n_windows: int, T: int) -> int:
    return max(0, (n_windows - T) // 2)
