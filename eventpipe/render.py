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
* ``compose_view(frame_img, label=..., ...)``: the live window's picture (``eventpipe
  run --view``): the event frame scaled up, and a panel with the current label, the
  top-k probability bars, latency and events/s; ``view_layout`` says where each part is.
"""

from __future__ import annotations

import dataclasses
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


def frame_to_image(frame, *, merged: bool = False) -> np.ndarray:
    """One model-input frame ``(P, H, W)`` (counts, or counts after a frame norm) -> BGR image.

    Brightness saturates at about three events: the unit is the smallest positive value in
    the frame (one event after the norm: 1 for counts, 1/f**2 after an area resize, log(2) for
    log1p).  ``merged``: the channels are not OFF/ON (``halves``) and are summed into white."""
    f = np.asarray(frame, dtype=np.float32)
    if merged:
        f = f.sum(axis=0, keepdims=True)
    pos = f[f > 0]
    unit = float(pos.min()) if pos.size else 1.0
    return frames_to_images(f, saturation=3.0 * unit)[0]


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
        self.size = None
        self.count = 0

    def open(self, w: int, h: int) -> None:
        """Open the writer for ``w`` x ``h`` pictures (done by the first ``write`` otherwise)."""
        cv2 = _cv2()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = VIDEO_SUFFIXES.get(self.path.suffix.lower(), "mp4v")
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc),
                                      self.fps, (int(w), int(h)))
        if not self.writer.isOpened():
            raise OSError(f"OpenCV cannot open a video writer for {self.path}")
        self.size = (int(w), int(h))

    def write(self, im):
        if self.writer is None:
            self.open(im.shape[1], im.shape[0])
        if (im.shape[1], im.shape[0]) != self.size:
            raise ValueError(f"{self.path}: picture {im.shape[1]}x{im.shape[0]} in a "
                             f"{self.size[0]}x{self.size[1]} video")
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


#: the images converted at once while rendering (float32 BGR: 12 bytes a pixel)
IMAGE_BATCH_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What :func:`render_capped` wrote: ``frames`` images; ``stopped`` True when
    ``max_frames`` ended the rendering before the events did (the rest is not rendered);
    ``outside`` the events off the sensor size (dropped by the binner)."""

    frames: int
    stopped: bool
    outside: int = 0    # events at x >= W or y >= H of the sensor size: not drawn


def render_events(events, sensor_size, out, window_us: int = 33_333, *, fps: float | None = None,
                  fmt: str | None = None, max_frames: int | None = None,
                  saturation: float = 3.0, polarities: int = 2) -> int:
    """Bin ``events`` (array or iterable of packets) and write images to ``out``.

    ``fmt``: ``"png"`` (``out`` is a directory) or ``"video"``; default from the
    suffix of ``out`` (.mp4/.avi/.mkv -> video).  ``fps`` defaults to real time
    (1e6 / window_us).  Returns the number of images written (at most ``max_frames``;
    :func:`render_capped` also says whether the cap cut the rendering short).
    """
    return render_capped(events, sensor_size, out, window_us, fps=fps, fmt=fmt,
                         max_frames=max_frames, saturation=saturation,
                         polarities=polarities).frames


def render_capped(events, sensor_size, out, window_us: int = 33_333, *,
                  fps: float | None = None, fmt: str | None = None,
                  max_frames: int | None = None, saturation: float = 3.0,
                  polarities: int = 2) -> Rendered:
    """:func:`render_events`, returning :class:`Rendered`.  Memory is one bounded binner
    call (64 MiB of frames, ``StreamingBinner.iter_push``) whatever a packet spans: a packet
    after a silence of a million windows does not allocate its empty frames at once."""
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

    def emit(frames) -> bool:
        """Write ``frames`` up to the cap; True when the cap cut them short."""
        nonlocal written
        room = len(frames) if max_frames is None else min(len(frames), max_frames - written)
        step = max(1, IMAGE_BATCH_BYTES // (12 * frames[0, 0].size)) if room else 1
        for i in range(0, room, step):  # frames_to_images holds 12 bytes a pixel
            ims = frames_to_images(frames[i:min(room, i + step)], saturation=saturation)
            if sink is not None:
                for im in ims:
                    sink.write(im)
            else:
                write_png_sequence(ims, out, start=written)
            written += len(ims)
        return len(frames) > room

    stopped = False
    try:
        for pk in _packets(events):
            for frames, _ in binner.iter_push(pk, copy=False):
                stopped = emit(frames) or (max_frames is not None and written >= max_frames)
                if stopped:
                    break
            if stopped:
                break
        else:
            stopped = emit(binner.flush())
    finally:
        if sink is not None:
            sink.close()
    if fmt == "png" and written == 0:
        os.makedirs(out, exist_ok=True)
    return Rendered(written, stopped, binner.stats.out_of_bounds)


# -- the live window -------------------------------------------------------------------------
PANEL_W = 300            # width of the text panel right of the frame
PANEL_BGR = (36, 36, 36)
TEXT_BGR = (235, 235, 235)
BAR_BGR = (80, 200, 80)  # probability bars
BAR_BACK_BGR = (70, 70, 70)  # the empty rest of each bar
PAUSED_BGR = (60, 60, 235)
MAX_BARS = 5
MIN_VIEW_H = 420


@dataclasses.dataclass(frozen=True)
class ViewLayout:
    """Where ``compose_view`` puts things, in pixels of the composed image.

    ``frame``: (x0, y0, x1, y1) of the scaled event frame (``scale`` pixels per input
    pixel); ``label``: the box holding the label line; ``bars``: one (x0, y0, x1, y1) per
    top-k row, the full length ``x1 - x0`` standing for probability 1; ``stats``: the box
    of the latency / events/s lines; ``paused``: where PAUSED is written."""

    size: tuple[int, int]             # (W, H) of the whole image
    scale: int
    frame: tuple[int, int, int, int]
    label: tuple[int, int, int, int]
    bars: tuple[tuple[int, int, int, int], ...]
    stats: tuple[int, int, int, int]
    paused: tuple[int, int, int, int]


def view_layout(frame_hw: tuple[int, int], scale: int | None = None) -> ViewLayout:
    """The layout for a ``(H, W)`` input frame; ``scale`` defaults to about 448 pixels."""
    h, w = (int(v) for v in frame_hw)
    if scale is None:
        scale = max(1, 448 // max(h, w))
    fw, fh = w * scale, h * scale
    x = fw + 14
    bar_w = PANEL_W - 28
    bars = tuple((x, 96 + 38 * i, x + bar_w, 96 + 38 * i + 12) for i in range(MAX_BARS))
    y = 96 + 38 * MAX_BARS + 8
    return ViewLayout(size=(fw + PANEL_W, max(fh, MIN_VIEW_H)), scale=scale,
                      frame=(0, 0, fw, fh), label=(x, 8, fw + PANEL_W - 4, 62),
                      bars=bars, stats=(x, y, fw + PANEL_W - 4, y + 70),
                      paused=(x, y + 76, fw + PANEL_W - 4, y + 110))


def compose_view(frame_img: np.ndarray, *, label: dict | None = None,
                 latency_ms: float | None = None, events_per_s: float | None = None,
                 frames: int | None = None, paused: bool = False,
                 scale: int | None = None) -> np.ndarray:
    """The live window's picture: ``frame_img`` (HxWx3 BGR, e.g. :func:`frame_to_image`)
    scaled up, and a panel with ``label`` (a label message: ``label``, ``score``,
    ``topk`` [[name, prob], ...], ``truth``), one bar per top-k class (length =
    probability, in the message's order), latency, events/s and PAUSED."""
    cv2 = _cv2()
    lay = view_layout(frame_img.shape[:2], scale)
    W, H = lay.size
    img = np.empty((H, W, 3), np.uint8)
    img[...] = BACKGROUND_BGR
    img[:, lay.frame[2]:] = PANEL_BGR
    x0, y0, x1, y1 = lay.frame
    img[y0:y1, x0:x1] = cv2.resize(frame_img, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def text(s, org, size=0.5, colour=TEXT_BGR, thick=1):
        cv2.putText(img, s, org, font, size, colour, thick, cv2.LINE_AA)

    lx = lay.label[0]
    if label is not None and label.get("label") is not None:
        text(str(label["label"]), (lx, lay.label[1] + 28), 0.9, TEXT_BGR, 2)
        sub = f"score {label.get('score') or 0:.2f}"
        if label.get("truth") is not None:
            sub += f"   truth {label['truth']}"
        text(sub, (lx, lay.label[1] + 50), 0.45)
    else:
        text("(no label yet)", (lx, lay.label[1] + 28), 0.6)
    for (bx0, by0, bx1, by1), (name, prob) in zip(lay.bars, (label or {}).get("topk") or [],
                                                   strict=False):
        text(f"{name}  {prob:.2f}", (bx0, by0 - 5), 0.42)
        img[by0:by1, bx0:bx1] = BAR_BACK_BGR
        n = int(round(min(max(float(prob), 0.0), 1.0) * (bx1 - bx0)))
        img[by0:by1, bx0:bx0 + n] = BAR_BGR
    sx, sy = lay.stats[0], lay.stats[1]
    text("latency " + ("-" if latency_ms is None else f"{latency_ms:.1f} ms"), (sx, sy + 16))
    text("events/s " + ("-" if events_per_s is None else f"{events_per_s:,.0f}"), (sx, sy + 38))
    if frames is not None:
        text(f"frames {frames:,}", (sx, sy + 60))
    if paused:
        text("PAUSED", (lay.paused[0], lay.paused[1] + 26), 0.8, PAUSED_BGR, 2)
    text("space: pause   q / Esc: quit", (lx, H - 10), 0.4, (150, 150, 150))
    return img
