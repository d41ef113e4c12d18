"""``eventpipe view``: render a recording as ON/OFF coloured frames (PNGs or a video)."""

from __future__ import annotations

import os

from eventpipe.io import open_reader
from eventpipe.render import render_events


def view_recording(path: str | os.PathLike, out: str | os.PathLike, *, window_us: int = 33_333,
                   fps: float | None = 30.0, max_frames: int | None = None,
                   format: str | None = None, sensor_size=None) -> dict:
    """Stream ``path`` through the windower and write the frames to ``out``.

    Memory stays bounded (the recording is read in time chunks).  The sensor
    size comes from the file, the caller, or (failing both) one pass over the
    events.  Returns ``{"frames": n, "out": out}``.
    """
    reader = open_reader(path, format=format, sensor_size=sensor_size)
    size = reader.info.sensor_size
    if size is None:
        reader.stats()  # one streaming pass infers the size from the coordinates
        size = reader.info.sensor_size
    if size is None:
        raise ValueError(f"{path}: no events to render")
    chunks = open_reader(path, format=format, sensor_size=size).iter_events(chunk_us=window_us)
    n = render_events(chunks, size, out, window_us=window_us, fps=fps, max_frames=max_frames)
    return {"frames": n, "out": str(out)}
