"""The producer side of ``zmq+tcp://``: send recordings or arrays as wire packets.

``send_recording(path, "tcp://127.0.0.1:5555", speed=1.0)`` is what
``eventpipe send FILE --to tcp://HOST:PORT [--speed X]`` runs: a PUSH socket
connects to the receiving source, and packets go out paced by event time
(``speed`` x real time) or as fast as possible (``speed=None``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Iterable

import numpy as np
import zmq

from eventpipe.events import as_events
from eventpipe.sources.uri import parse_tcp_endpoint
from eventpipe.transport.wire import encode_packet

SOCKETS = {"push": zmq.PUSH, "pub": zmq.PUB}


class Sender:
    """Wire packets out: ``send(events)`` encodes with the next sequence number of the
    current ``stream_id`` (each stream id counts from 0 on its own, as receivers track
    them; set ``stream_id`` between sends to interleave streams).

    ``socket="push"`` blocks (up to ``send_timeout_s``, then ``TimeoutError``)
    when the receiver is gone and the high-water mark is reached; ``"pub"``
    never blocks (ZeroMQ drops for slow subscribers).

    ``confirm=True`` (what ``eventpipe send`` uses) makes delivery checked: packets
    queue only on a connection a receiver has accepted (``ZMQ_IMMEDIATE``), so the
    first send fails with ``TimeoutError`` after ``send_timeout_s`` when nobody
    listens, and :meth:`close` waits up to ``linger_s`` for the queue to drain into
    the connection and raises ``TimeoutError`` if it did not.
    """

    def __init__(self, endpoint: str, *, stream_id: int = 0, sensor_size=None,
                 socket: str = "push", bind: bool = False, sndhwm: int = 1000,
                 send_timeout_s: float = 10.0, linger_s: float = 5.0, crc: bool = True,
                 context: zmq.Context | None = None, confirm: bool = False):
        if socket not in SOCKETS:
            raise ValueError(f"sender socket must be one of {sorted(SOCKETS)}, got {socket!r}")
        host, port = parse_tcp_endpoint(endpoint)
        self.stream_id = int(stream_id)
        self.sensor_size = None if sensor_size is None else tuple(int(v) for v in sensor_size)
        self._next_seq: dict[int, int] = {}  # per stream id
        self.crc = crc
        self.counts = {"packets": 0, "events": 0, "bytes": 0}
        self.confirm = bool(confirm)
        self.linger_s = float(linger_s)
        self.send_timeout_s = float(send_timeout_s)
        # a confirming sender owns its context: terminating it is how we learn that the
        # queue drained
        self._own_ctx = confirm and context is None
        self._ctx = zmq.Context() if self._own_ctx else (context or zmq.Context.instance())
        self._sock = self._ctx.socket(SOCKETS[socket])
        if confirm:
            self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._sock.setsockopt(zmq.SNDTIMEO, int(send_timeout_s * 1000))
        self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        addr = f"tcp://{host}:{port}"
        if bind:
            self._sock.bind(addr)
            self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        else:
            self._sock.connect(addr)
            self.endpoint = addr

    @property
    def seq(self) -> int:
        """The sequence number the next packet of ``stream_id`` gets."""
        return self._next_seq.get(self.stream_id, 0)

    def send(self, events) -> int:
        """Send one packet; returns its sequence number."""
        seq = self.seq
        msg = encode_packet(events, self.stream_id, seq, self.sensor_size, crc=self.crc)
        self.send_raw(msg)
        self._next_seq[self.stream_id] = seq + 1
        self.counts["packets"] += 1
        self.counts["events"] += len(events)
        return seq

    def send_raw(self, msg: bytes) -> None:
        """Send arbitrary bytes (tests use it for garbage)."""
        try:
            self._sock.send(msg)
        except zmq.Again:
            if self.confirm and self.counts["packets"] == 0:
                raise TimeoutError(f"no receiver at {self.endpoint}: nothing accepted the "
                                   f"connection within {self.send_timeout_s:g} s") from None
            raise TimeoutError(f"send to {self.endpoint} timed out after "
                               f"{self.send_timeout_s:g} s (no receiver?); "
                               f"{self.counts['packets']} packets sent before") from None
        self.counts["bytes"] += len(msg)

    def close(self) -> None:
        """Close the socket; a confirming sender raises ``TimeoutError`` when packets
        were still queued after ``linger_s``."""
        if self._sock.closed:
            return
        self._sock.close(linger=int(self.linger_s * 1000))
        if self._own_ctx:
            t0 = time.monotonic()
            self._ctx.term()  # returns when the queue drained, or when linger expired
            if self.counts["packets"] and time.monotonic() - t0 >= 0.95 * self.linger_s:
                raise TimeoutError(f"{self.endpoint}: packets still queued after "
                                   f"{self.linger_s:g} s; the receiver went away or stalled, "
                                   f"some of {self.counts['packets']} packets were not delivered")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:  # the error in flight says more than a failed drain
            try:
                self.close()
            except TimeoutError:
                pass


def _split(events: np.ndarray, max_events: int) -> Iterable[np.ndarray]:
    for i in range(0, len(events), max_events):
        yield events[i:i + max_events]


def send_events(chunks: Iterable[np.ndarray], endpoint: str, *, speed: float | None = None,
                stream_id: int = 0, sensor_size=None, max_events: int = 65536,
                sender: Sender | None = None, stop: threading.Event | None = None,
                **sender_options) -> dict:
    """Send an iterable of event arrays; pacing as :func:`send_recording`.  ``stop`` (an
    Event) ends the sending before the next packet, as the end of ``chunks`` does (what was
    sent is still delivered and counted; ``stopped`` True in the counts)."""
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0 or None, got {speed}")
    if int(max_events) < 1:
        raise ValueError(f"max_events must be >= 1, got {max_events}")
    own = sender is None
    if own:
        sender = Sender(endpoint, stream_id=stream_id, sensor_size=sensor_size, **sender_options)
    t0_wall = time.monotonic()
    t0_ev = None
    stop = stop or threading.Event()
    ok = False
    try:
        for chunk in chunks:
            chunk = as_events(chunk)
            for part in _split(chunk, int(max_events)):
                if len(part) == 0:
                    continue
                if speed is not None:
                    if t0_ev is None:
                        t0_ev = int(part["t"][0])
                    due = t0_wall + (int(part["t"][0]) - t0_ev) * 1e-6 / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        # pacing: a deadline, not polling (capped: a tiny speed overflows)
                        stop.wait(min(delay, threading.TIMEOUT_MAX))
                if stop.is_set():
                    break
                sender.send(part)
            if stop.is_set():
                break
        ok = True
    finally:
        if own:
            try:
                sender.close()
            except TimeoutError:
                if ok:
                    raise
    out = dict(sender.counts)
    out["duration_s"] = time.monotonic() - t0_wall
    if stop.is_set():
        out["stopped"] = True
    return out


def send_recording(path: str | os.PathLike, endpoint: str, *, speed: float | None = None,
                   chunk_us: int = 10_000, stream_id: int = 0, sensor_size=None,
                   max_events: int = 65536, **sender_options) -> dict:
    """Send a recording to a ``zmq+tcp://`` source (PUSH, connecting).

    One packet per ``chunk_us`` of event time (split at ``max_events``).  The
    sensor size comes from the file unless given.  Returns counts: ``packets``,
    ``events``, ``bytes``, ``duration_s``.
    """
    from eventpipe.io import iter_events, open_reader

    if sensor_size is None:
        sensor_size = open_reader(path).info.sensor_size
        if sensor_size is not None and max(sensor_size) > 0xFFFF:
            sensor_size = None
    chunks = iter_events(path, chunk_us=int(chunk_us))
    return send_events(chunks, endpoint, speed=speed, stream_id=stream_id,
                       sensor_size=sensor_size, max_events=max_events, **sender_options)
