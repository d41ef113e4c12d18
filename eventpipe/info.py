"""Summaries of recordings (what ``eventpipe info`` prints)."""

from __future__ import annotations

import os

from eventpipe.errors import EventFormatError
from eventpipe.io import open_reader
from eventpipe.io.formats import FORMATS, get_format, read_head


def recognised_by_content(path: str | os.PathLike) -> str | None:
    """The format whose sniffer recognises ``path``'s first bytes (``None``: none does,
    so only the extension could name it)."""
    head = read_head(path)
    for spec in FORMATS:
        cls = spec.load()
        if cls.sniff_path(path, head) if hasattr(cls, "sniff_path") else cls.sniff(head):
            return spec.name
    return None


def recording_summary(path: str | os.PathLike, *, format: str | None = None, sensor_size=None,
                      on_error: str = "raise") -> dict:
    """Stream once over ``path`` and return a JSON-ready summary.

    An empty file, and a file that decodes to no events while nothing in its content
    (only its extension) says it is of that format, are ``EventFormatError`` rather
    than an empty summary: "0 events" would be a wrong answer about a file that is
    not a recording."""
    reader = open_reader(path, format=format, sensor_size=sensor_size, on_error=on_error)
    if os.path.getsize(path) == 0:
        raise EventFormatError("empty file (0 bytes), not a recording", path=path, offset=0)
    st = reader.stats()
    info = reader.info
    if st.events == 0 and format is None and recognised_by_content(path) is None:
        raise EventFormatError(
            f"no events decoded, and nothing in the content says it is {info.format} (only the "
            f"extension does): not a recording? (force a format with --format)", path=path,
            offset=0)
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
        "back_in_time": st.back_in_time,
        "extras": {k: v for k, v in info.extras.items() if _jsonable(v)},
    }


def _jsonable(v) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, tuple, dict))
