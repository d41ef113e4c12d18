"""Frames -> DVS events: explicit parameters and state, a functional step, a thin class.

``step(frame, t_us, state, params)`` returns ``(events, state)``; ``state=None``
initialises from the first frame (no events).  :class:`DvsEmulator` holds one
state and calls it.  See ``docs/emulator.md`` for the model and parameters.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping

import cv2
import numpy as np

from eventpipe.emulator.config import EmulatorConfig, as_config
from eventpipe.emulator.kernel import emit_events, lin_log, lowpass, sort_by_time
from eventpipe.events import EVENT_DTYPE, check_sensor_size, empty_events


@dataclasses.dataclass(frozen=True)
class EmulatorParams:
    """Fixed per-pixel parameters drawn once from the seed (flat arrays, length W*H)."""

    sensor_size: tuple[int, int]
    config: EmulatorConfig
    seed: int
    pos_thr: np.ndarray
    neg_thr: np.ndarray
    leak_per_us: np.ndarray  # reference drift per µs (log units)


@dataclasses.dataclass
class EmulatorState:
    """Everything that changes while frames stream in (flat per-pixel arrays)."""

    t_us: int                   # time of the last frame
    lp_log: np.ndarray          # filtered log intensity at t_us
    ref_log: np.ndarray         # memorised reference log intensity
    last_event_t: np.ndarray    # int64 time of the last emitted event per pixel
    noise_rng: np.random.Generator

    def copy(self) -> "EmulatorState":
        return EmulatorState(self.t_us, self.lp_log.copy(), self.ref_log.copy(),
                             self.last_event_t.copy(), copy.deepcopy(self.noise_rng))


@dataclasses.dataclass
class EmulatorStats:
    frames: int = 0
    on_events: int = 0
    off_events: int = 0
    noise_events: int = 0
    suppressed_refractory: int = 0

    @property
    def events(self) -> int:
        return self.on_events + self.off_events


_NO_EVENT_T = np.iinfo(np.int64).min // 2


def _streams(seed: int) -> list[np.random.SeedSequence]:
    # 0: threshold mismatch, 1: leak rates and phases, 2: shot noise
    return np.random.SeedSequence(int(seed)).spawn(3)


def make_params(sensor_size, config: EmulatorConfig | Mapping[str, Any] | None = None,
                seed: int = 0) -> EmulatorParams:
    """Draw per-pixel thresholds (Gaussian mismatch) and leak rates from ``seed``."""
    w, h = check_sensor_size(sensor_size)
    cfg = as_config(config)
    ss = _streams(seed)
    rng = np.random.default_rng(ss[0])
    n = w * h
    pos = np.full(n, cfg.pos_threshold)
    neg = np.full(n, cfg.neg_threshold)
    if cfg.sigma_threshold > 0:
        pos += rng.normal(0.0, cfg.sigma_threshold, n)
        neg += rng.normal(0.0, cfg.sigma_threshold, n)
    np.maximum(pos, cfg.min_threshold, out=pos)
    np.maximum(neg, cfg.min_threshold, out=neg)
    leak = np.zeros(n)
    if cfg.leak_rate_hz > 0:
        lrng = np.random.default_rng(ss[1])
        jitter = 1.0 + cfg.leak_jitter_fraction * lrng.normal(0.0, 1.0, n)
        leak = np.maximum(cfg.leak_rate_hz * 1e-6 * pos * jitter, 0.0)
    return EmulatorParams((w, h), cfg, int(seed), pos, neg, leak)


def frame_intensity(frame, sensor_size) -> np.ndarray:
    """A frame as flat float64 intensity on the 0-255 scale.

    Accepts ``(H, W)``, ``(H, W, 1)``, BGR ``(H, W, 3)`` or BGRA ``(H, W, 4)``;
    uint8 as is, uint16 scaled by 255/65535, floats taken as 0-1 and scaled by
    255 (negatives clipped to 0).
    """
    w, h = sensor_size
    a = np.asarray(frame)
    if a.dtype not in (np.uint8, np.uint16) and a.dtype.kind != "f":
        raise ValueError(f"frame dtype must be uint8, uint16 or float, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if a.dtype not in (np.uint8, np.uint16, np.float32):
            a = a.astype(np.float32)
        a = cv2.cvtColor(np.ascontiguousarray(a),
                         cv2.COLOR_BGR2GRAY if a.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if a.ndim != 2:
        raise ValueError(f"frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape != (h, w):
        raise ValueError(f"frame is {a.shape[1]}x{a.shape[0]} (WxH), emulator sensor is {w}x{h}; "
                         "resize it first (the sources take sensor_size=)")
    if a.dtype == np.uint8:
        out = a.astype(np.float64)
    elif a.dtype == np.uint16:
        out = a.astype(np.float64) * (255.0 / 65535.0)
    else:
        out = np.maximum(a.astype(np.float64), 0.0) * 255.0
        if not np.all(np.isfinite(out)):
            raise ValueError("frame contains NaN or infinite values")
    return out.reshape(-1)


def _log(intensity: np.ndarray, cfg: EmulatorConfig) -> np.ndarray:
    return lin_log(intensity, float(cfg.lin_log_threshold), float(cfg.log_eps),
                   np.empty_like(intensity))


def init_state(frame, t_us: int, params: EmulatorParams) -> EmulatorState:
    """State after the first frame: reference = log intensity (leak: a random fraction below)."""
    cfg = params.config
    log_i = _log(frame_intensity(frame, params.sensor_size), cfg)
    ref = log_i.copy()
    ss = _streams(params.seed)
    if cfg.leak_rate_hz > 0:
        # desynchronise leak events: start each reference up to one threshold below
        ref -= np.random.default_rng(ss[1].spawn(1)[0]).random(ref.shape[0]) * params.pos_thr
    last = np.full(log_i.shape[0], _NO_EVENT_T, dtype=np.int64)
    return EmulatorState(int(t_us), log_i, ref, last, np.random.default_rng(ss[2]))


def _noise(state: EmulatorState, params: EmulatorParams, t0: int, t1: int):
    npix = params.pos_thr.shape[0]
    rate = params.config.shot_noise_rate_hz
    if rate <= 0:
        return np.zeros(npix + 1, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)
    rng = state.noise_rng
    count = int(rng.poisson(rate * (t1 - t0) * 1e-6 * npix))
    pix = rng.integers(0, npix, count)
    t = rng.integers(t0 + 1, t1 + 1, count, dtype=np.int64)
    p = rng.integers(0, 2, count, dtype=np.uint8)
    order = np.lexsort((t, pix))
    ptr = np.zeros(npix + 1, np.int64)
    np.cumsum(np.bincount(pix, minlength=npix), out=ptr[1:])
    return ptr, t[order], p[order]


def step(frame, t_us: int, state: EmulatorState | None, params: EmulatorParams,
         stats: EmulatorStats | None = None, inplace: bool = False):
    """Advance by one frame taken at ``t_us``; returns ``(events, state)``.

    Events lie in ``(state.t_us, t_us]``, sorted by time (stable: ties keep
    raster order).  ``t_us`` must increase strictly.  ``inplace=False`` leaves
    the given state untouched.
    """
    t_us = int(t_us)
    if state is None:
        if stats is not None:
            stats.frames += 1
        return empty_events(), init_state(frame, t_us, params)
    if t_us <= state.t_us:
        raise ValueError(f"frame time {t_us} µs is not after the previous frame ({state.t_us} µs)")
    cfg = params.config
    intensity = frame_intensity(frame, params.sensor_size)
    if not inplace:
        state = state.copy()
    lp0 = state.lp_log
    log_new = _log(intensity, cfg)
    if cfg.cutoff_hz > 0:
        lp1 = lowpass(lp0.copy(), log_new, intensity, (t_us - state.t_us) * 1e-6,
                      1.0 / (2.0 * np.pi * cfg.cutoff_hz))
    else:
        lp1 = log_new
    ptr, nt, npol = _noise(state, params, state.t_us, t_us)
    x, y, t, p, n_sup, n_noise = emit_events(
        lp0, lp1, state.ref_log, state.last_event_t, params.pos_thr, params.neg_thr,
        params.leak_per_us, state.t_us, t_us, int(cfg.refractory_us), ptr, nt, npol,
        params.sensor_size[0])
    if t_us - state.t_us <= 8 * len(t) + 65536:
        x, y, t, p = sort_by_time(x, y, t, p, state.t_us, t_us)
    else:
        order = np.argsort(t, kind="stable")
        x, y, t, p = x[order], y[order], t[order], p[order]
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    ev["x"] = x
    ev["y"] = y
    ev["t"] = t
    ev["p"] = p
    state.lp_log = lp1
    state.t_us = t_us
    if stats is not None:
        stats.frames += 1
        on = int(np.count_nonzero(p))
        stats.on_events += on
        stats.off_events += len(p) - on
        stats.noise_events += int(n_noise)
        stats.suppressed_refractory += int(n_sup)
    return ev, state


class DvsEmulator:
    """A stateful emulator for one camera: ``push(frame, t_us) -> events``.

    ``sensor_size`` is ``(W, H)``; ``config`` an :class:`EmulatorConfig`, a
    dict of overrides or ``None``; ``seed`` fixes threshold mismatch, leak
    rates and noise.  The first pushed frame only initialises (no events).
    """

    def __init__(self, sensor_size=(128, 128), config: EmulatorConfig | Mapping | None = None,
                 seed: int = 0):
        self.params = make_params(sensor_size, config, seed)
        self.state: EmulatorState | None = None
        self.stats = EmulatorStats()

    @property
    def sensor_size(self) -> tuple[int, int]:
        return self.params.sensor_size

    @property
    def config(self) -> EmulatorConfig:
        return self.params.config

    def push(self, frame, t_us: int) -> np.ndarray:
        ev, self.state = step(frame, t_us, self.state, self.params, self.stats, inplace=True)
        return ev

    def reset(self) -> None:
        """Forget the scene and restart the noise from the seed (mismatch is kept)."""
        self.state = None
        self.stats = EmulatorStats()

    def __repr__(self) -> str:
        w, h = self.sensor_size
        return f"DvsEmulator(sensor_size=({w}, {h}), seed={self.params.seed}, config={self.config})"
