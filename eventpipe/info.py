"""Summaries of recordings (what ``eventpipe info`` prints)."""

from __future__ import annotations

import os

from eventpipe.io import open_reader
from eventpipe.io.formats import get_format


def recording_summary(path: str | os.PathLike, *, format: str | None = None, sensor_size=None,
                      on_error: str = "raise") -> dict:
    """Stream once over ``path`` and return a JSON-ready summary."""
    reader = open_reader(path, format=format, sensor_size=sensor_size, on_error=on_error)
    st = reader.stats()
    info = reader.info
    return {
        "path": str(path),
        "format": info.format,
        "format_title": get_format(info.format).title,
        "sensor_size": list(info.sensor_size) if info.sensor_size else None,
        "sensor_size_source": info.sensor_size_source,
        "events": st.events,
        "t_first": st.t_first,
        "t_last": st.t_last,
        "t_min": st.t_min,
        "t_max": st.t_max,
        "duration_us": st.duration_us,
        "rate_hz": st.rate_hz,
        "on_fraction": st.on_fraction,
        "extras": {k: v for k, v in info.extras.items() if _jsonable(v)},
    }


def _jsonable(v) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, tuple, dict))
