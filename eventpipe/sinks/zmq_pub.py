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
#: the longest label or metrics message ``listen`` accepts (ours are a few hundred bytes,
#: a top-k of 1,000 classes ~40 KB): libzmq refuses a longer one before allocating it
#: (``ZMQ_MAXMSGSIZE``) and drops that connection, which the SUB socket makes again
MAX_LABEL_MESSAGE = 1 << 20


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

    def wait_subscribers(self, n: int = 1, timeout: float = 5.0,
                         stop: threading.Event | None = None) -> bool:
        """Wait until ``n`` subscriptions arrived (True) or ``timeout`` s passed, or
        ``stop`` is set (False; checked at least every 0.1 s)."""
        deadline = time.monotonic() + timeout
        while self.subscribers < n:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                return False
            self._drain_subscriptions(int(min(left, 0.1) * 1000) + 1)
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
    limits to some stream ids.  Messages that are not JSON objects (or nest too
    deep to decode) are skipped and counted in ``stats["malformed"]``; one longer
    than ``MAX_LABEL_MESSAGE`` never arrives (libzmq refuses it unallocated).
    """
    host, port = parse_tcp_endpoint(endpoint)
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_LABEL_MESSAGE)
    for t in (topics if topics is not None else [""]):
        sock.setsockopt(zmq.SUBSCRIBE, str(t).encode())
    stats = {} if stats is None else stats
    stats.setdefault("received", 0)
    stats.setdefault("malformed", 0)
    got = 0
    addr = f"tcp://{host}:{port}"
    mon = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        sock.connect(addr)
        while n is None or got < n:
            if not _poll(sock, timeout, stop, lambda: _rejoin(sock, mon, addr, stats)):
                return
            frames = sock.recv_multipart()
            try:
                msg = json.loads(frames[-1])
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                stats["malformed"] += 1
                continue
            stats["received"] += 1
            got += 1
            yield msg
    finally:
        sock.disable_monitor()
        mon.close(0)
        sock.close(0)


def _rejoin(sock, mon, addr: str, stats: dict) -> None:
    """Connect again after a dropped connection: libzmq does so itself when the publisher
    went away, but not after a protocol error such as a message over ``ZMQ_MAXMSGSIZE``
    (it ends that session for good).  Counted in ``stats["dropped_connections"]``."""
    from zmq.utils.monitor import recv_monitor_message

    dropped = 0
    while mon.poll(0):
        dropped += recv_monitor_message(mon)["event"] == zmq.EVENT_DISCONNECTED
    if dropped:
        stats["dropped_connections"] = stats.get("dropped_connections", 0) + dropped
        try:
            sock.disconnect(addr)
        except zmq.ZMQError:  # the session already ended
            pass
        sock.connect(addr)


def _poll(sock, timeout: float | None, stop: threading.Event | None, tick=None) -> bool:
    """Wait for a message; False after ``timeout`` s of silence or once ``stop`` is set
    and nothing is queued.  ``tick()`` runs between waits of at most 0.1 s."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if stop is not None and stop.is_set():
            return bool(sock.poll(0, zmq.POLLIN))
        slice_s = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
        if slice_s <= 0:
            return False
        if sock.poll(max(1, int(slice_s * 1000)), zmq.POLLIN):
            return True
        if tick is not None:
            tick()
