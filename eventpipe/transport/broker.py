"""Scale-out beyond one process: a broker in front of N ``eventpipe run`` workers.

::

    senders (PUSH) --> [PULL in] broker fan-out --(stream_id % N)--> [PUSH slot i] --> worker i
    worker i (PUB, connect) --> [XSUB labels_in] broker label proxy [XPUB labels_out] --> listeners

A stream's membrane state lives in exactly one worker, so the fan-out keeps every
packet of a stream on the same worker: it reads only the wire header's stream id
(:func:`eventpipe.transport.wire.peek_header`, no payload decode) and forwards the message
unchanged to slot ``stream_id % n_workers``.  Each slot is its own bound PUSH
socket and each worker connects its ``zmq+tcp://...?mode=connect`` source to one
slot (one worker per slot: two peers on a slot would split its streams round-robin;
``stats.slot_peers`` shows it).

Nothing blocks the broker: a message for a slot with no worker, or whose worker is
too slow (the slot's ``hwm`` is full), is dropped and counted in
``stats.dropped[slot]``; a message whose header does not parse is counted in
``stats.malformed`` and dropped.  The label proxy subscribes its XSUB to everything
(so every message reaches the broker and is counted in ``stats.messages`` and
``stats.by_topic``) and the XPUB
side filters by topic per listener; listeners that fall behind lose labels inside
ZeroMQ (PUB semantics, not counted).

:class:`Broker` runs two threads (``eventpipe-broker-fanout``,
``eventpipe-broker-labels``) in its own ZeroMQ context; ``close()`` stops and joins
them; :func:`worker_command` builds the argv of one worker.
:func:`eventpipe.transport.scaleout.run_broker` is the blocking form for a command line
(what ``eventpipe broker`` runs).  See ``docs/scaleout.md``.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from typing import Sequence

import zmq
from zmq.utils.monitor import parse_monitor_message

from eventpipe.errors import EventFormatError
from eventpipe.sources.uri import parse_tcp_endpoint
from eventpipe.sources.zmq_source import MAX_MESSAGE
from eventpipe.transport.wire import peek_header

DEFAULT_IN = "tcp://127.0.0.1:5555"
DEFAULT_FANOUT = "tcp://127.0.0.1:0"
DEFAULT_LABELS_IN = "tcp://127.0.0.1:5557"
DEFAULT_LABELS_OUT = "tcp://127.0.0.1:5556"
POLL_MS = 50        # stop latency of the broker threads
DRAIN_MAX = 1000    # messages handled per wake-up before re-checking stop
_MONITOR_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


#: the per-key counters (packets per stream id, messages per topic) hold at most this many
#: keys, and a topic key at most MAX_TOPIC_BYTES: ids and topics come from the network, and a
#: sender cycling through them grew the broker without bound; later keys are counted in
#: ``streams_uncounted`` / ``topics_uncounted`` (their messages are forwarded all the same)
MAX_COUNTED_KEYS = 4096
SOCKETS_PER_SLOT = 3  # PUSH, and its monitor's two PAIR ends
MAX_TOPIC_BYTES = 64


def _count(table: dict, key) -> int:
    """One more for ``key`` in ``table``; 1 (uncounted) when the table is full without it."""
    if key in table or len(table) < MAX_COUNTED_KEYS:
        table[key] = table.get(key, 0) + 1
        return 0
    return 1


@dataclasses.dataclass
class BrokerStats:
    """Counters (written by the broker threads; plain ints, read them any time)."""

    n_workers: int
    received: int = 0                    # messages read from the input
    malformed: int = 0                   # header did not parse: dropped
    last_error: str | None = None
    forwarded: list[int] = dataclasses.field(default_factory=list)  # per slot
    dropped: list[int] = dataclasses.field(default_factory=list)    # per slot (no worker / HWM)
    slot_peers: list[int] = dataclasses.field(default_factory=list)  # connected peers per slot
    slot_handshakes: list[int] = dataclasses.field(default_factory=list)  # ZMTP handshakes
    streams: dict[int, int] = dataclasses.field(default_factory=dict)  # stream id -> packets
    publishers: int = 0                  # worker PUB sockets connected to labels_in
    publisher_handshakes: int = 0
    messages: int = 0                    # messages forwarded to labels_out (labels, metrics)
    by_topic: dict[str, int] = dataclasses.field(default_factory=dict)  # stream id or "metrics"
    # packets / messages of keys past MAX_COUNTED_KEYS (forwarded all the same, not per key)
    streams_uncounted: int = 0
    topics_uncounted: int = 0
    subscriptions: int = 0               # net subscriptions seen on labels_out

    def __post_init__(self):
        n = self.n_workers
        self.forwarded = self.forwarded or [0] * n
        self.dropped = self.dropped or [0] * n
        self.slot_peers = self.slot_peers or [0] * n
        self.slot_handshakes = self.slot_handshakes or [0] * n

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["streams"] = dict(self.streams)
        d["by_topic"] = dict(self.by_topic)
        return d


def slot_of(stream_id: int, n_workers: int) -> int:
    """The worker slot of a stream: ``stream_id % n_workers``."""
    return int(stream_id) % int(n_workers)


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("*", "0.0.0.0", "", "::") else host


class Broker:
    """The fan-out and the label proxy; sockets are bound on construction (ports known
    at once, port 0 = ephemeral) and the threads run after :meth:`start`.

    ``fanout`` is where the N PUSH slots bind: port 0 gives each an ephemeral port,
    port P gives slot i port P + i.  ``hwm`` bounds each slot's queue (messages).
    """

    def __init__(self, in_endpoint: str = DEFAULT_IN, n_workers: int = 2,
                 labels_in: str = DEFAULT_LABELS_IN, labels_out: str = DEFAULT_LABELS_OUT, *,
                 fanout: str = DEFAULT_FANOUT, hwm: int = 1000, rcvhwm: int = 1000,
                 label_hwm: int = 10000, linger_s: float = 1.0):
        if int(n_workers) < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = int(n_workers)
        self.stats = BrokerStats(self.n_workers)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._peer_fds: list[set] = [set() for _ in range(self.n_workers)]
        self._pub_fds: set = set()
        self.error: BaseException | None = None
        self._ctx = zmq.Context()
        # each slot is a PUSH socket and a monitor pair: past ~340 workers libzmq's default
        # of 1023 sockets per context ran out ("Too many open files")
        self._ctx.set(zmq.MAX_SOCKETS, max(1024, SOCKETS_PER_SLOT * self.n_workers + 64))
        self._socks: list[zmq.Socket] = []
        try:
            self._bind_all(in_endpoint, fanout, labels_in, labels_out, int(hwm), int(rcvhwm),
                           int(label_hwm), int(linger_s * 1000))
        except BaseException:
            self._close_sockets()
            raise

    def _socket(self, kind: int, linger_ms: int = 0) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.LINGER, linger_ms)
        self._socks.append(s)
        return s

    @staticmethod
    def _bind(sock: zmq.Socket, host: str, port: int) -> str:
        sock.bind(f"tcp://{host}:{port}")
        return sock.getsockopt(zmq.LAST_ENDPOINT).decode()

    def _bind_all(self, in_ep, fanout, labels_in, labels_out, hwm, rcvhwm, label_hwm, linger):
        host, port = parse_tcp_endpoint(in_ep)
        self._in = self._socket(zmq.PULL)
        self._in.setsockopt(zmq.RCVHWM, rcvhwm)
        # a sender's oversized message is refused before it is allocated, as by the workers'
        # own sources (docs/protocol.md, "Size bound")
        self._in.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        self.in_endpoint = self._bind(self._in, host, port)
        fhost, fport = parse_tcp_endpoint(fanout)
        self._slots, self._slot_mons, self.fanout_endpoints = [], [], []
        for i in range(self.n_workers):
            s = self._socket(zmq.PUSH)
            s.setsockopt(zmq.SNDHWM, hwm)
            self.fanout_endpoints.append(self._bind(s, fhost, fport + i if fport else 0))
            self._slots.append(s)
            self._slot_mons.append(self._monitor(s))
        lhost, lport = parse_tcp_endpoint(labels_in)
        self._xsub = self._socket(zmq.XSUB)
        self._xsub.setsockopt(zmq.RCVHWM, label_hwm)
        self.labels_in_endpoint = self._bind(self._xsub, lhost, lport)
        self._xsub_mon = self._monitor(self._xsub)
        ohost, oport = parse_tcp_endpoint(labels_out)
        self._xpub = self._socket(zmq.XPUB, linger)
        self._xpub.setsockopt(zmq.SNDHWM, label_hwm)
        self._xpub.setsockopt(zmq.XPUB_VERBOSER, 1)  # see every (un)subscription
        self.labels_out_endpoint = self._bind(self._xpub, ohost, oport)
        self._xsub.send(b"\x01")  # subscribe to every label from every worker

    def _monitor(self, sock: zmq.Socket) -> zmq.Socket:
        mon = sock.get_monitor_socket(_MONITOR_EVENTS)
        mon.setsockopt(zmq.LINGER, 0)
        self._socks.append(mon)
        return mon

    # -- addresses ------------------------------------------------------------------------
    @staticmethod
    def _port(ep: str) -> int:
        return int(ep.rsplit(":", 1)[1])

    @property
    def in_port(self) -> int:
        return self._port(self.in_endpoint)

    @property
    def fanout_ports(self) -> list[int]:
        return [self._port(e) for e in self.fanout_endpoints]

    @property
    def labels_in_port(self) -> int:
        return self._port(self.labels_in_endpoint)

    @property
    def labels_out_port(self) -> int:
        return self._port(self.labels_out_endpoint)

    def _connect_ep(self, ep: str) -> str:
        host, port = parse_tcp_endpoint(ep)
        return f"{_connect_host(host)}:{port}"

    def sender_endpoint(self) -> str:
        """Where ``eventpipe send --to`` should point."""
        return "tcp://" + self._connect_ep(self.in_endpoint)

    def listen_endpoint(self) -> str:
        """Where ``eventpipe listen`` should subscribe."""
        return "tcp://" + self._connect_ep(self.labels_out_endpoint)

    def worker_source(self, slot: int) -> str:
        """The ``--source`` URI of the worker for ``slot``."""
        return f"zmq+tcp://{self._connect_ep(self.fanout_endpoints[slot])}?mode=connect"

    def worker_publish(self, slot: int) -> str:
        """The ``--publish`` endpoint of the worker for ``slot`` (connect mode, tagged)."""
        return f"tcp://{self._connect_ep(self.labels_in_endpoint)}?mode=connect&worker={slot}"

    def worker_command(self, slot: int, **kwargs) -> list[str]:
        """The argv of the worker for ``slot`` (see :func:`worker_command`)."""
        return worker_command(self.worker_source(slot), self.worker_publish(slot), **kwargs)

    # -- readiness ----------------------------------------------------------------------
    def wait_workers(self, timeout: float = 30.0) -> bool:
        """Wait until every slot has a connected worker and ``n_workers`` publishers are
        connected to ``labels_in`` (True), or ``timeout`` s passed (False)."""
        st = self.stats
        return self._wait(lambda: min(st.slot_peers) >= 1 and min(st.slot_handshakes) >= 1
                          and st.publishers >= self.n_workers
                          and st.publisher_handshakes >= self.n_workers, timeout)

    def wait_subscribers(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``n`` subscriptions arrived on ``labels_out``."""
        return self._wait(lambda: self.stats.subscriptions >= n, timeout)

    def wait_messages(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` messages in all (labels, metrics) were forwarded to labels_out."""
        return self._wait(lambda: self.stats.messages >= n, timeout)

    def _wait(self, pred, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred() or self.error is not None, timeout) \
                and self.error is None

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- threads ------------------------------------------------------------------------
    @staticmethod
    def _monitor_event(mon: zmq.Socket, fds: set) -> bool:
        """Apply one monitor event to ``fds`` (accepted TCP peers by fd; libzmq gives the
        fd with ACCEPTED and DISCONNECTED, not with HANDSHAKE_SUCCEEDED); return True
        for a completed ZMTP handshake."""
        ev = parse_monitor_message(mon.recv_multipart())
        if ev["event"] == zmq.EVENT_ACCEPTED:
            fds.add(ev["value"])
        elif ev["event"] == zmq.EVENT_DISCONNECTED:
            fds.discard(ev["value"])
        return ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED

    def _guard(self, fn) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - kept in .error, raised by close()
            if not self._stop.is_set():
                self.error = exc
            self._stop.set()
            self._notify()

    def _fanout(self) -> None:
        st, n = self.stats, self.n_workers
        poller = zmq.Poller()
        poller.register(self._in, zmq.POLLIN)
        mons = {m: i for i, m in enumerate(self._slot_mons)}
        for m in mons:
            poller.register(m, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            for m, i in mons.items():
                if m in ready:
                    st.slot_handshakes[i] += self._monitor_event(m, self._peer_fds[i])
                    st.slot_peers[i] = len(self._peer_fds[i])
                    self._notify()
            if self._in not in ready:
                continue
            for _ in range(DRAIN_MAX):
                try:
                    frames = self._in.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                st.received += 1
                try:
                    sid = peek_header(frames[-1].buffer)["stream_id"]
                except EventFormatError as exc:
                    st.malformed += 1
                    st.last_error = str(exc)
                    continue
                slot = sid % n
                st.streams_uncounted += _count(st.streams, sid)
                try:
                    self._slots[slot].send_multipart(frames, zmq.NOBLOCK, copy=False)
                    st.forwarded[slot] += 1
                except zmq.Again:  # no worker on the slot, or its queue is full
                    st.dropped[slot] += 1

    def _labels(self) -> None:
        st = self.stats
        xsub, xpub = self._xsub, self._xpub
        poller = zmq.Poller()
        for s in (xsub, xpub, self._xsub_mon):
            poller.register(s, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            if self._xsub_mon in ready:
                st.publisher_handshakes += self._monitor_event(self._xsub_mon, self._pub_fds)
                st.publishers = len(self._pub_fds)
                self._notify()
            if xpub in ready:
                for _ in range(DRAIN_MAX):
                    try:
                        sub = xpub.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if sub[:1] == b"\x01":
                        st.subscriptions += 1
                    elif sub[:1] == b"\x00":
                        st.subscriptions -= 1
                self._notify()
            if xsub in ready:
                got = 0
                for _ in range(DRAIN_MAX):
                    try:
                        frames = xsub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    xpub.send_multipart(frames)  # XPUB never blocks: slow listeners drop
                    topic = (frames[0][:MAX_TOPIC_BYTES].decode("ascii", "replace")
                             if len(frames) > 1 else "")
                    st.topics_uncounted += _count(st.by_topic, topic)
                    st.messages += 1
                    got += 1
                if got:
                    self._notify()

    def start(self) -> "Broker":
        if self._threads:
            raise RuntimeError("broker already started")
        self._threads = [
            threading.Thread(target=self._guard, args=(self._fanout,),
                             name="eventpipe-broker-fanout", daemon=True),
            threading.Thread(target=self._guard, args=(self._labels,),
                             name="eventpipe-broker-labels", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()

    def _close_sockets(self) -> None:
        for s in (getattr(self, "_slots", []) + [getattr(self, "_xsub", None)]):
            if s is not None and not s.closed:
                try:
                    s.disable_monitor()
                except zmq.ZMQError:
                    pass
        for s in reversed(self._socks):
            s.close()
        self._socks = []
        self._ctx.term()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads, join them (``RuntimeError`` if one hangs), close every socket
        and the context; re-raise an error a thread died of."""
        if self._ctx.closed:
            return
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"broker threads did not stop: {alive}")
        self._close_sockets()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "Broker":
        return self if self._threads else self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def worker_command(source: str, publish: str, *, model: str | None = None,
                   sets: Sequence[str] = (), quiet: bool = True, extra: Sequence[str] = (),
                   python: str | None = None) -> list[str]:
    """The argv of one worker: ``python -m eventpipe run --source SOURCE --publish PUBLISH
    [--model M] [--set K=V ...] [--quiet] [extra ...]``.

    ``source`` is ``Broker.worker_source(i)`` (``zmq+tcp://H:P?mode=connect``) and
    ``publish`` is ``Broker.worker_publish(i)`` (``tcp://H:P?mode=connect&worker=i``).
    """
    argv = [python or sys.executable, "-m", "eventpipe", "run", "--source", source,
            "--publish", publish]
    if model is not None:
        argv += ["--model", model]
    for s in sets:
        argv += ["--set", s]
    if quiet:
        argv.append("--quiet")
    return argv + list(extra)


__all__ = ["Broker", "BrokerStats", "slot_of", "worker_command"]
