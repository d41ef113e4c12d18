"""Reading events from files.

The contract other code uses:

- :func:`read_events` returns a whole recording as an ``EVENT_DTYPE`` array;
- :func:`iter_events` yields consecutive arrays in bounded memory; any chunking
  concatenates to exactly what :func:`read_events` returns.

:func:`open_reader` gives the reader object, whose ``info`` holds the metadata
(format, sensor size and its provenance, camera extras).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from eventpipe.io.base import EventReader
from eventpipe.io.formats import FORMATS, FormatSpec, detect_format, format_names, get_format


def open_reader(path: str | os.PathLike, *, format: str | None = None, sensor_size=None,
                on_error: str = "raise", **options) -> EventReader:
    """Open ``path`` with the reader for its format (detected unless ``format``)."""
    spec = get_format(format) if format is not None else detect_format(path)
    return spec.load()(path, sensor_size=sensor_size, on_error=on_error, **options)


def read_events(path: str | os.PathLike, *, format: str | None = None, sensor_size=None,
                on_error: str = "raise", **options) -> np.ndarray:
    """Read a whole recording as an ``EVENT_DTYPE`` array."""
    return open_reader(path, format=format, sensor_size=sensor_size, on_error=on_error,
                       **options).read()


def iter_events(path: str | os.PathLike, *, chunk_events: int | None = None,
                chunk_us: int | None = None, format: str | None = None, sensor_size=None,
                on_error: str = "raise", **options) -> Iterator[np.ndarray]:
    """Yield a recording as consecutive event arrays in bounded memory."""
    reader = open_reader(path, format=format, sensor_size=sensor_size, on_error=on_error,
                         **options)
    return reader.iter_events(chunk_events=chunk_events, chunk_us=chunk_us)


__all__ = [
    "EventReader", "FORMATS", "FormatSpec", "detect_format", "format_names", "get_format",
    "iter_events", "open_reader", "read_events",
]
