"""Event Stream ``.es`` files, version 2.x (github.com/neuromorphic-paris/event_stream).

Header: the 12 ASCII bytes ``Event Stream``, version bytes (major, minor,
patch; major must be 2), a type byte (0 generic, 1 DVS, 2 ATIS, 3 display,
4 color) and, for DVS/ATIS/color, width and height as little-endian u16.

DVS body, a byte state machine (timestamps start at 0 µs, as in faery 0.7 and
event_stream 1.6)::

    idle:  0xFF -> overflow, t += 127;  0xFE -> reset (ignored);
           else byte 0: t += byte >> 1, is_increase = byte & 1
    then byte 1, 2: x (u16 LE); byte 3, 4: y (u16 LE) -> one event

ATIS body: idle bytes with the six high bits set are overflows adding
``63 * (byte & 3)`` µs (0xFC, adding 0, is the reset); else byte 0 holds
``t += byte >> 2``, ``polarity = bit 1``, ``is_tc = bit 0``, then x, y as for
DVS.  Threshold-crossing (exposure) events are dropped: only the DVS events
of an ATIS stream are returned.  Generic, display and color streams raise
:class:`EventFormatError` "unsupported Event Stream type".

Orientation: Event Stream stores y with the origin at the *bottom* left (the
Sepia/Tarsier convention); like faery 0.7 and event_stream 1.6 we return
``y = height - 1 - stored_y`` (origin top left, as every other reader here).
:func:`encode_es` flips back.

Damage: x >= width or y >= height (field ``x``/``y``, at the byte completing
the coordinate), a file ending inside an event (at the event's first byte).
"""

from __future__ import annotations

import struct
from typing import Iterator

import numba
import numpy as np

from eventpipe.events import EVENT_DTYPE
from eventpipe.io.base import EventReader

MAGIC = b"Event Stream"
TYPES = {0: "generic", 1: "dvs", 2: "atis", 3: "display", 4: "color"}
HEADER_BYTES = 20  # magic + version + type + width + height

# state: 0 t, 1 phase (0 idle, 1..4 bytes of x/y read next), 2 x, 3 y, 4 p,
#        5 is_tc, 6 absolute offset of the current event's first byte
_ERR_NONE, _ERR_X, _ERR_Y = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _decode_block(buf, base, atis, width, height, out_x, out_y, out_t, out_p, state, err):
    t = state[0]
    phase = state[1]
    x = state[2]
    y = state[3]
    p = state[4]
    tc = state[5]
    start = state[6]
    n = 0
    for i in range(buf.shape[0]):
        b = np.int64(buf[i])
        if phase == 0:
            if atis:
                if (b & 0xFC) == 0xFC:
                    t += 63 * (b & 3)
                    continue
                t += b >> 2
                p = (b >> 1) & 1
                tc = b & 1
            else:
                if b == 0xFF:
                    t += 127
                    continue
                if b == 0xFE:
                    continue
                t += b >> 1
                p = b & 1
                tc = 0
            start = base + i
            phase = 1
        elif phase == 1:
            x = b
            phase = 2
        elif phase == 2:
            x |= b << 8
            if x >= width:
                err[0] = _ERR_X
                err[1] = base + i
                err[2] = x
                break
            phase = 3
        elif phase == 3:
            y = b
            phase = 4
        else:
            y |= b << 8
            if y >= height:
                err[0] = _ERR_Y
                err[1] = base + i
                err[2] = y
                break
            phase = 0
            if tc == 0:
                out_x[n] = x
                out_y[n] = height - 1 - y
                out_t[n] = t
                out_p[n] = p
                n += 1
    state[0] = t
    state[1] = phase
    state[2] = x
    state[3] = y
    state[4] = p
    state[5] = tc
    state[6] = start
    return n


class EventStreamReader(EventReader):
    """Reader for Event Stream 2.x files of the DVS (and ATIS) type."""

    format = "es"
    title = "Event Stream .es (DVS type)"
    extensions = (".es",)

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head.startswith(MAGIC)

    def _parse_header(self) -> None:
        with self._open() as f:
            head = f.read(HEADER_BYTES)
        if not head.startswith(MAGIC):
            raise self.error(f"bad magic {head[:12]!r}, expected {MAGIC!r}", offset=0,
                             field="magic")
        if len(head) < 16:
            raise self.error("header truncated before the version and type bytes",
                             offset=len(head), field="version")
        major, minor, patch, etype = head[12], head[13], head[14], head[15]
        if major != 2:
            raise self.error(f"unsupported Event Stream version {major}.{minor}.{patch} "
                             "(only 2.x is read)", offset=12, field="version")
        name = TYPES.get(etype)
        if name not in ("dvs", "atis"):
            what = name or f"unknown type byte {etype}"
            raise self.error(f"unsupported Event Stream type: {what} (DVS and ATIS are read)",
                             offset=15, field="type")
        if len(head) < HEADER_BYTES:
            raise self.error("header truncated inside the sensor size", offset=len(head),
                             field="width/height")
        width, height = struct.unpack_from("<HH", head, 16)
        if width == 0 or height == 0:
            raise self.error(f"sensor size {width}x{height} is empty", offset=16,
                             field="width/height")
        self.etype = name
        self.width, self.height = width, height
        self.data_offset = HEADER_BYTES
        self.info.sensor_size = (width, height)
        self.info.sensor_size_source = "file"
        self.info.extras.update({"version": f"{major}.{minor}.{patch}", "event_type": name})
        if name == "atis":
            self.info.extras["note"] = "threshold-crossing (exposure) events are dropped"

    def _decode(self) -> Iterator[np.ndarray]:
        state = np.zeros(7, dtype=np.int64)
        err = np.zeros(3, dtype=np.int64)
        atis = self.etype == "atis"
        with self._open() as f:
            for offset, buf in self._byte_blocks(f, self.data_offset):
                out = np.empty((buf.size + 4) // 5, dtype=EVENT_DTYPE)
                n = _decode_block(buf, offset, atis, self.width, self.height, out["x"],
                                  out["y"], out["t"], out["p"], state, err)
                if n:
                    yield out[:n]
                if err[0] == _ERR_X:
                    raise self.error(f"x = {err[2]} outside the declared width {self.width}",
                                     offset=int(err[1]), field="x")
                if err[0] == _ERR_Y:
                    raise self.error(f"y = {err[2]} outside the declared height {self.height}",
                                     offset=int(err[1]), field="y")
        if state[1] != 0:
            raise self.error(f"file ends inside an event ({state[1]} of 5 bytes)",
                             offset=int(state[6]), field="event")


@numba.njit(cache=True, nogil=True)
def _encode_dvs(x, y, t, p, out):
    n = 0
    prev = 0
    for i in range(x.shape[0]):
        d = t[i] - prev
        prev = t[i]
        while d >= 127:
            out[n] = 0xFF
            n += 1
            d -= 127
        out[n] = (d << 1) | p[i]
        out[n + 1] = x[i] & 0xFF
        out[n + 2] = x[i] >> 8
        out[n + 3] = y[i] & 0xFF
        out[n + 4] = y[i] >> 8
        n += 5
    return n


def encode_es(events: np.ndarray, sensor_size, version=(2, 0, 0)) -> bytes:
    """Encode events as an Event Stream 2.x DVS file (timestamps >= 0,
    non-decreasing; coordinates inside ``sensor_size = (W, H)``)."""
    ev = np.asarray(events)
    w, h = (int(v) for v in sensor_size)
    t = ev["t"].astype(np.int64)
    if len(ev):
        if t[0] < 0 or np.any(np.diff(t) < 0):
            raise ValueError("encode_es needs non-decreasing timestamps >= 0")
        if ev["x"].max() >= w or ev["y"].max() >= h:
            raise ValueError("encode_es: coordinates outside sensor_size")
    header = MAGIC + bytes(version) + bytes([1]) + struct.pack("<HH", w, h)
    n_over = int((np.diff(np.concatenate([[0], t])) // 127).sum()) if len(ev) else 0
    out = np.empty(5 * len(ev) + n_over, dtype=np.uint8)
    n = _encode_dvs(ev["x"].astype(np.int64), h - 1 - ev["y"].astype(np.int64), t,
                    ev["p"].astype(np.int64), out)
    return header + out[:n].tobytes()
