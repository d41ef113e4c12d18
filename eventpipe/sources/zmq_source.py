"""``zmq+tcp://HOST:PORT``: eventpipe wire packets over ZeroMQ.

Default: a PULL socket that *binds* (senders PUSH-connect, see
:mod:`eventpipe.sources.sender`).  Options: ``mode="connect"`` (connect to a
binding sender), ``socket="sub"`` (SUB, subscribed to everything, for PUB
senders).  Port 0 binds an ephemeral port; ``.port`` / ``.endpoint`` tell which.

Malformed or foreign messages are counted (``stats.malformed``, the last error
in ``last_error``) and dropped, never fatal.  Sequence numbers are tracked per
stream: a jump forward adds to ``stats.gaps``, a (repeated) seq 0 is a sender
restart (``stats.restarts``), any other step back is ``stats.out_of_order``
(the packet is still delivered).

A message larger than ``max_message_bytes`` (``MAX_MESSAGE``, 64 MiB: 5 Mi events, 80 times
the sender's 65,536-event packets) is refused by libzmq before it is allocated
(``ZMQ_MAXMSGSIZE``): it closes that sender's connection (a PUSH sender reconnects and goes
on), so what the socket holds is bounded by ``rcvhwm`` x ``max_message_bytes``, never by
the size a peer claims.
"""

from __future__ import annotations

import time

import zmq

from eventpipe.errors import EventFormatError
from eventpipe.sources.base import Batch, Source
from eventpipe.transport.wire import decode_packet

SOCKET_TYPES = {"pull": zmq.PULL, "sub": zmq.SUB}
#: the largest message the source accepts (libzmq refuses a larger one before allocating it)
MAX_MESSAGE = 1 << 26
MODES = ("bind", "connect")
#: stream ids whose sequence numbers and sensor size a source keeps (as many as a run may
#: keep state for, ``runtime.max_streams``): ids come from the network, and one table entry
#: per distinct id grew the source without bound; later ids' packets are delivered untracked
MAX_TRACKED_STREAMS = 65536


class SequenceTracker:
    """Per-stream sequence bookkeeping (explicit state: ``last[stream] = seq``)."""

    def __init__(self):
        self.last: dict[int, int] = {}
        self.gaps: dict[int, int] = {}  # missing packets per stream

    def tracks(self, stream: int) -> bool:
        """Whether ``stream`` has (or may get) an entry: at most ``MAX_TRACKED_STREAMS``."""
        return stream in self.last or len(self.last) < MAX_TRACKED_STREAMS

    def update(self, stream: int, seq: int, stats) -> None:
        prev = self.last.get(stream)
        if prev is not None:
            if seq > prev + 1:
                stats.gaps += seq - prev - 1
                self.gaps[stream] = self.gaps.get(stream, 0) + seq - prev - 1
            elif seq == 0:
                stats.restarts += 1
            elif seq <= prev:
                stats.out_of_order += 1
                return  # keep the high-water mark
        self.last[stream] = seq


class ZmqSource(Source):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, mode: str = "bind",
                 socket: str = "pull", queue_size: int = 65536,
                 queue_events: int | None = 1 << 22, rcvhwm: int = 1000,
                 max_message_bytes: int = MAX_MESSAGE,
                 sensor_size=None, context: zmq.Context | None = None):
        super().__init__(queue_size=queue_size, sensor_size=sensor_size,
                         queue_events=queue_events)
        if mode not in MODES:
            raise ValueError(f"zmq source mode must be one of {MODES}, got {mode!r}")
        if socket not in SOCKET_TYPES:
            raise ValueError(f"zmq source socket must be one of {sorted(SOCKET_TYPES)}, "
                             f"got {socket!r}")
        if mode == "connect" and int(port) == 0:
            raise ValueError("zmq source in connect mode needs a port")
        if int(max_message_bytes) < 64:
            raise ValueError(f"max_message_bytes must be >= 64, got {max_message_bytes}")
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(SOCKET_TYPES[socket])
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self._sock.setsockopt(zmq.MAXMSGSIZE, int(max_message_bytes))
        if socket == "sub":
            self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        addr = f"tcp://{host}:{int(port)}"
        try:
            if mode == "bind":
                self._sock.bind(addr)
            else:
                self._sock.connect(addr)
        except zmq.ZMQError:
            self._sock.close(0)
            raise
        if mode == "bind":
            self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        else:
            self.endpoint = addr
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.mode = mode
        self.last_error: EventFormatError | None = None
        self.seq = SequenceTracker()
        self.stream_sizes: dict[int, tuple[int, int] | None] = {}
        self.untracked_packets = 0  # of stream ids past MAX_TRACKED_STREAMS

    def drop_advice(self) -> list[str]:
        out = super().drop_advice()
        if self.untracked_packets:
            out.append(f"{self.untracked_packets:,} packets of stream ids after the first "
                       f"{MAX_TRACKED_STREAMS:,}: delivered, but their sequence gaps and sensor "
                       "sizes were not tracked")
        return out

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        sock = self._sock
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            for _ in range(1000):  # drain what is ready, then re-check stop
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                self._handle(frames[-1], time.monotonic())

    def _handle(self, msg: bytes, t_arrival: float) -> None:
        try:
            pk = decode_packet(msg)
        except EventFormatError as exc:
            self.stats.malformed += 1
            self.last_error = exc
            return
        st = self.stats
        st.received += len(pk.events)
        st.packets += 1
        st.bytes += len(msg)
        if self.seq.tracks(pk.stream_id):
            self.seq.update(pk.stream_id, pk.seq, st)
            if pk.sensor_size is not None:
                self.stream_sizes[pk.stream_id] = pk.sensor_size
        else:
            self.untracked_packets += 1
        if pk.sensor_size is not None and self._sensor_size is None:
            self._sensor_size = pk.sensor_size
        self._put(Batch(pk.stream_id, pk.seq, pk.events, t_arrival), len(pk.events))

    def _release(self) -> None:
        self._sock.close(0)
