"""Recorders: write and replay event and label streams as crash-safe, seekable HDF5 files.

- :class:`EventRecorder` writes a recording (``write``, ``write_labels``, ``flush``,
  ``close``; a context manager);
- :class:`AsyncRecorder` runs one on its own thread behind a bounded queue, counting drops;
- :func:`open_recording` reads one (``info``, ``events(start_us, end_us)``,
  ``iter_events``, ``labels``), also while it is being written (``follow=True``).

The file layout is documented in :mod:`recorders.layout` and ``docs/recorders.md``.
"""

from recorders.async_writer import AsyncRecorder
from recorders.layout import (
    SCHEMA_VERSION, RecorderWriteError, RecordingError, SchemaVersionError, SliceError,
)
from recorders.reader import Recording, RecordingInfo, open_recording
from recorders.writer import EventRecorder

__all__ = ["AsyncRecorder", "EventRecorder", "Recording", "RecordingInfo", "RecorderWriteError",
           "RecordingError", "SCHEMA_VERSION", "SchemaVersionError", "SliceError",
           "open_recording"]
