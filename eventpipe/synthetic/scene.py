"""The stage the actors move on: textured background, a distracting blob, lighting flicker.

All randomness comes from the ``numpy.random.Generator`` passed to
:func:`sample_scene`; rendering is a pure function of the scene and time.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

#: subpixel bits for cv2 drawing (coordinates are multiplied by 2**SHIFT)
SHIFT = 4
_ONE = 1 << SHIFT


def pt(x: float, y: float) -> tuple[int, int]:
    """A subpixel point for cv2 drawing calls made with ``shift=SHIFT``."""
    return int(round(x * _ONE)), int(round(y * _ONE))


def sub(v: float) -> int:
    return max(int(round(v * _ONE)), 0)


@dataclasses.dataclass(frozen=True)
class Distractor:
    """A blob bouncing inside the frame at constant speed."""

    x0: float
    y0: float
    vx: float  # px/s
    vy: float
    radius: float
    intensity: int

    def position(self, t_s: float, w: int, h: int) -> tuple[float, float]:
        return _bounce(self.x0 + self.vx * t_s, w), _bounce(self.y0 + self.vy * t_s, h)


def _bounce(v: float, size: int) -> float:
    """Reflect ``v`` into ``[0, size - 1]`` (a triangle wave)."""
    span = max(size - 1, 1)
    v = math.fmod(abs(v), 2 * span)
    return 2 * span - v if v > span else v


@dataclasses.dataclass(frozen=True)
class Scene:
    sensor_size: tuple[int, int]
    background: np.ndarray  # (H, W) uint8
    mean_intensity: float
    flicker_amp: float       # relative amplitude of the global lighting change
    flicker_hz: float
    flicker_phase: float
    distractors: tuple[Distractor, ...]


def sample_scene(rng: np.random.Generator, sensor_size=(128, 128)) -> Scene:
    """Random smooth texture (mean 60-140), flicker up to 6 %, 0-1 distracting blob."""
    w, h = sensor_size
    mean = float(rng.uniform(60, 140))
    contrast = float(rng.uniform(8, 35))
    cells = int(rng.integers(3, 9))
    coarse = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    fine = rng.normal(0.0, 0.25, (h, w)).astype(np.float32)
    tex = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + cv2.GaussianBlur(fine, (0, 0), 1.0)
    bg = np.clip(mean + contrast * tex, 1, 254).astype(np.uint8)
    distractors = []
    if rng.random() < 0.6:
        speed = rng.uniform(10, 40) * min(w, h) / 128
        ang = rng.uniform(0, 2 * math.pi)
        sign = 1 if rng.random() < 0.5 else -1
        distractors.append(Distractor(
            x0=float(rng.uniform(0, w - 1)), y0=float(rng.uniform(0, h - 1)),
            vx=float(speed * math.cos(ang)), vy=float(speed * math.sin(ang)),
            radius=float(rng.uniform(1.5, 4.0) * min(w, h) / 128),
            intensity=int(np.clip(mean + sign * rng.uniform(25, 60), 5, 250))))
    return Scene((w, h), bg, mean, float(rng.uniform(0.0, 0.06)), float(rng.uniform(0.3, 4.0)),
                 float(rng.uniform(0, 2 * math.pi)), tuple(distractors))


def draw_stage(scene: Scene, t_s: float) -> np.ndarray:
    """A fresh uint8 copy of the background with the distractors at time ``t_s``."""
    img = scene.background.copy()
    w, h = scene.sensor_size
    for d in scene.distractors:
        x, y = d.position(t_s, w, h)
        cv2.circle(img, pt(x, y), sub(d.radius), int(d.intensity), -1, cv2.LINE_AA, SHIFT)
    return img


def light(scene: Scene, img: np.ndarray, t_s: float) -> np.ndarray:
    """Apply the global lighting flicker; returns uint8."""
    if scene.flicker_amp == 0:
        return img
    gain = 1.0 + scene.flicker_amp * math.sin(2 * math.pi * scene.flicker_hz * t_s + scene.flicker_phase)
    return cv2.convertScaleAbs(img, alpha=gain)
