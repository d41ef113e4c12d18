"""Seeded augmentation for event clips (event level) and model-resolution count frames.

Frame augmentations work on the counts the input recipe made (at the model input
size) and give counts of the same size back; the recipe's normalisation follows.

Flips swap labels through the class names (``left``<->``right``,
``up``<->``down``, ``clockwise``<->``anticlockwise``/``counter_clockwise``);
a class whose mirrored name is not a class is never flipped on that axis.
"""

from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from eventpipe.training.config import AugmentConfig

_H_SWAPS = [("left", "right")]
_V_SWAPS = [("up", "down")]
_ROT = re.compile(r"(anti_?clockwise|counter_?clockwise|clockwise)")


def _swap_tokens(name: str, pairs) -> str:
    out = name
    for a, b in pairs:
        out = re.sub(rf"(?<![a-z]){a}(?![a-z])|(?<![a-z]){b}(?![a-z])",
                     lambda m, a=a, b=b: b if m.group(0) == a else a, out)
    return out


def flip_label_map(class_names: Sequence[str], axis: str) -> np.ndarray:
    """``map[i]`` = label of class ``i`` mirrored on ``axis`` ("h" or "v"), -1 if that is no class."""
    names = [str(n) for n in class_names]
    index = {n: i for i, n in enumerate(names)}
    out = np.full(len(names), -1, np.int64)
    for i, n in enumerate(names):
        m = _swap_tokens(n, _H_SWAPS if axis == "h" else _V_SWAPS)
        rot = _ROT.search(m)
        if rot:
            # the mirrored rotation: try the spellings the dataset uses
            cands = []
            s = rot.group(0)
            if s == "clockwise":
                cands = [m[:rot.start()] + alt + m[rot.end():] for alt in ("anticlockwise", "anti_clockwise",
                                                                           "counter_clockwise", "counterclockwise")]
            else:
                cands = [m[:rot.start()] + "clockwise" + m[rot.end():]]
            j = next((index[c] for c in cands if c in index), -1)
        else:
            j = index.get(m, -1)
        out[i] = j
    return out


#: class names whose direction words name a motion (reversed when the clip plays backwards);
#: elsewhere "left"/"right" name a place (``wave_left_hand``) and stay
_MOTION = re.compile(r"(?<![a-z])(swipe|slide|move|moving|scroll|rotate|turn)(?![a-z])")


def time_reverse_map(class_names: Sequence[str]) -> np.ndarray:
    """``map[i]`` = label of class ``i`` played backwards, -1 if that is no class: a rotation
    swaps its direction, a motion class (``swipe_*``, ``move_*``, ...) swaps left<->right and
    up<->down; any other class (waves, claps, jumps, pushes, idle) keeps its label."""
    names = [str(n) for n in class_names]
    index = {n: i for i, n in enumerate(names)}
    out = np.arange(len(names), dtype=np.int64)
    for i, n in enumerate(names):
        m = n
        if _MOTION.search(n):
            m = _swap_tokens(n, _H_SWAPS + _V_SWAPS)
        rot = _ROT.search(m)
        if rot:
            s = rot.group(0)
            alts = (("anticlockwise", "anti_clockwise", "counter_clockwise", "counterclockwise")
                    if s == "clockwise" else ("clockwise",))
            out[i] = next((index[c] for c in (m[:rot.start()] + a + m[rot.end():] for a in alts)
                           if c in index), -1)
        elif m != n:
            out[i] = index.get(m, -1)
    return out


def reverse_frames(x: torch.Tensor) -> torch.Tensor:
    """Frames ``[T, 2, H, W]`` played backwards: the window order reversed and the two channels
    swapped (OFF<->ON: a brightening seen backwards is a darkening; ``halves``: the second half
    comes first).  With windows at a regular stride this is exactly the windowing of the
    time-reversed event stream."""
    if x.dim() < 4 or x.shape[-3] != 2:
        raise ValueError(f"reverse_frames needs [T, 2, H, W] frames, got {tuple(x.shape)}")
    return x.flip(0).flip(-3)


def resize_frames(x: torch.Tensor, size) -> torch.Tensor:
    """Resize ``[..., H, W]`` float frames to ``size = (W, H)`` (area when shrinking,
    bilinear when growing): a random crop back to the input size."""
    w, h = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    lead = x.shape[:-2]
    y = x.reshape(-1, 1, *x.shape[-2:])
    if y.shape[-2] >= h and y.shape[-1] >= w:
        y = F.interpolate(y, size=(h, w), mode="area")
    else:
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
    return y.reshape(*lead, h, w)


def thin_counts(x: torch.Tensor, max_drop: float, rng: np.random.Generator) -> torch.Tensor:
    """Event drop on count frames: keep each counted event with probability ``1 - U(0, max_drop)``
    (binomial thinning, seeded from ``rng``)."""
    keep = 1.0 - rng.uniform(0.0, max_drop)
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return torch.binomial(x, torch.full_like(x, keep), generator=g)


class FrameAugment:
    """Augment model-resolution count frames ``(T, C, H, W)`` (float tensor) and the label
    (crops are resized back to ``(H, W)``); deterministic per (seed, epoch, index)."""

    def __init__(self, cfg: AugmentConfig, class_names: Sequence[str], seed: int = 0):
        self.cfg = cfg
        self.hmap = flip_label_map(class_names, "h")
        self.vmap = flip_label_map(class_names, "v")
        self.rmap = time_reverse_map(class_names)
        self.seed = int(seed)
        self.epoch = 0

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __call__(self, x: torch.Tensor, label: int, rng: np.random.Generator):
        c = self.cfg
        if not c.enabled:
            return x, label
        if c.event_drop > 0:
            x = thin_counts(x, c.event_drop, rng)
        H, W = x.shape[-2:]
        lo, hi = c.crop_scale
        s = rng.uniform(lo, hi)
        a = math.exp(rng.uniform(-c.crop_aspect, c.crop_aspect))
        ch = int(round(min(H, H * s * math.sqrt(a))))
        cw = int(round(min(W, W * s / math.sqrt(a))))
        y0 = int(rng.integers(0, H - ch + 1))
        x0 = int(rng.integers(0, W - cw + 1))
        x = x[..., y0:y0 + ch, x0:x0 + cw]
        if c.hflip > 0 and rng.random() < c.hflip and self.hmap[label] >= 0:
            x = torch.flip(x, dims=(-1,))
            label = int(self.hmap[label])
        if c.vflip > 0 and rng.random() < c.vflip and self.vmap[label] >= 0:
            x = torch.flip(x, dims=(-2,))
            label = int(self.vmap[label])
        if c.time_reverse > 0 and rng.random() < c.time_reverse and self.rmap[label] >= 0:
            x = reverse_frames(x)
            label = int(self.rmap[label])
        return resize_frames(x, (W, H)), label


def augment_run(x: torch.Tensor, y: np.ndarray, aug: AugmentConfig, hmap: np.ndarray,
                rng: np.random.Generator) -> torch.Tensor:
    """A training run's windows ``x`` ``[T, C, H, W]`` with per-window targets ``y`` (IGNORE < 0):
    events thinned (``event_drop``), then mirrored left-right with probability ``hflip`` where every
    target has a mirror class (``hmap``; ``y`` is relabelled in place)."""
    if aug.event_drop > 0:
        x = thin_counts(x, aug.event_drop, rng)
    if aug.hflip > 0 and rng.random() < aug.hflip:
        valid = y >= 0
        if np.all(hmap[y[valid]] >= 0):
            x = torch.flip(x, dims=(-1,))
            y[valid] = hmap[y[valid]]
    return x


def augment_events(ev: np.ndarray, label: int, sensor_size, cfg: AugmentConfig, hmap, vmap,
                   rng: np.random.Generator):
    """Event-level augmentation: drop, time jitter, flips (label-swapped).  Crop happens on frames."""
    if not cfg.enabled or len(ev) == 0:
        return ev, label
    ev = ev.copy()
    W, H = int(sensor_size[0]), int(sensor_size[1])
    if cfg.event_drop > 0:
        keep = rng.random(len(ev)) >= rng.uniform(0.0, cfg.event_drop)
        ev = ev[keep]
    if cfg.time_jitter_us > 0 and len(ev):
        t = ev["t"].astype(np.int64) + np.round(rng.normal(0, cfg.time_jitter_us, len(ev))).astype(np.int64)
        t = np.maximum(t, 0)
        order = np.argsort(t, kind="stable")
        ev = ev[order]
        ev["t"] = t[order]
    if cfg.hflip > 0 and rng.random() < cfg.hflip and hmap[label] >= 0:
        ev["x"] = (W - 1) - ev["x"].astype(np.int64)
        label = int(hmap[label])
    if cfg.vflip > 0 and rng.random() < cfg.vflip and vmap[label] >= 0:
        ev["y"] = (H - 1) - ev["y"].astype(np.int64)
        label = int(vmap[label])
    return ev, label


def random_crop_frames(x: torch.Tensor, cfg: AugmentConfig, rng: Optional[np.random.Generator]):
    """A random crop (when ``rng``) resized back to the frames' ``(H, W)``; no rng: ``x``."""
    if rng is None or not cfg.enabled:
        return x
    H, W = x.shape[-2:]
    s = rng.uniform(*cfg.crop_scale)
    ch, cw = max(1, int(round(H * s))), max(1, int(round(W * s)))
    y0 = int(rng.integers(0, H - ch + 1))
    x0 = int(rng.integers(0, W - cw + 1))
    return resize_frames(x[..., y0:y0 + ch, x0:x0 + cw], (W, H))
