"""eventpipe recordings (HDF5, written by :mod:`recorders`) as one more format.

Sniffed by content: the HDF5 signature at offset 0 or, for files with a user block, at
512, 1024, 2048, ...  A foreign HDF5 file is recognised as HDF5 and then refused with an
error saying it is not an eventpipe recording.  ``recorders`` (and h5py) are imported
only when such a file is opened, so importing :mod:`eventpipe.io` stays light.

Options: ``start_us``/``end_us`` read a slice through the recording's time index;
``start_s``/``end_s`` do the same in seconds from the recording's first event.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from eventpipe.io.base import EventReader

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def find_hdf5_magic(head: bytes) -> int | None:
    off = 0
    while off + len(HDF5_MAGIC) <= len(head):
        if head[off:off + len(HDF5_MAGIC)] == HDF5_MAGIC:
            return off
        off = 512 if off == 0 else off * 2
    return None


class RecordingReader(EventReader):
    format = "h5"
    title = "eventpipe recording (HDF5, recorders; events, labels, time index)"
    extensions = (".h5", ".hdf5")

    def __init__(self, path, *, start_us: int | None = None, end_us: int | None = None,
                 start_s: float | None = None, end_s: float | None = None, **kwargs):
        self._slice = (start_us, end_us, start_s, end_s)
        super().__init__(path, **kwargs)

    @staticmethod
    def sniff(head: bytes) -> bool:
        return find_hdf5_magic(head) is not None

    def _parse_header(self) -> None:
        from recorders.reader import Recording

        with Recording(self.path) as rec:
            info = rec.info
            start_us, end_us, start_s, end_s = self._slice
            if info.t_first is not None:
                if start_s is not None:
                    start_us = info.t_first + int(round(float(start_s) * 1e6))
                if end_s is not None:
                    end_us = info.t_first + int(round(float(end_s) * 1e6))
            self.start_us, self.end_us = start_us, end_us
            self.positions = rec._bounds(start_us, end_us)  # a bad slice fails here, typed
        if info.sensor_size is not None:
            self.info.sensor_size = info.sensor_size
            self.info.sensor_size_source = "file"
        self.info.extras.update({
            "labels": info.labels, "label_streams": info.streams,
            "compression": info.compression, "schema_version": info.schema_version,
            "index": f"{info.index_entries:,} entries, period {info.index_period_us} us",
            "complete": info.complete, "dropped_events": info.dropped_events,
            "dropped_labels": info.dropped_labels, "created_utc": info.created_utc})
        for key in ("source_uri", "camera_serial", "ended_by_error"):
            if getattr(info, key):
                self.info.extras[key] = getattr(info, key)

    def read(self) -> np.ndarray:
        """All events (of the slice) in one read: no block concatenation."""
        from recorders.reader import Recording

        with Recording(self.path) as rec:
            a, b = self.positions
            out = rec._filter(rec._read(a, b), self.start_us, self.end_us)
        self._infer_size(out)
        return out

    def _decode(self) -> Iterator[np.ndarray]:
        from recorders.reader import Recording

        with Recording(self.path) as rec:
            a, b = self.positions
            yield from rec.blocks(a, b, self.start_us, self.end_us,
                                  block_events=max(1, self.block_bytes // 13))
