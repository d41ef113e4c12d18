"""``eventpipe view``: render a recording as ON/OFF coloured frames (PNGs, a video or a GIF)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from eventpipe.errors import ConfigError, EventFormatError
from eventpipe.io import open_reader
from eventpipe.render import VIDEO_SUFFIXES, render_events

GIF_SUFFIX = ".gif"


def check_out(out: str | os.PathLike) -> str:
    """What ``out`` asks for: ``"png"`` (a folder: no suffix, or an existing folder),
    ``"video"`` (.mp4/.avi/.mkv) or ``"gif"``; any other suffix is a ``ConfigError``
    (a file name must not silently become a folder)."""
    p = Path(out)
    suffix = p.suffix.lower()
    if p.is_dir():
        return "png"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == GIF_SUFFIX:
        return "gif"
    if suffix:
        raise ConfigError(f"--out {out}: unknown extension {suffix!r}; give a folder (PNG "
                          f"frames), {', '.join(sorted(VIDEO_SUFFIXES))} (video) or .gif")
    if p.exists():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    return "png"


def write_gif(png_dir: Path, out: Path, fps: float) -> int:
    """Assemble the PNG frames of ``png_dir`` into an animated GIF (Pillow), one frame at a
    time (memory stays bounded).  Returns the number of frames."""
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("--out .gif needs Pillow (pip install pillow); or write .mp4 or a "
                          "folder of PNGs") from None
    paths = sorted(png_dir.glob("*.png"))
    if not paths:
        raise ValueError("no frames to write")

    def frames():
        for p in paths[1:]:
            with Image.open(p) as im:
                yield im.convert("RGB")

    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(paths[0]) as first:
        first.convert("RGB").save(out, save_all=True, append_images=frames(), loop=0,
                                  duration=max(20, int(round(1000.0 / fps))), optimize=False)
    return len(paths)


def view_recording(path: str | os.PathLike, out: str | os.PathLike, *, window_us: int = 33_333,
                   fps: float | None = 30.0, max_frames: int | None = None,
                   format: str | None = None, sensor_size=None) -> dict:
    """Stream ``path`` through the windower and write the frames to ``out``.

    Memory stays bounded (the recording is read in time chunks).  The sensor
    size comes from the file, the caller, or (failing both) one pass over the
    events.  ``out`` is a folder (PNG frames), a video (.mp4/.avi/.mkv) or a
    .gif; another suffix is an error.  Returns ``{"frames": n, "out": out}``.
    """
    kind = check_out(out)
    reader = open_reader(path, format=format, sensor_size=sensor_size)
    size = reader.info.sensor_size
    if size is None:
        reader.stats()  # one streaming pass infers the size from the coordinates
        size = reader.info.sensor_size
    if size is None:
        raise EventFormatError(f"no events to render (decoded as {reader.info.format})",
                               path=path)
    chunks = open_reader(path, format=format, sensor_size=size).iter_events(chunk_us=window_us)
    if kind == "gif":
        with tempfile.TemporaryDirectory(prefix="eventpipe-gif-") as tmp:
            n = render_events(chunks, size, tmp, window_us=window_us, fps=fps,
                              max_frames=max_frames, fmt="png")
            if n:
                write_gif(Path(tmp), Path(out), fps or 1e6 / window_us)
    else:
        n = render_events(chunks, size, out, window_us=window_us, fps=fps,
                          max_frames=max_frames, fmt=kind)
    return {"frames": n, "out": str(out)}
