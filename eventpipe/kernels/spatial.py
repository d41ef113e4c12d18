"""Spatial transforms on events: crop/ROI, flips, integer sum pooling, resize policy.

Everything works on event coordinates (one pass, no frames needed): pooling
``x -> x // f`` and then binning equals sum pooling of the frames
(``pool_frames``).  ``SpatialMap`` fits a sensor to a model input:

1. optional ROI crop ``roi = (x0, y0, w, h)`` (default: the whole sensor);
2. optional flips ``flip_x`` / ``flip_y`` (within the ROI);
3. one integer pooling factor ``f`` for both axes (aspect ratio kept):
   ``policy="pad"``  -> ``f = ceil(max(w / W_out, h / H_out))``: the pooled image
   fits inside the output, centred, the border is zero padding (nothing lost);
   ``policy="crop"`` -> ``f = max(1, floor(min(w / W_out, h / H_out)))``: the
   pooled image covers the output and is centre-cropped (events outside are
   dropped and counted); an explicit ``factor`` overrides either;
4. centring offset ``((W_out - ceil(w / f)) // 2, (H_out - ceil(h / f)) // 2)``.

E.g. DAVIS346 346x260 -> 128x128: pad f=3 (116x87, padded), crop f=2 (173x130,
cropped); Prophesee 1280x720 -> 224x224: pad f=6 (214x120), crop f=3 (427x240).
The mapping is plain data: ``SpatialMap.from_config(d)`` / ``.to_config()``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numba import njit

from eventpipe.events import EVENT_DTYPE
from eventpipe.kernels._common import as_event_array, sensor_wh
from eventpipe.kernels.filters import FilterResult


@njit(cache=True, nogil=True)
def _map_events(x, y, t, p, ox_, oy_, ot, op, x0, y0, w, h, flip_x, flip_y, f, ox, oy, W, H):
    """One pass: map coordinates and write the kept events compacted into ``o*``."""
    n = x.shape[0]
    kept = 0
    for i in range(n):
        xi = np.int64(x[i]) - x0
        yi = np.int64(y[i]) - y0
        if xi < 0 or yi < 0 or xi >= w or yi >= h:
            continue
        if flip_x:
            xi = w - 1 - xi
        if flip_y:
            yi = h - 1 - yi
        xi = xi // f + ox
        yi = yi // f + oy
        if xi < 0 or yi < 0 or xi >= W or yi >= H:
            continue
        ox_[kept] = xi
        oy_[kept] = yi
        ot[kept] = t[i]
        op[kept] = p[i]
        kept += 1
    return kept


@dataclasses.dataclass(frozen=True)
class SpatialMap:
    """Sensor -> model input mapping (see module docstring for the policy)."""

    input_size: tuple[int, int]
    output_size: tuple[int, int] | None = None
    policy: str = "pad"
    roi: tuple[int, int, int, int] | None = None
    flip_x: bool = False
    flip_y: bool = False
    factor: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "input_size", sensor_wh(self.input_size))
        if self.output_size is not None:
            object.__setattr__(self, "output_size", sensor_wh(self.output_size))
        if self.policy not in ("pad", "crop"):
            raise ValueError(f"policy must be 'pad' or 'crop', got {self.policy!r}")
        if self.roi is not None:
            x0, y0, w, h = (int(v) for v in self.roi)
            W, H = self.input_size
            if x0 < 0 or y0 < 0 or w <= 0 or h <= 0 or x0 + w > W or y0 + h > H:
                raise ValueError(f"roi {self.roi} does not fit the sensor {self.input_size}")
            object.__setattr__(self, "roi", (x0, y0, w, h))
        if self.factor is not None and int(self.factor) < 1:
            raise ValueError("factor must be >= 1")

    @classmethod
    def from_config(cls, cfg: dict) -> SpatialMap:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown spatial config keys {sorted(unknown)}")
        d = dict(cfg)
        for k in ("input_size", "output_size", "roi"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    def to_config(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("input_size", "output_size", "roi"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @property
    def roi_box(self) -> tuple[int, int, int, int]:
        return self.roi if self.roi is not None else (0, 0, *self.input_size)

    @property
    def pool_factor(self) -> int:
        if self.factor is not None:
            return int(self.factor)
        if self.output_size is None:
            return 1
        _, _, w, h = self.roi_box
        W, H = self.output_size
        if self.policy == "pad":
            return max(1, math.ceil(max(w / W, h / H)))
        return max(1, math.floor(min(w / W, h / H)))

    @property
    def pooled_size(self) -> tuple[int, int]:
        _, _, w, h = self.roi_box
        f = self.pool_factor
        return -(-w // f), -(-h // f)

    @property
    def out_size(self) -> tuple[int, int]:
        """``(W, H)`` of the mapped events (output_size, or the pooled ROI)."""
        return self.output_size if self.output_size is not None else self.pooled_size

    @property
    def offset(self) -> tuple[int, int]:
        pw, ph = self.pooled_size
        W, H = self.out_size
        return (W - pw) // 2, (H - ph) // 2

    def apply(self, events) -> FilterResult:
        """Map event coordinates; events falling outside are dropped and counted."""
        ev = as_event_array(events)
        x0, y0, w, h = self.roi_box
        W, H = self.out_size
        ox, oy = self.offset
        out = np.empty(len(ev), EVENT_DTYPE)
        kept = _map_events(ev["x"], ev["y"], ev["t"], ev["p"], out["x"], out["y"], out["t"],
                           out["p"], x0, y0, w, h, self.flip_x, self.flip_y, self.pool_factor,
                           ox, oy, W, H)
        return FilterResult(out[:kept], len(ev) - int(kept))


def crop(events, roi) -> FilterResult:
    """Keep events inside ``roi = (x0, y0, w, h)``, shifted to the ROI origin."""
    ev = as_event_array(events)
    x0, y0, w, h = (int(v) for v in roi)
    m = (ev["x"] >= x0) & (ev["x"] < x0 + w) & (ev["y"] >= y0) & (ev["y"] < y0 + h)
    res = ev[m]
    res["x"] -= x0
    res["y"] -= y0
    return FilterResult(res, len(ev) - len(res))


def flip_x(events, sensor_size) -> np.ndarray:
    """Mirror left-right (a copy)."""
    W, _ = sensor_wh(sensor_size)
    res = as_event_array(events).copy()
    res["x"] = W - 1 - res["x"]
    return res


def flip_y(events, sensor_size) -> np.ndarray:
    """Mirror top-bottom (a copy)."""
    _, H = sensor_wh(sensor_size)
    res = as_event_array(events).copy()
    res["y"] = H - 1 - res["y"]
    return res


def pool_events(events, factor: int) -> np.ndarray:
    """Integer-factor pooling of coordinates (binning afterwards = sum pooling)."""
    res = as_event_array(events).copy()
    res["x"] //= int(factor)
    res["y"] //= int(factor)
    return res


def pool_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Sum pooling of ``(..., H, W)`` frames by ``factor`` (edges padded with zeros)."""
    f = int(factor)
    H, W = frames.shape[-2:]
    ph, pw = -(-H // f) * f, -(-W // f) * f
    if (ph, pw) != (H, W):
        pad = [(0, 0)] * (frames.ndim - 2) + [(0, ph - H), (0, pw - W)]
        frames = np.pad(frames, pad)
    s = frames.shape[:-2] + (ph // f, f, pw // f, f)
    return frames.reshape(s).sum(axis=(-3, -1), dtype=frames.dtype)
