"""``dv://HOST:PORT``: the DV TCP event stream (dv-processing ``NetworkWriter``, DV runtime).

We are the client.  On connect the server sends (all little-endian):

1. a u32 size, then that many bytes: the IOHeader FlatBuffer (identifier
   ``"IOHE"``): field 0 ``compression`` (0 none, 1 LZ4, 2 LZ4_HIGH, 3 ZSTD,
   4 ZSTD_HIGH), field 2 ``infoNode`` (XML describing the stream: id,
   ``typeIdentifier`` ``EVTS``, ``sizeX``/``sizeY``, ``source``);
2. then packets: i32 stream id, i32 size, ``size`` bytes of (compressed)
   size-prefixed FlatBuffer ``EventPacket`` (identifier ``"EVTS"``,
   ``elements: [Event]`` with ``struct Event { i64 timestamp; i16 x; i16 y;
   bool on; pad[3] }``).

This is AEDAT 4.0 without the ``#!AER-DAT4.0`` line and without a file table.
A malformed packet is counted in ``stats.malformed`` and skipped (the framing
is still intact); so is a packet larger than ``MAX_PACKET`` (64 MiB) once
decompressed: decompression stops there, so a compression bomb costs at most
that much memory; a bad greeting or framing closes the connection.  With
``reconnect=True`` (default) a lost or refused connection is retried every
``retry_interval_s`` (interruptible by ``close()``); ``stats.reconnects``
counts successful reconnections.  Without it, the source finishes when the
server goes away.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.io.aedat4 import COMPRESSION, MAX_PACKET, decompress  # noqa: F401 (re-exported)
from eventpipe.io.flatbuffers import FlatBufferError, root_table
from eventpipe.sources.base import Batch, Source

DV_EVENT = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"],
                     "offsets": [0, 8, 10, 12], "itemsize": 16})
MAX_HEADER = 1 << 20
_PKT = struct.Struct("<ii")


class _Closed(Exception):
    """The peer closed the connection; ``cut``: in the middle of a greeting or packet (what
    had arrived of it is lost, counted in ``stats.malformed``)."""

    def __init__(self, message: str, cut: bool = False, got: int = 0):
        super().__init__(message)
        self.cut, self.got = cut, got


def parse_greeting(buf: bytes) -> dict:
    """The IOHeader: compression, and the event streams ``{id: (W, H) | None}``."""
    from eventpipe.io.aedat4 import parse_info_node

    try:
        hdr = root_table(buf, identifier=b"IOHE", name="IOHeader")
        comp = hdr.scalar(0, "i", 0, "compression")
        xml_text = hdr.string(2, "infoNode") or ""
    except FlatBufferError as exc:
        raise EventFormatError(str(exc), offset=4 + (exc.pos or 0),
                               field=exc.field or "IOHeader") from None
    if comp not in COMPRESSION:
        raise EventFormatError(f"unknown compression {comp}", offset=4, field="compression")
    try:
        streams = parse_info_node(xml_text)
    except ET.ParseError as exc:
        raise EventFormatError(f"infoNode XML is malformed: {exc}", field="infoNode") from None
    events = {}
    for sid, attrs in streams.items():
        if attrs.get("typeIdentifier") == "EVTS":
            sx, sy = attrs.get("sizeX"), attrs.get("sizeY")
            ok = isinstance(sx, int) and isinstance(sy, int) and sx > 0 and sy > 0
            events[sid] = (sx, sy) if ok else None
    return {"compression": comp, "events": events, "streams": streams}


def decode_event_packet(data: bytes, sensor_size=None) -> np.ndarray:
    """A decompressed ``EVTS`` EventPacket -> EVENT_DTYPE (checks x/y/on)."""
    prefixed = data[8:12] == b"EVTS"
    try:
        tab = root_table(data, size_prefixed=prefixed, identifier=b"EVTS", name="EventPacket")
        start, count = tab.vector(0, 16, "elements")
    except FlatBufferError as exc:
        raise EventFormatError(str(exc), offset=exc.pos, field=exc.field or "EventPacket") \
            from None
    raw = np.frombuffer(data, DV_EVENT, count, start)
    for name in ("x", "y"):
        lim = sensor_size[0 if name == "x" else 1] if sensor_size else 1 << 15
        bad = np.flatnonzero((raw[name] < 0) | (raw[name] >= lim))
        if bad.size:
            i = int(bad[0])
            raise EventFormatError(f"event {i}: {name}={raw[name][i]} outside the sensor",
                                   offset=start + 16 * i, field=name)
    bad = np.flatnonzero(raw["on"] > 1)
    if bad.size:
        raise EventFormatError(f"event {int(bad[0])}: on={raw['on'][bad[0]]} is not 0/1",
                               offset=start + 16 * int(bad[0]) + 12, field="on")
    out = np.empty(count, EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = raw["x"], raw["y"], raw["t"], raw["on"]
    return out


class DvSource(Source):
    MALFORMED = "{n:,} malformed greetings or packets dropped"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, reconnect: bool = True,
                 retry_interval_s: float = 0.2, connect_timeout_s: float = 2.0,
                 stream_id: int | None = None, queue_size: int = 65536,
                 queue_events: int | None = 1 << 22, sensor_size=None):
        if int(port) <= 0:
            raise ValueError("dv:// needs the server's port")
        super().__init__(queue_size=queue_size, sensor_size=sensor_size,
                         queue_events=queue_events)
        self.host, self.port = host, int(port)
        self.endpoint = f"dv://{host}:{self.port}"
        self.reconnect = bool(reconnect)
        self.retry_interval_s = float(retry_interval_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.want_stream = stream_id
        self.stream_id: int | None = None
        self.compression: int | None = None
        self.connections = 0
        self.last_error: Exception | None = None
        self._sock: socket.socket | None = None
        self._connected = threading.Event()

    # -- receive thread ---------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sock = socket.create_connection((self.host, self.port),
                                                      timeout=self.connect_timeout_s)
            except OSError as exc:
                self.last_error = exc
                if not self.reconnect:
                    raise ConnectionError(f"{self.endpoint}: {exc}") from exc
                self._stop.wait(self.retry_interval_s)
                continue
            self._sock.settimeout(0.1)
            self.connections += 1
            if self.connections > 1:
                self.stats.reconnects += 1
            try:
                self._session()
            except (_Closed, ConnectionError, EventFormatError) as exc:
                self.last_error = exc
                if isinstance(exc, EventFormatError) or getattr(exc, "cut", False):
                    self.stats.malformed += 1
            finally:
                self._sock.close()
            if not self.reconnect:
                return
            self._stop.wait(self.retry_interval_s)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            if self._stop.is_set():
                raise _Closed("closing")
            try:
                k = self._sock.recv_into(view[got:], n - got)
            except socket.timeout:
                continue
            if k == 0:
                raise _Closed("server closed the connection"
                              + (f" {got:,} bytes into a {n:,}-byte read" if got else ""),
                              cut=got > 0, got=got)
            got += k
        return bytes(buf)

    def _session(self) -> None:
        size = struct.unpack("<I", self._recv_exact(4))[0]
        if not 8 <= size <= MAX_HEADER:
            raise EventFormatError(f"IOHeader size {size} out of range", offset=0,
                                   field="header size")
        info = parse_greeting(self._recv_exact(size))
        ids = sorted(info["events"])
        if not ids:
            raise EventFormatError("server offers no EVTS stream", field="infoNode")
        sid = self.want_stream if self.want_stream is not None else ids[0]
        if sid not in info["events"]:
            raise EventFormatError(f"no EVTS stream {sid} (offered: {ids})", field="stream_id")
        self.stream_id, self.compression = sid, info["compression"]
        if self._sensor_size is None and info["events"][sid]:
            self._sensor_size = info["events"][sid]
        self._connected.set()  # after the size: wait_connected() then sensor_size holds
        seq = 0
        while True:
            psid, psize = _PKT.unpack(self._recv_exact(8))
            if not 0 < psize <= MAX_PACKET:
                raise EventFormatError(f"packet size {psize} out of range", field="packet size")
            try:
                raw = self._recv_exact(psize)
            except _Closed as exc:
                if self._stop.is_set():
                    raise
                raise _Closed(f"server closed the connection {exc.got:,} bytes into a "
                              f"{psize:,}-byte packet", cut=True) from None
            t_arrival = time.monotonic()
            if psid != sid:
                continue
            try:
                ev = decode_event_packet(decompress(self.compression, raw), self._sensor_size)
            except EventFormatError as exc:
                self.stats.malformed += 1
                self.last_error = exc
                continue
            self.stats.received += len(ev)
            self.stats.packets += 1
            self.stats.bytes += psize
            self._put(Batch(sid, seq, ev, t_arrival), len(ev))
            seq += 1

    def drop_advice(self) -> list[str]:
        out = super().drop_advice()
        if not self.connections and self.last_error is not None:
            again = (f"retried every {self.retry_interval_s:g} s" if self.reconnect
                     else "not retried")
            out.append(f"{self.endpoint}: never connected ({again}; last error: "
                       f"{self.last_error}): is the DV server running on that port?")
        return out

    def wait_connected(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until a greeting has been parsed."""
        return self._connected.wait(timeout)
