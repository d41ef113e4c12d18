"""Label messages over ZeroMQ PUB/SUB.

The sink binds an XPUB socket (a PUB that also sees subscriptions, so
:meth:`ZmqPubSink.wait_subscribers` can wait for a listener instead of
sleeping).  Each message is two frames: the topic (the stream id as ASCII,
e.g. ``b"0"``) and the JSON text.  PUB never blocks: messages for a listener
that is too slow (beyond ``sndhwm``) are dropped by ZeroMQ.

Connect mode (for scale-out, see ``docs/scaleout.md``): with
``tcp://HOST:PORT?mode=connect`` (or ``connect=True``) the sink *connects* to
a label proxy's XSUB instead of binding, so several workers publish through one
endpoint.  ``?worker=NAME`` (or ``worker="NAME"``) adds ``"worker": "NAME"`` to
every message, so listeners can tell which worker produced a label.  Both
options ride in the endpoint string, so ``eventpipe run --publish
"tcp://127.0.0.1:5557?mode=connect&worker=0"`` needs no extra flag.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Iterator, Sequence
from urllib.parse import parse_qsl

import zmq

from eventpipe.sinks.base import Sink, to_json
from eventpipe.sources.uri import parse_tcp_endpoint

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
PUBLISH_OPTIONS = ("mode", "worker")
MODES = ("bind", "connect")


def parse_publish_endpoint(endpoint: str) -> tuple[str, int, dict]:
    """``tcp://HOST:PORT[?mode=bind|connect&worker=NAME]`` -> (host, port, options)."""
    if not isinstance(endpoint, str) or not endpoint:
        raise ValueError(f"publish endpoint must be a non-empty string, got {endpoint!r}")
    base, _, query = endpoint.partition("?")
    opts = dict(parse_qsl(query, keep_blank_values=False)) if query else {}
    unknown = set(opts) - set(PUBLISH_OPTIONS)
    if unknown:
        raise ValueError(f"{endpoint!r}: unknown publish option(s) {sorted(unknown)} "
                         f"(known: {list(PUBLISH_OPTIONS)})")
    if "mode" in opts and opts["mode"] not in MODES:
        raise ValueError(f"{endpoint!r}: mode must be one of {MODES}, got {opts['mode']!r}")
    host, port = parse_tcp_endpoint(base)
    return host, port, opts


class ZmqPubSink(Sink):
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, sndhwm: int = 10000,
                 linger_s: float = 1.0, connect: bool | None = None, worker: str | None = None,
                 context: zmq.Context | None = None):
        host, port, opts = parse_publish_endpoint(endpoint)
        if connect is None:
            connect = opts.get("mode", "bind") == "connect"
        if worker is None:
            worker = opts.get("worker")
        if connect and int(port) == 0:
            raise ValueError(f"{endpoint!r}: a connecting PUB sink needs a port")
        self.connected = bool(connect)
        self.worker = None if worker is None else str(worker)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        addr = f"tcp://{host}:{port}"
        try:
            if self.connected:
                self._sock.connect(addr)
            else:
                self._sock.bind(addr)
        except zmq.ZMQError:
            self._sock.close(0)
            raise
        self.endpoint = (addr if self.connected
                         else self._sock.getsockopt(zmq.LAST_ENDPOINT).decode())
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
        if self.worker is not None:
            msg = {**msg, "worker": self.worker}
        topic = str(msg.get("stream", "")).encode()
        self._sock.send_multipart([topic, to_json(msg).encode()])
        self.count += 1

    def close(self) -> None:
        if not self.closed:
            self._sock.close()
            self.closed = True


def listen(endpoint: str = DEFAULT_ENDPOINT, n: int | None = None, timeout: float | None = None,
           *, topics: Sequence[str] | None = None, stats: dict | None = None,
           stop: threading.Event | None = None,
           context: zmq.Context | None = None) -> Iterator[dict]:
    """Subscribe to a PUB sink (or a scale-out broker's label endpoint) and yield label dicts.

    Stops after ``n`` messages, when no message came for ``timeout`` seconds
    (``None``: wait forever), or once ``stop`` is set (messages already queued
    are still yielded; the socket is checked at least every 0.1 s).  ``topics``
    limits to some stream ids.  Messages that are not JSON objects are skipped
    and counted in ``stats["malformed"]``.
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
            if not _poll(sock, timeout, stop):
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


def _poll(sock, timeout: float | None, stop: threading.Event | None) -> bool:
    """Wait for a message; False after ``timeout`` s of silence or once ``stop`` is set
    and nothing is queued."""
    if stop is None:
        return bool(sock.poll(None if timeout is None else int(timeout * 1000), zmq.POLLIN))
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if stop.is_set():
            return bool(sock.poll(0, zmq.POLLIN))
        slice_s = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
        if slice_s <= 0:
            return False
        if sock.poll(max(1, int(slice_s * 1000)), zmq.POLLIN):
            return True
