"""N-MNIST / N-Caltech101 ATIS ``.bin`` files (40-bit events, no header).

Layout (Orchard et al. 2015; tonic ``read_mnist_file``), five bytes per event::

    byte 0: x            byte 1: y
    byte 2: bit 7 = polarity (1 = ON), bits 6..0 = t[22..16]
    byte 3: t[15..8]     byte 4: t[7..0]           (23-bit timestamp, µs)

A record with ``y == 240`` is a timestamp-overflow marker, not an event: as in
tonic, every record from the marker on (the marker included, but it is dropped)
gets ``2**13`` µs added to its timestamp, once per marker seen so far.  The
file has no header, so nothing identifies it but the extension and the
plausibility of its bytes; a length that is not a multiple of five is a
damaged (truncated) last record.

Sensor size: the recordings carry none.  When every coordinate of the file is
below 34 the file is taken for N-MNIST and reported as ``(34, 34)`` from the
dataset table (``extras['dataset'] = 'N-MNIST'``); otherwise (N-Caltech101,
whose samples all differ in size, like tonic's ``sensor_size = None``) the
size is inferred from the events unless the caller gives one.  Files above
``NMNIST_SCAN_LIMIT`` bytes are never taken for N-MNIST (samples are ~20 KB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numba
import numpy as np

from eventpipe.events import EVENT_DTYPE
from eventpipe.io.base import EventReader

RECORD = 5
OVERFLOW_Y = 240
OVERFLOW_US = 1 << 13
NMNIST_SIZE = (34, 34)
NMNIST_SCAN_LIMIT = 1 << 24
_KNOWN_MAGICS = (b"#", b"%", b"\x93NUMPY", b"PK\x03\x04", b"Event Stream")


@numba.njit(cache=True, nogil=True)
def _decode_block(buf, out_x, out_y, out_t, out_p, state):
    """Decode whole 5-byte records of ``buf``; ``state[0]`` is the overflow
    offset (µs) carried between blocks.  Returns the number of events."""
    n_rec = buf.shape[0] // 5
    offset = state[0]
    n = 0
    for i in range(n_rec):
        j = i * 5
        y = buf[j + 1]
        if y == 240:
            offset += 8192
            continue
        b2 = np.int64(buf[j + 2])
        out_x[n] = buf[j]
        out_y[n] = y
        out_p[n] = b2 >> 7
        out_t[n] = (((b2 & 127) << 16) | (np.int64(buf[j + 3]) << 8) | np.int64(buf[j + 4])) + offset
        n += 1
    state[0] = offset
    return n


@numba.njit(cache=True, nogil=True)
def _events_all_below(buf, limit):
    """True when ``buf`` holds at least one event (a record whose y is not the overflow
    marker) and every event's x and y is below ``limit``; one pass, stops at the first
    coordinate at or above it (a bigger sensor is found in its first records)."""
    seen = False
    for i in range(buf.shape[0] // 5):
        y = buf[i * 5 + 1]
        if y == 240:
            continue
        if buf[i * 5] >= limit or y >= limit:
            return False
        seen = True
    return seen


def _plausible(head: bytes) -> bool:
    """Whole records, y bytes <= 240 and non-decreasing timestamps."""
    n = len(head) // RECORD
    if n < 2 or head.startswith(_KNOWN_MAGICS):
        return False
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head[:4096]):
        return False  # text, not 40-bit records
    a = np.frombuffer(head[: n * RECORD], dtype=np.uint8).reshape(n, RECORD).astype(np.int64)
    y = a[:, 1]
    if np.any(y > OVERFLOW_Y):
        return False
    ts = ((a[:, 2] & 127) << 16) | (a[:, 3] << 8) | a[:, 4]
    ts = ts + OVERFLOW_US * np.cumsum(y == OVERFLOW_Y)
    ts = ts[y != OVERFLOW_Y]
    return bool(ts.size) and bool(np.all(np.diff(ts) >= 0))


class AtisBinReader(EventReader):
    """Reader for N-MNIST / N-Caltech101 ``.bin`` recordings (tonic-exact)."""

    format = "atis_bin"
    title = "N-MNIST / N-Caltech101 ATIS .bin (40-bit events)"
    extensions = (".bin",)

    @staticmethod
    def sniff(head: bytes) -> bool:
        """Content alone cannot identify a headerless file; this only says the
        bytes are plausible ATIS records (used by :meth:`sniff_path`)."""
        return _plausible(head)

    @classmethod
    def sniff_path(cls, path, head: bytes) -> bool:
        """Claimed only for a ``.bin`` file of whole, plausible records."""
        path = Path(path)
        if path.suffix.lower() != ".bin":
            return False
        try:
            size = path.stat().st_size
        except OSError:
            return False
        return size % RECORD == 0 and _plausible(head)

    def _parse_header(self) -> None:
        self.data_offset = 0
        self.info.extras.update({
            "record_bytes": RECORD, "timestamp_bits": 23, "overflow_marker_y": OVERFLOW_Y,
            "overflow_increment_us": OVERFLOW_US,
        })
        if self.file_size % RECORD:
            self.info.extras["trailing_bytes"] = self.file_size % RECORD
        if 0 < self.file_size <= NMNIST_SCAN_LIMIT and self._all_below(NMNIST_SIZE[0]):
            self.info.sensor_size = NMNIST_SIZE
            self.info.sensor_size_source = "table"
            self.info.extras["dataset"] = "N-MNIST"
        else:
            self.info.extras["dataset"] = "N-Caltech101 (or other ATIS .bin)"

    def _all_below(self, limit: int) -> bool:
        return _events_all_below(np.fromfile(self.path, dtype=np.uint8), limit)

    def _decode(self) -> Iterator[np.ndarray]:
        state = np.zeros(1, dtype=np.int64)
        with self._open() as f:
            for offset, buf in self._byte_blocks(f, self.data_offset, align=RECORD):
                whole = (buf.size // RECORD) * RECORD
                if whole:
                    out = np.empty(whole // RECORD, dtype=EVENT_DTYPE)
                    n = _decode_block(buf[:whole], out["x"], out["y"], out["t"], out["p"], state)
                    if n:
                        yield out[:n]
                if whole != buf.size:
                    raise self.error(
                        f"truncated record: {buf.size - whole} trailing byte(s), records are "
                        f"{RECORD} bytes", offset=offset + whole, field="record")


def encode_atis_bin(events: np.ndarray) -> bytes:
    """Encode events as ``.bin`` records, inserting ``y = 240`` overflow markers
    so that timestamps above 23 bits survive (tonic's reading adds 2**13 µs per
    marker).  Needs non-decreasing ``t >= 0``, x < 256, y < 240."""
    ev = np.asarray(events)
    if len(ev) == 0:
        return b""
    t = ev["t"].astype(np.int64)
    if t[0] < 0 or np.any(np.diff(t) < 0):
        raise ValueError("encode_atis_bin needs non-decreasing, non-negative timestamps")
    if ev["x"].max() > 255 or ev["y"].max() >= OVERFLOW_Y:
        raise ValueError("encode_atis_bin needs x < 256 and y < 240")
    # markers needed before each event so that t - markers*2**13 < 2**23
    need = np.maximum(0, -(-(t - ((1 << 23) - 1)) // OVERFLOW_US))
    markers = np.diff(np.concatenate([[0], need]))
    rows = []
    done = 0
    for i in range(len(ev)):
        for _ in range(int(markers[i])):
            done += 1
            rows.append((0, OVERFLOW_Y, 0, 0, 0))
        ts = int(t[i]) - done * OVERFLOW_US
        rows.append((int(ev["x"][i]), int(ev["y"][i]), (int(ev["p"][i]) << 7) | (ts >> 16),
                     (ts >> 8) & 255, ts & 255))
    return np.asarray(rows, dtype=np.uint8).tobytes()
