"""The source protocol: a receive thread, a bounded queue, counters, explicit state.

A source runs its receive loop in one daemon thread that puts *items* into a
:class:`BoundedQueue`, bounded in items (``queue_size``) and in events
(``queue_events``).  Every source says whether it is ``live`` (a socket or a
camera: the sender does not wait for us) or not (a file, a generator).  Live
sources use ``policy="drop_oldest"``: when the consumer falls behind, the
oldest items go and their events are counted in ``stats.dropped``.  Other
sources use ``policy="block"``: the reader thread waits for room
(back-pressure), nothing is ever dropped.

The consumer calls :meth:`Source.read` (one :class:`Batch` or ``None`` on
timeout / end) or iterates :meth:`Source.packets`.  ``state`` is one of
``"starting"``, ``"running"``, ``"finished"`` (the input ended), ``"closed"``
or ``"failed"`` (``error`` holds the exception, re-raised by ``read``).
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import threading
import time
from typing import Any, Iterator, NamedTuple

import numpy as np

POLICIES = ("drop_oldest", "block")
STATES = ("starting", "running", "finished", "closed", "failed")


class Batch(NamedTuple):
    """Events from one stream: an EVENT_DTYPE array plus where it came from."""

    stream_id: int
    seq: int | None
    events: np.ndarray
    t_arrival: float  # time.monotonic() when the bytes arrived


@dataclasses.dataclass
class SourceStats:
    """Counters; events unless named otherwise.  Updated by the receive thread
    (plain int increments; read them for reporting, not for synchronisation)."""

    received: int = 0          # events accepted from the input
    packets: int = 0           # messages / datagrams / packets accepted
    bytes: int = 0             # payload bytes accepted
    dropped: int = 0           # events dropped because the queue was full
    dropped_packets: int = 0   # items dropped because the queue was full
    malformed: int = 0         # messages rejected as malformed or foreign
    gaps: int = 0              # missing sequence numbers (sum over streams)
    out_of_order: int = 0      # packets whose seq went backwards (not a restart at 0)
    restarts: int = 0          # a stream's seq went back to 0 (sender restarted)
    kernel_dropped: int = 0    # datagrams the kernel dropped (UDP, SO_RXQ_OVFL)
    reconnects: int = 0        # successful connections after the first (DV)
    delivered: int = 0         # events handed to the consumer
    unread: int = 0            # events still queued, never read, when the source was closed

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class BoundedQueue:
    """A bounded FIFO of ``(item, n_events)`` with an explicit overflow policy: at most
    ``maxlen`` items and at most ``max_events`` events (None: no event bound; one item
    larger than the bound on its own is still taken, alone)."""

    def __init__(self, maxlen: int, policy: str, stats: SourceStats,
                 max_events: int | None = None):
        if int(maxlen) < 1:
            raise ValueError(f"queue_size must be >= 1, got {maxlen}")
        if max_events is not None and int(max_events) < 1:
            raise ValueError(f"queue_events must be >= 1, got {max_events}")
        if policy not in POLICIES:
            raise ValueError(f"queue policy must be one of {POLICIES}, got {policy!r}")
        self.maxlen = int(maxlen)
        self.max_events = None if max_events is None else int(max_events)
        self.policy = policy
        self._items: collections.deque = collections.deque()
        self._n_events = 0
        self._cond = threading.Condition()
        self._closed = False
        self._stats = stats

    def _full(self, n_new: int) -> bool:
        if not self._items:
            return False
        if len(self._items) >= self.maxlen:
            return True
        return self.max_events is not None and self._n_events + n_new > self.max_events

    @property
    def n_events(self) -> int:
        """Events waiting in the queue."""
        return self._n_events

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, n_events: int, stop: threading.Event | None = None) -> bool:
        """Add an item.  ``block`` policy waits for room (until ``stop`` is set or
        the queue is closed: returns False); ``drop_oldest`` never waits."""
        with self._cond:
            if self.policy == "block":
                while self._full(n_events) and not self._closed:
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(0.1)
                if self._closed:
                    return False
            else:
                while self._full(n_events):
                    _, n_old = self._items.popleft()
                    self._n_events -= n_old
                    self._stats.dropped += n_old
                    self._stats.dropped_packets += 1
            self._items.append((item, n_events))
            self._n_events += n_events
            self._cond.notify_all()
            return True

    def get_many(self, timeout: float | None, limit: int) -> list:
        """Up to ``limit`` items; waits up to ``timeout`` s (None: forever) for
        the first one.  Returns [] on timeout or when closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining if remaining is not None else 0.5)
            out = []
            while self._items and len(out) < limit:
                item, n = self._items.popleft()
                self._n_events -= n
                out.append(item)
            self._cond.notify_all()
            return out

    def close(self) -> None:
        """No more puts; getters drain what is left, then see []."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Source(abc.ABC):
    """Base class.  Subclasses implement :meth:`_run` (the receive loop: check
    ``self._stop`` at least every ~0.1 s, put items with :meth:`_put`) and may
    override :meth:`_to_batches` (turn dequeued items into batches).

    ``live``: True for sources whose sender does not wait (sockets, cameras):
    their queue drops the oldest when full; False for files and generators:
    their queue blocks the reader (back-pressure)."""

    live: bool = True
    read_limit = 1  # items taken from the queue per read()

    def __init__(self, *, queue_size: int = 256, sensor_size=None,
                 queue_events: int | None = None):
        self.stats = SourceStats()
        self._queue = BoundedQueue(queue_size, self.policy, self.stats, queue_events)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: collections.deque = collections.deque()
        self.state = "starting"
        self.error: BaseException | None = None
        self._sensor_size = None if sensor_size is None else tuple(int(v) for v in sensor_size)

    # -- the protocol -----------------------------------------------------
    @property
    def policy(self) -> str:
        """The queue's overflow policy, from ``live``."""
        return "drop_oldest" if self.live else "block"

    #: drop_advice's line for ``stats.malformed`` (with the source's ``last_error``, if it keeps one)
    MALFORMED = "{n:,} malformed messages dropped"

    def drop_advice(self) -> list[str]:
        """One line per kind of loss so far: what was lost, why, and what to change."""
        st, q = self.stats, self._queue
        out = []
        if st.dropped:
            bound = f"{q.maxlen:,} packets" + (f" / {q.max_events:,} events"
                                               if q.max_events is not None else "")
            out.append(f"{st.dropped:,} events ({st.dropped_packets:,} packets) dropped: the "
                       f"source queue ({bound}) was full because the pipeline fell behind the "
                       f"sender; raise source.queue_events / source.queue_size, or send slower")
        if st.unread:
            out.append(f"{st.unread:,} events were still queued when the run stopped (received, "
                       f"never read)")
        err = getattr(self, "last_error", None)
        if st.malformed and err is not None:
            out.append(f"{self.MALFORMED.format(n=st.malformed)}; last: {err}")
        return out

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        return self._sensor_size

    def start(self) -> "Source":
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._guarded_run, daemon=True,
                                        name=f"eventpipe-{type(self).__name__}")
        self.state = "running"
        self._thread.start()
        return self

    def read(self, timeout: float | None = None) -> Batch | None:
        """The next batch, or ``None`` after ``timeout`` seconds without data or
        once the source has finished/closed and is drained.  Re-raises the
        receive thread's error (state ``"failed"``) once the queue is drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            items = self._queue.get_many(left, self.read_limit)
            if not items:
                if self.error is not None:
                    raise self.error
                return None
            self._pending.extend(self._to_batches(items))
        batch = self._pending.popleft()
        self.stats.delivered += len(batch.events)
        return batch

    def packets(self, timeout: float | None = None) -> Iterator[Batch]:
        """Yield batches until the source ends, or no batch came for ``timeout`` s."""
        while True:
            b = self.read(timeout)
            if b is None:
                return
            yield b

    @property
    def done(self) -> bool:
        """True when no more batches will come (finished, closed or failed and drained)."""
        return self.state in ("finished", "closed", "failed") and not len(self._queue) \
            and not self._pending

    def close(self, timeout: float = 5.0) -> None:
        """Stop the receive thread (joined with ``timeout``) and release resources.
        Raises ``RuntimeError`` if the thread did not stop in time."""
        self._stop.set()
        self._queue.close()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                raise RuntimeError(f"{type(self).__name__}: receive thread did not stop "
                                   f"within {timeout} s")
        self._release()
        # what was received but never read is counted, not lost silently (a run stopped
        # while a burst was still queued)
        self.stats.unread = self._queue.n_events + sum(len(b.events) for b in self._pending)
        if self.state not in ("failed",):
            self.state = "closed"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- for subclasses ---------------------------------------------------
    @abc.abstractmethod
    def _run(self) -> None:
        """The receive loop (runs in the source's thread)."""

    def _release(self) -> None:
        """Close sockets/files (called after the thread stopped)."""

    def _to_batches(self, items: list) -> list[Batch]:
        return items

    def _put(self, item: Any, n_events: int) -> bool:
        return self._queue.put(item, n_events, self._stop)

    def _guarded_run(self) -> None:
        try:
            self._run()
            if self.state == "running":
                self.state = "finished"
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.error = exc
            self.state = "failed"
        finally:
            self._queue.close()
