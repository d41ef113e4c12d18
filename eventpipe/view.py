"""``eventpipe view``: render a recording as ON/OFF coloured frames (PNGs, a video or a GIF)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from eventpipe.errors import ConfigError, EventFormatError
from eventpipe.io import open_reader
import numpy as np

from eventpipe.render import BACKGROUND_BGR, OFF_BGR, ON_BGR, VIDEO_SUFFIXES, render_capped

GIF_SUFFIX = ".gif"
#: the largest sensor view renders (an RGB frame of 48 MiB): a header may claim any size
MAX_VIEW_PIXELS = 4096 * 4096
#: the frames one view writes unless told otherwise (``--max-frames``): 5.5 minutes of a
#: recording at the default 33 ms window, and a bound on what a tiny window writes
DEFAULT_MAX_FRAMES = 10_000


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


#: the names view gives its PNG frames (``render.write_png_sequence``'s default prefix)
FRAME_GLOB = "frame_*.png"


def check_png_folder(out, *, overwrite: bool = False) -> None:
    """A PNG folder that already holds frames (an earlier view's) would end up with the new
    frames and the old ones past them, mixed: a ``ConfigError`` naming ``--out`` and how many,
    unless ``overwrite``, which deletes those frames (only files named ``frame_*.png``)."""
    old = sorted(Path(out).glob(FRAME_GLOB)) if Path(out).is_dir() else []
    if old and not overwrite:
        raise ConfigError(f"--out {out}: already holds {len(old):,} frames ({old[0].name} ...); "
                          "the new ones would mix with them: give a new or empty folder, or "
                          "--overwrite to delete them first")
    for path in old:
        path.unlink()


def gif_palette():
    """The 256 colours of our frames: background + i/15 of the OFF colour + j/15 of the ON
    colour (``render.frames_to_images`` mixes exactly these two), as a Pillow palette image."""
    from PIL import Image

    bg, on, off = (np.array(c[::-1], float) for c in (BACKGROUND_BGR, ON_BGR, OFF_BGR))
    levels = np.arange(16) / 15.0
    cols = bg + levels[:, None, None] * (off - bg) + levels[None, :, None] * (on - bg)
    pal = Image.new("P", (1, 1))
    pal.putpalette(np.clip(cols, 0, 255).round().astype(np.uint8).reshape(-1).tolist())
    return pal


def write_gif(png_dir: Path, out: Path, fps: float) -> int:
    """Write the PNG frames of ``png_dir`` as an animated GIF, one frame at a time (memory
    holds one frame whatever the length; Pillow's own ``save_all`` keeps them all), in the
    fixed palette of :func:`gif_palette`.  Returns the number of frames."""
    try:
        from PIL import GifImagePlugin, Image
    except ImportError:
        raise ConfigError("--out .gif needs Pillow (pip install pillow); or write .mp4 or a "
                          "folder of PNGs") from None
    paths = sorted(png_dir.glob("*.png"))
    if not paths:
        raise ValueError("no frames to write")
    palette = gif_palette()
    duration = max(20, int(round(1000.0 / fps)))  # ms; browsers slow anything faster down
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fp:
        for i, p in enumerate(paths):
            with Image.open(p) as im:
                frame = im.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE)
            if i == 0:
                header, _ = GifImagePlugin.getheader(
                    frame, None, {"loop": 0, "duration": duration, "optimize": False})
                fp.writelines(header)
            fp.writelines(GifImagePlugin.getdata(frame, duration=duration, disposal=1))
        fp.write(b";")  # the GIF trailer
    return len(paths)


def view_recording(path: str | os.PathLike, out: str | os.PathLike, *, window_us: int = 33_333,
                   fps: float | None = 30.0, max_frames: int | None = DEFAULT_MAX_FRAMES,
                   format: str | None = None, sensor_size=None, overwrite: bool = False) -> dict:
    """Stream ``path`` through the windower and write the frames to ``out``.

    Memory stays bounded (the recording is read in time chunks).  The sensor
    size comes from the file, the caller, or (failing both) one pass over the
    events.  ``out`` is a folder (PNG frames), a video (.mp4/.avi/.mkv) or a
    .gif; another suffix is an error; so is a folder that holds frames already,
    unless ``overwrite`` (:func:`check_png_folder`).  At most ``max_frames``
    frames are written (None: no cap).  Returns ``{"frames", "out", "stopped",
    "outside", "sensor_size"}``: ``stopped`` True when the cap ended the
    rendering before the recording did; ``outside`` the events that lay outside
    ``sensor_size`` (W, H) and are not drawn.
    """
    kind = check_out(out)
    if kind == "png":
        check_png_folder(out, overwrite=overwrite)
    reader = open_reader(path, format=format, sensor_size=sensor_size)
    size = reader.info.sensor_size
    if size is None:
        reader.stats()  # one streaming pass infers the size from the coordinates
        size = reader.info.sensor_size
    if size is None:
        raise EventFormatError(f"no events to render (decoded as {reader.info.format})",
                               path=path)
    w, h = (int(v) for v in size)
    if w * h > MAX_VIEW_PIXELS:  # before a frame of that size is allocated
        what = (f"--sensor-size {w}x{h}" if sensor_size is not None
                else f"the sensor size {w}x{h} ({reader.info.sensor_size_source or 'file'})")
        msg = (f"{what} has {w * h:,} pixels, more than view renders ({MAX_VIEW_PIXELS:,})"
               + ("" if sensor_size is not None else "; give the real one with --sensor-size WxH"))
        if sensor_size is not None:
            raise ConfigError(msg)
        raise EventFormatError(msg, path=path, field="sensor size")
    chunks = open_reader(path, format=format, sensor_size=size).iter_events(chunk_us=window_us)
    if kind == "gif":
        with tempfile.TemporaryDirectory(prefix="eventpipe-gif-") as tmp:
            done = render_capped(chunks, size, tmp, window_us=window_us, fps=fps,
                                 max_frames=max_frames, fmt="png")
            if done.frames:
                write_gif(Path(tmp), Path(out), fps or 1e6 / window_us)
    else:
        done = render_capped(chunks, size, out, window_us=window_us, fps=fps,
                             max_frames=max_frames, fmt=kind)
    return {"frames": done.frames, "out": str(out), "stopped": done.stopped,
            "outside": done.outside, "sensor_size": (w, h)}
