"""Render event frames as images (PNG sequence or MP4/AVI via OpenCV).

Pure functions used by ``eventpipe view``:

* ``frames_to_images(frames)``: ``(T, P, H, W)`` counts -> ``(T, H, W, 3)`` uint8
  BGR images on a dark background; ON events in blue-white, OFF in orange-red
  (BGR ``ON_BGR`` / ``OFF_BGR``); the brightness grows with the count and
  saturates at ``saturation`` events.  Merged polarity (P == 1) is white.
* ``write_png_sequence(images, out_dir)`` / ``write_video(images, path, fps)``.
* ``render_events(events, sensor_size, out, window_us)``: stream an array or an
  iterable of event packets through ``StreamingBinner`` and write images as the
  windows complete, so memory stays bounded for any recording length.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

BACKGROUND_BGR = (20, 20, 20)
ON_BGR = (255, 200, 80)
OFF_BGR = (40, 60, 255)
MERGED_BGR = (255, 255, 255)
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


def frames_to_images(frames: np.ndarray, *, saturation: float = 3.0,
                     background=BACKGROUND_BGR, on=ON_BGR, off=OFF_BGR) -> np.ndarray:
    """``(T, P, H, W)`` (or one ``(P, H, W)`` frame) -> uint8 BGR ``(T, H, W, 3)``."""
    f = np.asarray(frames)
    if f.ndim == 3:
        f = f[None]
    if f.ndim != 4 or f.shape[1] not in (1, 2):
        raise ValueError(f"frames must be (T, P, H, W) with P in (1, 2), got {f.shape}")
    T, P, H, W = f.shape
    img = np.empty((T, H, W, 3), np.float32)
    img[...] = np.asarray(background, np.float32)
    colours = [MERGED_BGR] if P == 1 else [off, on]
    bg = np.asarray(background, np.float32)
    for c in range(P):
        a = np.clip(np.abs(f[:, c].astype(np.float32)) / float(saturation), 0.0, 1.0)[..., None]
        img += a * (np.asarray(colours[c], np.float32) - bg)
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def _cv2():
    import cv2  # local import: rendering is optional for the kernels

    return cv2


def write_png_sequence(images, out_dir, *, prefix: str = "frame_", start: int = 0) -> list[Path]:
    """Write ``images`` (iterable of HxWx3 uint8) as ``out_dir/prefix000000.png``..."""
    cv2 = _cv2()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images, start=start):
        p = out_dir / f"{prefix}{i:06d}.png"
        if not cv2.imwrite(str(p), np.ascontiguousarray(im)):
            raise OSError(f"could not write {p}")
        paths.append(p)
    return paths


class VideoSink:
    def __init__(self, path, fps):
        self.path = Path(path)
        self.fps = float(fps)
        self.writer = None
        self.count = 0

    def write(self, im):
        cv2 = _cv2()
        if self.writer is None:
            h, w = im.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = VIDEO_SUFFIXES.get(self.path.suffix.lower(), "mp4v")
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc),
                                          self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"OpenCV cannot open a video writer for {self.path}")
        self.writer.write(np.ascontiguousarray(im))
        self.count += 1

    def close(self):
        if self.writer is not None:
            self.writer.release()


def write_video(images, path, fps: float = 30.0) -> Path:
    """Write ``images`` to a video file (codec from the suffix: .mp4/.mkv mp4v, .avi MJPG)."""
    sink = VideoSink(path, fps)
    try:
        for im in images:
            sink.write(im)
    finally:
        sink.close()
    if sink.count == 0:
        raise ValueError("write_video: no images")
    return Path(path)


def _packets(events) -> Iterable[np.ndarray]:
    if isinstance(events, np.ndarray):
        step = 1 << 18
        for i in range(0, len(events), step):
            yield events[i:i + step]
    else:
        yield from events


def render_events(events, sensor_size, out, window_us: int = 33_333, *, fps: float | None = None,
                  fmt: str | None = None, max_frames: int | None = None,
                  saturation: float = 3.0, polarities: int = 2) -> int:
    """Bin ``events`` (array or iterable of packets) and write images to ``out``.

    ``fmt``: ``"png"`` (``out`` is a directory) or ``"video"``; default from the
    suffix of ``out`` (.mp4/.avi/.mkv -> video).  ``fps`` defaults to real time
    (1e6 / window_us).  Returns the number of images written.
    """
    from eventpipe.kernels.streaming import StreamingBinner

    out = Path(out)
    if fmt is None:
        fmt = "video" if out.suffix.lower() in VIDEO_SUFFIXES else "png"
    if fmt not in ("png", "video"):
        raise ValueError(f"fmt must be 'png' or 'video', got {fmt!r}")
    fps = fps or 1e6 / window_us
    binner = StreamingBinner(sensor_size, window_us, polarities=polarities, dtype=np.int32)
    sink = VideoSink(out, fps) if fmt == "video" else None
    written = 0

    def emit(frames):
        nonlocal written
        if max_frames is not None:
            frames = frames[: max(0, max_frames - written)]
        if len(frames) == 0:
            return
        ims = frames_to_images(frames, saturation=saturation)
        if sink is not None:
            for im in ims:
                sink.write(im)
        else:
            write_png_sequence(ims, out, start=written)
        written += len(ims)

    try:
        for pk in _packets(events):
            emit(binner.push(pk))
            if max_frames is not None and written >= max_frames:
                break
        else:
            emit(binner.flush())
    finally:
        if sink is not None:
            sink.close()
    if fmt == "png" and written == 0:
        os.makedirs(out, exist_ok=True)
    return written
