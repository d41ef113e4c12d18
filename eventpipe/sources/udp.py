"""``udp://HOST:PORT``: the UDP event formats that aestream and faery send.

Formats (``format=``; byte layouts in ``docs/protocol.md``):

- ``"aestream"`` (default): 32-bit little-endian words, SPIF-style.  Bit 31 set:
  an event without timestamp, ``x = bits 30..16``, ``p = bit 15``, ``y = bits 14..0``;
  the receiver stamps ``t`` = arrival time in us since the source started.  Bit 31
  clear: the word is followed by a u32 timestamp word (aestream's
  ``include_timestamp`` mode), used as ``t`` (unwrapped across 2**32).
- ``"t64_x16_y16_on8"`` (faery default): 13-byte records ``u64 t, u16 x, u16 y, u8 on``.
- ``"t32_x16_y15_on1"`` (faery): 8-byte records ``u32 t, u16 x, u16 (y << 1 | on)``;
  ``t`` is unwrapped across 2**32.

The receive thread does nothing per datagram beyond ``recvmsg`` into a bounded
queue; decoding happens in the consumer's ``read()``, several datagrams at a
time.  The queue is bounded in events (``queue_events``, 4 Mi by default: a
burst of a few seconds of a busy sensor, 16-52 MB) and in datagrams
(``queue_size``, 65,536); when full the oldest datagram goes, counted in
``stats.dropped``.  The kernel's receive buffer is raised to ``rcvbuf`` bytes
(32 MiB): with ``SO_RCVBUFFORCE`` where the process may (root or
CAP_NET_ADMIN), else ``SO_RCVBUF``, which Linux caps at ``net.core.rmem_max``
(``rcvbuf`` then holds what was granted, ``rcvbuf_capped`` is True and the
run summary says how to raise the cap).  Where Linux supports
``SO_RXQ_OVFL``, datagrams the kernel dropped are counted in
``stats.kernel_dropped``.
A datagram with a length that is not a multiple of the record size, a
coordinate outside ``sensor_size`` or a bad polarity is dropped whole and
counted in ``stats.malformed`` (``last_error`` says why).
"""

from __future__ import annotations

import socket
import struct
import time

import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.sources.base import Batch, Source

FORMATS = {"aestream": 4, "t64_x16_y16_on8": 13, "t32_x16_y15_on1": 8}
T64 = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "u1")])
T32 = np.dtype([("t", "<u4"), ("x", "<u2"), ("yon", "<u2")])
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux value
MAX_DATAGRAM = 65536
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux value
DEFAULT_RCVBUF = 32 << 20
DEFAULT_QUEUE_EVENTS = 1 << 22


def rmem_max() -> int | None:
    """``net.core.rmem_max`` (the cap on SO_RCVBUF without privilege), None if unknown."""
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def raise_rcvbuf(sock: socket.socket, want: int) -> tuple[int, bool]:
    """Ask for a ``want``-byte receive buffer (SO_RCVBUFFORCE first, then SO_RCVBUF).
    Returns ``(granted bytes, capped)``; Linux reports twice the usable size it set
    aside for payload, so ``granted >= want`` means the request held."""
    for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, int(want))
        except OSError:
            continue
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if granted >= want:
            return granted, False
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), True

class Unwrap32:
    """Unwraps a 32-bit timestamp sequence into int64 (explicit state)."""

    def __init__(self):
        self.last: int | None = None
        self.wraps = 0

    def __call__(self, t32: np.ndarray) -> np.ndarray:
        t = t32.astype(np.int64)
        if len(t) == 0:
            return t
        prev = t[0] if self.last is None else self.last
        d = np.diff(t, prepend=prev)
        wraps = self.wraps + np.cumsum(d < -(1 << 31))
        self.last = int(t[-1])
        self.wraps = int(wraps[-1])
        return t + (wraps << 32)


def decode_datagram(data: bytes, fmt: str, arrival_us: int, unwrap: Unwrap32,
                    sensor_size=None) -> np.ndarray:
    """Decode one datagram; raises EventFormatError (offset/field) when malformed."""
    size = FORMATS[fmt]
    n = len(data)
    if n % size:
        raise EventFormatError(f"datagram of {n} bytes is not a multiple of the {size}-byte "
                               f"{fmt} record", offset=n - n % size, field="length")
    if fmt == "aestream":
        w = np.frombuffer(data, "<u4")
        if len(w) and (w[0] >> 31) == 0:  # timestamped pairs
            if len(w) % 2 or np.any(w[0::2] >> 31):
                raise EventFormatError("aestream datagram mixes timestamped and plain words",
                                       offset=0, field="word")
            ts, w = unwrap(w[1::2]), w[0::2]
        else:
            bad = np.flatnonzero((w >> 31) == 0)
            if bad.size:
                raise EventFormatError("aestream word without the no-timestamp bit inside a "
                                       "plain datagram", offset=4 * int(bad[0]), field="word")
            ts = np.full(len(w), arrival_us, np.int64)
        out = np.empty(len(w), EVENT_DTYPE)
        out["x"] = (w >> 16) & 0x7FFF
        out["y"] = w & 0x7FFF
        out["p"] = (w >> 15) & 1
        out["t"] = ts
    elif fmt == "t64_x16_y16_on8":
        r = np.frombuffer(data, T64)
        if len(r):
            bad = np.flatnonzero(r["on"] > 1)
            if bad.size:
                raise EventFormatError(f"polarity byte {r['on'][bad[0]]} is not 0/1",
                                       offset=13 * int(bad[0]) + 12, field="on")
            if int(r["t"].max()) > (1 << 63) - 1:
                raise EventFormatError("timestamp exceeds int64", offset=0, field="t")
        out = np.empty(len(r), EVENT_DTYPE)
        out["x"], out["y"], out["p"] = r["x"], r["y"], r["on"]
        out["t"] = r["t"].astype(np.int64)
    else:
        r = np.frombuffer(data, T32)
        out = np.empty(len(r), EVENT_DTYPE)
        out["x"] = r["x"]
        out["y"] = (r["yon"] >> 1) & 0x7FFF
        out["p"] = r["yon"] & 1
        out["t"] = unwrap(r["t"])
    if sensor_size is not None and len(out):
        for name, lim in (("x", sensor_size[0]), ("y", sensor_size[1])):
            bad = np.flatnonzero(out[name] >= lim)
            if bad.size:
                raise EventFormatError(f"event {int(bad[0])}: {name}={out[name][bad[0]]} outside "
                                       f"the {sensor_size[0]}x{sensor_size[1]} sensor",
                                       offset=size * int(bad[0]), field=name)
    return out


class UdpSource(Source):
    MALFORMED = "{n:,} datagrams rejected as malformed"
    read_limit = 256  # datagrams decoded per read()

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, format: str = "aestream",
                 sensor_size=None, stream_id: int = 0, queue_size: int = 65536,
                 queue_events: int | None = DEFAULT_QUEUE_EVENTS, rcvbuf: int = DEFAULT_RCVBUF):
        if format not in FORMATS:
            raise ValueError(f"udp format must be one of {sorted(FORMATS)}, got {format!r}")
        super().__init__(queue_size=queue_size, sensor_size=sensor_size,
                         queue_events=queue_events)
        self.format = format
        self.stream_id = int(stream_id)
        self.rcvbuf_requested = int(rcvbuf)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                   socket.SOCK_DGRAM)
        try:
            self.rcvbuf, self.rcvbuf_capped = raise_rcvbuf(self._sock, int(rcvbuf))
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                self._ovfl = True
            except OSError:
                self._ovfl = False
            self._sock.bind((host, int(port)))
        except OSError as exc:
            self._sock.close()
            # name the endpoint: a bare '[Errno 99] Cannot assign requested address' does not
            # say which host (one not on this machine) or port (taken) was wrong
            raise OSError(exc.errno, f"cannot bind: {exc.strerror or exc}",
                          f"udp://{host}:{int(port)}") from None
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()[:2]
        self.endpoint = f"udp://{host}:{self.port}"
        self._t0_ns = time.monotonic_ns()
        self._unwrap = Unwrap32()
        self._seq = 0
        self.last_error: EventFormatError | None = None

    def _run(self) -> None:
        sock, stop, st, size = self._sock, self._stop, self.stats, FORMATS[self.format]
        anc = socket.CMSG_SPACE(4) if self._ovfl else 0
        last_ovfl = 0
        while not stop.is_set():
            try:
                data, ancdata, _, _ = sock.recvmsg(MAX_DATAGRAM, anc)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                if stop.is_set():
                    return
                raise
            now = time.monotonic_ns()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    total = struct.unpack_from("=I", value)[0]
                    st.kernel_dropped += (total - last_ovfl) & 0xFFFFFFFF
                    last_ovfl = total
            st.packets += 1
            st.bytes += len(data)
            self._put((now, data), len(data) // size)

    def _to_batches(self, items: list) -> list[Batch]:
        parts = []
        for arrival_ns, data in items:
            try:
                ev = decode_datagram(data, self.format, (arrival_ns - self._t0_ns) // 1000,
                                     self._unwrap, self._sensor_size)
            except EventFormatError as exc:
                self.stats.malformed += 1
                self.last_error = exc
                continue
            parts.append(ev)
        if not parts:
            return []
        events = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.stats.received += len(events)
        seq = self._seq
        self._seq += 1
        return [Batch(self.stream_id, seq, events, items[0][0] * 1e-9)]

    def drop_advice(self) -> list[str]:
        out = super().drop_advice()
        k = self.stats.kernel_dropped
        if k:
            cap = rmem_max()
            why = (f"capped by net.core.rmem_max = {cap:,}: raise it (sysctl -w "
                   f"net.core.rmem_max={self.rcvbuf_requested}) or run with CAP_NET_ADMIN"
                   if self.rcvbuf_capped else "the receive thread fell behind the sender")
            out.append(f"{k:,} datagrams dropped by the kernel before we saw them: receive "
                       f"buffer {self.rcvbuf:,} bytes ({why})")
        return out

    def _release(self) -> None:
        self._sock.close()
