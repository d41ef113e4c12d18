"""Clips and a dataset: render frames for one action, emulate them into events.

A clip is a pure function of ``(label, seed, sensor_size, duration_us, fps)``.
Seeds feed ``numpy.random.SeedSequence``; three child streams draw the scene,
the actor and the emulator, so two labels with one seed share the scene,
position, size and tempo (handy for like-for-like comparisons).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from eventpipe.emulator import DvsEmulator, EmulatorConfig
from eventpipe.events import check_sensor_size
from eventpipe.synthetic.actors import CLASS_NAMES, Actor, draw_actor, label_index, sample_actor
from eventpipe.synthetic.scene import Scene, draw_stage, light, sample_scene

DEFAULT_DURATION_US = 1_000_000
DEFAULT_FPS = 200.0


def frame_times_us(duration_us: int = DEFAULT_DURATION_US, fps: float = DEFAULT_FPS) -> np.ndarray:
    """Frame times of a clip: ``round(k * 1e6 / fps)`` for every frame in ``[0, duration_us]``."""
    if duration_us <= 0 or fps <= 0:
        raise ValueError(f"duration_us and fps must be > 0, got {duration_us}, {fps}")
    n = int(math.floor(duration_us * fps / 1e6 + 1e-9)) + 1
    return np.round(np.arange(n) * (1e6 / fps)).astype(np.int64)


def _rngs(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3)]


def sample_clip(label, seed: int, sensor_size=(128, 128)) -> tuple[Scene, Actor]:
    """The scene and actor a clip uses (exposed for tests and previews)."""
    size = check_sensor_size(sensor_size)
    r_scene, r_actor, _ = _rngs(seed)
    scene = sample_scene(r_scene, size)
    return scene, sample_actor(label, r_actor, size, scene.mean_intensity)


def render_frame(scene: Scene, actors: list[tuple[Actor, float, float]], t_s: float) -> np.ndarray:
    """One uint8 ``(H, W)`` frame; ``actors`` holds ``(actor, actor_time_s, weight)``,
    weights summing to 1 (a cross-fade between performers)."""
    stage = draw_stage(scene, t_s)
    if len(actors) == 1:
        draw_actor(stage, actors[0][0], actors[0][1])
        return light(scene, stage, t_s)
    acc = np.zeros(stage.shape, np.float32)
    for actor, t_a, wgt in actors:
        img = stage.copy()
        draw_actor(img, actor, t_a)
        acc += wgt * img
    return light(scene, np.clip(acc + 0.5, 0, 255).astype(np.uint8), t_s)


def render_clip(label, seed: int, sensor_size=(128, 128), duration_us: int = DEFAULT_DURATION_US,
                fps: float = DEFAULT_FPS) -> np.ndarray:
    """Frames ``(N, H, W)`` uint8 at :func:`frame_times_us` ``(duration_us, fps)``."""
    scene, actor = sample_clip(label, seed, sensor_size)
    times = frame_times_us(duration_us, fps)
    w, h = scene.sensor_size
    frames = np.empty((len(times), h, w), np.uint8)
    for k, t in enumerate(times):
        ts = t * 1e-6
        frames[k] = render_frame(scene, [(actor, ts, 1.0)], ts)
    return frames


def sample_emulator_config(rng: np.random.Generator) -> EmulatorConfig:
    """Per-clip sensor variation: thresholds 0.15-0.3, mismatch, refractory, some noise."""
    thr = float(rng.uniform(0.15, 0.3))
    return EmulatorConfig(pos_threshold=thr * float(rng.uniform(0.9, 1.1)), neg_threshold=thr,
                          sigma_threshold=0.03, refractory_us=int(rng.integers(0, 500)),
                          shot_noise_rate_hz=float(rng.uniform(0.0, 0.2)),
                          leak_rate_hz=float(rng.uniform(0.0, 0.1)))


def make_clip(label, seed: int, sensor_size=(128, 128), duration_us: int = DEFAULT_DURATION_US,
              fps: float = DEFAULT_FPS,
              config: EmulatorConfig | Mapping[str, Any] | None = None) -> np.ndarray:
    """Events (``EVENT_DTYPE``, times in ``(0, duration_us]``) of one rendered clip.

    ``config=None`` draws the sensor settings from the seed
    (:func:`sample_emulator_config`); pass a config to fix them.
    """
    frames = render_clip(label, seed, sensor_size, duration_us, fps)
    r_emu = _rngs(seed)[2]
    cfg = sample_emulator_config(r_emu) if config is None else config
    emu = DvsEmulator((frames.shape[2], frames.shape[1]), cfg, seed=int(r_emu.integers(2**31)))
    packets = [emu.push(f, int(t)) for f, t in zip(frames, frame_times_us(duration_us, fps))]
    return np.concatenate(packets)


_SPLITS = {"train": 0, "test": 1}
_MAX_CLIPS = 1 << 24


def clip_seed(seed: int, split: str, index: int) -> int:
    """Seed of clip ``index`` of a dataset: train and test seeds never coincide."""
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0 <= index < _MAX_CLIPS:
        raise ValueError(f"clip index {index} out of range")
    return ((int(seed) * _MAX_CLIPS + int(index)) << 1) | _SPLITS[split]


class SyntheticActionDataset:
    """``n_per_class`` clips of every class, generated on demand (map-style).

    Item ``i`` is class ``i % n_classes``; ``dataset[i] -> (events, label)``.
    ``transform`` (optional) is applied to the events.  ``classes`` selects a
    subset of :data:`CLASS_NAMES` (labels then index that subset).
    """

    def __init__(self, n_per_class: int, seed: int = 0, sensor_size=(128, 128),
                 duration_us: int = DEFAULT_DURATION_US, split: str = "train",
                 fps: float = DEFAULT_FPS, classes=CLASS_NAMES,
                 transform: Callable[[np.ndarray], Any] | None = None):
        if n_per_class < 1:
            raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
        clip_seed(seed, split, 0)  # validates split
        self.classes = tuple(CLASS_NAMES[label_index(c)] for c in classes)
        self.n_per_class = int(n_per_class)
        self.seed = int(seed)
        self.sensor_size = check_sensor_size(sensor_size)
        self.duration_us = int(duration_us)
        self.split = split
        self.fps = float(fps)
        self.transform = transform

    def __len__(self) -> int:
        return self.n_per_class * len(self.classes)

    def label_of(self, index: int) -> int:
        return index % len(self.classes)

    def seed_of(self, index: int) -> int:
        return clip_seed(self.seed, self.split, index)

    def __getitem__(self, index: int):
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        label = self.label_of(index)
        ev = make_clip(self.classes[label], self.seed_of(index), self.sensor_size,
                       self.duration_us, self.fps)
        return (self.transform(ev) if self.transform else ev), label
