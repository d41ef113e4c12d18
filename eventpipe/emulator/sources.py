"""Event sources built on the emulator: any frame iterable, a video file, a webcam.

Each is a generator of event arrays (``EVENT_DTYPE``), one per frame interval
after the first frame (possibly empty), so packets cover ``(t_prev, t_frame]``.
``sensor_size=None`` keeps the native frame size; otherwise frames are
resized with ``cv2.INTER_AREA`` before emulation.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Iterator, Mapping

import cv2
import numpy as np

from eventpipe.emulator.config import EmulatorConfig
from eventpipe.emulator.emulator import DvsEmulator
from eventpipe.errors import EventFormatError
from eventpipe.events import check_sensor_size


def _fit(frame: np.ndarray, sensor_size: tuple[int, int] | None) -> np.ndarray:
    frame = np.asarray(frame)
    if sensor_size is None or frame.shape[:2] == (sensor_size[1], sensor_size[0]):
        return frame
    if frame.dtype == np.float64:
        frame = frame.astype(np.float32)
    return cv2.resize(frame, sensor_size, interpolation=cv2.INTER_AREA)


def frames_source(frames: Iterable[tuple[np.ndarray, int]], sensor_size=None,
                  config: EmulatorConfig | Mapping | None = None, seed: int = 0,
                  emulator: DvsEmulator | None = None) -> Iterator[np.ndarray]:
    """Emulate events from ``(frame, t_us)`` pairs (t strictly increasing).

    Pass ``emulator`` to reuse one (its sensor size then wins); otherwise one
    is built from ``sensor_size`` (default: the first frame's size), ``config``
    and ``seed``.
    """
    size = check_sensor_size(sensor_size) if sensor_size is not None else None
    emu = emulator
    if emu is not None:
        size = emu.sensor_size
    for frame, t_us in frames:
        if emu is None:
            if size is None:
                a = np.asarray(frame)
                size = (a.shape[1], a.shape[0])
            emu = DvsEmulator(size, config, seed)
        first = emu.state is None
        ev = emu.push(_fit(frame, size), t_us)
        if not first:
            yield ev


def _video_frames(cap, fps: float, max_frames: int | None) -> Iterator[tuple[np.ndarray, int]]:
    i = 0
    while max_frames is None or i < max_frames:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame, int(round(i * 1e6 / fps))
        i += 1


def video_source(path, sensor_size=None, config: EmulatorConfig | Mapping | None = None,
                 seed: int = 0, fps: float | None = None,
                 max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Events from a video file read with ``cv2.VideoCapture``.

    Frame ``i`` is stamped ``round(i * 1e6 / fps)`` µs, ``fps`` from the file
    unless given.  Raises ``FileNotFoundError`` / ``ValueError`` up front (the
    file is opened before the first ``next``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: {path}")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise EventFormatError("OpenCV cannot decode it as a video", path=path)
    if fps is None:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not fps or fps <= 0 or not np.isfinite(fps):
        cap.release()
        raise EventFormatError("the video reports no frame rate; pass fps=", path=path)
    return _release_after(cap, frames_source(_video_frames(cap, float(fps), max_frames),
                                             sensor_size, config, seed))


def count_frames(path, most: int = 2) -> int:
    """How many frames OpenCV decodes from the video at ``path``, counting to ``most``."""
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        n = 0
        while n < most and cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()


def _camera_frames(cap, clock: Callable[[], int], max_frames: int | None):
    t_first = None
    t_prev = None
    i = 0
    while max_frames is None or i < max_frames:
        ok, frame = cap.read()
        now_ns = clock()
        if not ok:
            return
        if t_first is None:
            t_first = now_ns
        t_us = (now_ns - t_first) // 1000
        if t_prev is not None and t_us <= t_prev:
            t_us = t_prev + 1  # clock granularity: keep frame times strictly increasing
        t_prev = t_us
        yield frame, int(t_us)
        i += 1


def camera_source(index: int = 0, sensor_size=None, config: EmulatorConfig | Mapping | None = None,
                  seed: int = 0, max_frames: int | None = None,
                  clock: Callable[[], int] = time.monotonic_ns, capture=None) -> Iterator[np.ndarray]:
    """Events from a webcam: frames are stamped by ``clock()`` (ns) when read, from 0.

    ``capture`` replaces ``cv2.VideoCapture(index)`` (any object with
    ``read()``, ``isOpened()`` and ``release()``), which lets tests run without
    a camera.  The generator stops when the camera stops delivering frames.
    """
    cap = capture if capture is not None else cv2.VideoCapture(int(index))
    if not cap.isOpened():
        cap.release()
        raise RuntimeError(f"cannot open camera {index} with OpenCV")
    return _release_after(cap, frames_source(_camera_frames(cap, clock, max_frames),
                                             sensor_size, config, seed))


def _release_after(cap, gen: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    try:
        yield from gen
    finally:
        cap.release()
