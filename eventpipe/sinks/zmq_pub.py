"""Label messages over ZeroMQ PUB/SUB.

The sink binds an XPUB socket (a PUB that also sees subscriptions, so
:meth:`ZmqPubSink.wait_subscribers` can wait for a listener instead of
sleeping).  Each message is two frames: the topic (the stream id as ASCII,
e.g. ``b"0"``) and the JSON text.  PUB never blocks: messages for a listener
that is too slow (beyond ``sndhwm``) are dropped by ZeroMQ.
"""

from __future__ import annotations

import json
import time
from typing import Iterator, Sequence

import zmq

from eventpipe.sinks.base import Sink, to_json
from eventpipe.sources.uri import parse_tcp_endpoint

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


class ZmqPubSink(Sink):
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, sndhwm: int = 10000,
                 linger_s: float = 1.0, context: zmq.Context | None = None):
        host, port = parse_tcp_endpoint(endpoint)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        try:
            self._sock.bind(f"tcp://{host}:{port}")
        except zmq.ZMQError:
            self._sock.close(0)
            raise
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.count = 0
        self.subscribers = 0  # net subscriptions seen (subscribe - unsubscribe)

    def _drain_subscriptions(self, timeout_ms: int = 0) -> None:
        while self._sock.poll(timeout_ms, zmq.POLLIN):
            frame = self._sock.recv()
            if frame[:1] == b"\x01":
                self.subscribers += 1
            elif frame[:1] == b"\x00":
                self.subscribers -= 1
            timeout_ms = 0

    def wait_subscribers(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``n`` subscriptions arrived (True) or ``timeout`` s passed."""
        deadline = time.monotonic() + timeout
        while self.subscribers < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._drain_subscriptions(int(left * 1000) + 1)
        return True

    def write(self, msg: dict) -> None:
        if self.closed:
            raise ValueError("write to a closed sink")
        self._drain_subscriptions()
        topic = str(msg.get("stream", "")).encode()
        self._sock.send_multipart([topic, to_json(msg).encode()])
        self.count += 1

    def close(self) -> None:
        if not self.closed:
            self._sock.close()
            self.closed = True


def listen(endpoint: str = DEFAULT_ENDPOINT, n: int | None = None, timeout: float | None = None,
           *, topics: Sequence[str] | None = None, stats: dict | None = None,
           context: zmq.Context | None = None) -> Iterator[dict]:
    """Subscribe to a PUB sink and yield label dicts.

    Stops after ``n`` messages, or when no message came for ``timeout`` seconds
    (``None``: wait forever).  ``topics`` limits to some stream ids.  Messages
    that are not JSON objects are skipped and counted in ``stats["malformed"]``.
    """
    host, port = parse_tcp_endpoint(endpoint)
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    for t in (topics if topics is not None else [""]):
        sock.setsockopt(zmq.SUBSCRIBE, str(t).encode())
    stats = {} if stats is None else stats
    stats.setdefault("received", 0)
    stats.setdefault("malformed", 0)
    got = 0
    try:
        sock.connect(f"tcp://{host}:{port}")
        while n is None or got < n:
            if not sock.poll(None if timeout is None else int(timeout * 1000), zmq.POLLIN):
                return
            frames = sock.recv_multipart()
            try:
                msg = json.loads(frames[-1])
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except ValueError:
                stats["malformed"] += 1
                continue
            stats["received"] += 1
            got += 1
            yield msg
    finally:
        sock.close(0)
