"""The eventpipe wire format: one self-describing binary message per event packet.

Layout (little-endian; the full specification is ``docs/protocol.md``)::

    offset size field
         0    4 magic       b"EVPK"
         4    1 version     1
         5    1 flags       bit 0 CRC32 trailer, bit 1 wide (u64) time deltas; others 0
         6    2 reserved    0
         8    4 stream_id   u32
        12    2 width       u16 (0 = unknown)
        14    2 height      u16 (0 = unknown)
        16    8 seq         u64, per stream, +1 per packet
        24    8 t_base      i64 microseconds (the smallest t of the packet; 0 when empty)
        32    4 count       u32 number of events
        36    -             columns: x u16[count], y u16[count], dt u32/u64[count], p u8[count]
         end  4 crc32       (flag bit 0) zlib.crc32 of every byte before it

The columns are stored one after another (struct-of-arrays) so that encoding and
decoding are a handful of vectorised copies.  ``t = t_base + dt``.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE, as_events

MAGIC = b"EVPK"
VERSION = 1
FLAG_CRC = 0x01
FLAG_WIDE_DT = 0x02
KNOWN_FLAGS = FLAG_CRC | FLAG_WIDE_DT
HEADER = struct.Struct("<4sBBHIHHQqI")
HEADER_SIZE = HEADER.size  # 36
CRC_SIZE = 4
MAX_EVENTS = (1 << 32) - 1

# byte offset of each header field, for error messages
FIELD_OFFSETS = {"magic": 0, "version": 4, "flags": 5, "reserved": 6, "stream_id": 8,
                 "width": 12, "height": 14, "seq": 16, "t_base": 24, "count": 32}


class Packet(NamedTuple):
    """A decoded wire packet. ``sensor_size`` is ``(W, H)`` or ``None`` (unknown)."""

    stream_id: int
    seq: int
    sensor_size: tuple[int, int] | None
    events: np.ndarray


def event_bytes(flags: int) -> int:
    """Bytes per event for a packet with ``flags``."""
    return 2 + 2 + (8 if flags & FLAG_WIDE_DT else 4) + 1


def encode_packet(events, stream_id: int = 0, seq: int = 0, sensor_size=None, *,
                  crc: bool = True) -> bytes:
    """Encode ``events`` (an EVENT_DTYPE array) as one wire message.

    ``sensor_size`` is ``(W, H)`` with both <= 65535, or ``None`` (sent as 0, 0:
    unknown).  Time deltas are stored as u32 unless the packet spans more than
    2**32 - 1 us, then as u64 (flag bit 1).  Raises ``ValueError`` for out of
    range header values.
    """
    ev = as_events(events)
    n = len(ev)
    if not 0 <= int(stream_id) <= 0xFFFFFFFF:
        raise ValueError(f"stream_id must fit u32, got {stream_id}")
    if not 0 <= int(seq) <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"seq must fit u64, got {seq}")
    if n > MAX_EVENTS:
        raise ValueError(f"too many events for one packet: {n}")
    if sensor_size is None:
        w = h = 0
    else:
        w, h = (int(v) for v in sensor_size)
        if not (0 < w <= 0xFFFF and 0 < h <= 0xFFFF):
            raise ValueError(f"sensor_size must be (W, H) with 0 < W, H <= 65535, got {(w, h)}")
    flags = FLAG_CRC if crc else 0
    if n:
        t = ev["t"]
        t_base = int(t.min())
        span = int(t.max()) - t_base
        if span > 0xFFFFFFFF:
            flags |= FLAG_WIDE_DT
        dt = (t - t_base).astype("<u8" if flags & FLAG_WIDE_DT else "<u4")
    else:
        t_base = 0
        dt = np.empty(0, "<u4")
    head = HEADER.pack(MAGIC, VERSION, flags, 0, int(stream_id), w, h, int(seq), t_base, n)
    parts = [head, ev["x"].astype("<u2").tobytes(), ev["y"].astype("<u2").tobytes(),
             dt.tobytes(), ev["p"].astype("u1").tobytes()]
    body = b"".join(parts)
    if crc:
        body += struct.pack("<I", zlib.crc32(body))
    return body


def _err(msg: str, field: str) -> EventFormatError:
    return EventFormatError(msg, offset=FIELD_OFFSETS.get(field), field=field)


def peek_header(buf) -> dict:
    """Parse and check the fixed header only (no payload checks)."""
    mv = memoryview(buf)
    if len(mv) < 4 or bytes(mv[:4]) != MAGIC:
        got = bytes(mv[:4])
        raise EventFormatError(f"not an eventpipe packet: magic {got!r}, expected {MAGIC!r}",
                               offset=0, field="magic")
    if len(mv) < HEADER_SIZE:
        raise EventFormatError(f"truncated header: {len(mv)} of {HEADER_SIZE} bytes",
                               offset=len(mv), field="header")
    magic, ver, flags, res, sid, w, h, seq, t_base, n = HEADER.unpack_from(mv, 0)
    if ver != VERSION:
        raise _err(f"unsupported version {ver} (this reader knows {VERSION})", "version")
    if flags & ~KNOWN_FLAGS:
        raise _err(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:02x}", "flags")
    if res != 0:
        raise _err(f"reserved field must be 0, got {res}", "reserved")
    if (w == 0) != (h == 0):
        raise _err(f"sensor size {w}x{h}: both or neither must be 0", "width")
    return {"flags": flags, "stream_id": sid, "width": w, "height": h, "seq": seq,
            "t_base": t_base, "count": n}


def decode_packet(buf) -> Packet:
    """Decode one wire message; raise :class:`EventFormatError` naming the byte
    offset and field of the first problem (foreign magic, truncation, trailing
    bytes, CRC mismatch, coordinates outside the sensor, polarity not 0/1)."""
    mv = memoryview(buf).cast("B")
    hd = peek_header(mv)
    flags, n = hd["flags"], hd["count"]
    crc_len = CRC_SIZE if flags & FLAG_CRC else 0
    need = HEADER_SIZE + n * event_bytes(flags) + crc_len
    if len(mv) < need:
        raise EventFormatError(f"truncated packet: count {n} needs {need} bytes, got {len(mv)}",
                               offset=len(mv), field="events")
    if len(mv) > need:
        raise EventFormatError(f"{len(mv) - need} trailing bytes after the packet "
                               f"(count {n} needs {need})", offset=need, field="count")
    if crc_len:
        want = struct.unpack_from("<I", mv, need - CRC_SIZE)[0]
        got = zlib.crc32(mv[:need - CRC_SIZE])
        if want != got:
            raise EventFormatError(f"CRC32 mismatch: trailer 0x{want:08x}, data 0x{got:08x}",
                                   offset=need - CRC_SIZE, field="crc32")
    dt_type = "<u8" if flags & FLAG_WIDE_DT else "<u4"
    off = HEADER_SIZE
    x = np.frombuffer(mv, "<u2", n, off)
    off += 2 * n
    y = np.frombuffer(mv, "<u2", n, off)
    off += 2 * n
    dt = np.frombuffer(mv, dt_type, n, off)
    off_p = off + dt.itemsize * n
    p = np.frombuffer(mv, "u1", n, off_p)
    w, h = hd["width"], hd["height"]
    if n:
        bad = np.flatnonzero(p > 1)
        if bad.size:
            i = int(bad[0])
            raise EventFormatError(f"event {i}: polarity {p[i]} is not 0/1",
                                   offset=off_p + i, field="p")
        if w:
            for name, col, lim, base in (("x", x, w, HEADER_SIZE), ("y", y, h, HEADER_SIZE + 2 * n)):
                bad = np.flatnonzero(col >= lim)
                if bad.size:
                    i = int(bad[0])
                    raise EventFormatError(f"event {i}: {name}={col[i]} outside the {w}x{h} "
                                           "sensor", offset=base + 2 * i, field=name)
        if flags & FLAG_WIDE_DT and int(dt.max()) > (1 << 63) - 1 - hd["t_base"]:
            raise EventFormatError("time delta overflows int64", offset=off, field="dt")
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = x
    ev["y"] = y
    ev["t"] = dt.astype(np.int64) + np.int64(hd["t_base"])
    ev["p"] = p
    return Packet(hd["stream_id"], hd["seq"], (w, h) if w else None, ev)


__all__ = ["MAGIC", "VERSION", "HEADER_SIZE", "FLAG_CRC", "FLAG_WIDE_DT", "Packet",
           "encode_packet", "decode_packet", "peek_header", "event_bytes"]
