"""``AsyncRecorder``: an :class:`EventRecorder` on its own thread behind a bounded queue.

The live pipeline calls :meth:`AsyncRecorder.put_events` / :meth:`put_labels`, which never
block: when the queue already holds ``max_queue_events`` events (or ``max_queue_items``
batches) the batch is dropped and counted (``dropped_events``, ``dropped_labels``).  The
counts are written into the file's status record, so a recording says how much it lost.
A write error on the thread (disk full) stops recording; it is kept in ``error`` and
raised by :meth:`close`, and later puts are counted as dropped.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from recorders.writer import EventRecorder


class AsyncRecorder:
    def __init__(self, recorder: EventRecorder, *, max_queue_events: int = 1 << 23,
                 max_queue_items: int = 4096):
        if int(max_queue_events) < 1 or int(max_queue_items) < 1:
            raise ValueError("max_queue_events and max_queue_items must be >= 1")
        self.recorder = recorder
        self.max_queue_events = int(max_queue_events)
        self.max_queue_items = int(max_queue_items)
        self._q: collections.deque = collections.deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._closing = False
        self.dropped_events = self.dropped_labels = 0
        self.peak_queued_events = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eventpipe-recorder", daemon=True)
        self._thread.start()

    # -- producer side (never blocks) ------------------------------------------------------
    def put_events(self, events: np.ndarray) -> bool:
        """Queue a batch (copied); False when it was dropped."""
        n = len(events)
        if n == 0:
            return True
        with self._cond:
            if (self.error is not None or self._closing
                    or self._queued_events + n > self.max_queue_events
                    or len(self._q) >= self.max_queue_items):
                self.dropped_events += n
                return False
            self._q.append(("events", np.array(events, copy=True)))
            self._queued_events += n
            self.peak_queued_events = max(self.peak_queued_events, self._queued_events)
            self._cond.notify()
        return True

    def put_labels(self, msgs) -> bool:
        """Queue label messages (a dict or a list of dicts); False when dropped."""
        msgs = [msgs] if isinstance(msgs, dict) else list(msgs)
        msgs = [m for m in msgs if m.get("type", "label") == "label"]
        if not msgs:
            return True
        with self._cond:
            if self.error is not None or self._closing or len(self._q) >= self.max_queue_items:
                self.dropped_labels += len(msgs)
                return False
            self._q.append(("labels", [dict(m) for m in msgs]))
            self._cond.notify()
        return True

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._q and not self._closing:
                    self._cond.wait()
                if not self._q and self._closing:
                    return
                kind, item = self._q.popleft()
                if kind == "events":
                    self._queued_events -= len(item)
            try:
                self.recorder.set_dropped(self.dropped_events, self.dropped_labels)
                if kind == "events":
                    self.recorder.write(item)
                else:
                    self.recorder.write_labels(item)
            except BaseException as exc:  # noqa: BLE001 - kept and raised by close()
                with self._cond:
                    self.error = exc
                    for k, it in self._q:
                        if k == "events":
                            self.dropped_events += len(it)
                        else:
                            self.dropped_labels += len(it)
                    self._q.clear()
                    self._queued_events = 0
                return

    @property
    def queued_events(self) -> int:
        return self._queued_events

    def stats(self) -> dict:
        r = self.recorder
        return {"path": str(r.path), "events_written": r.events_written,
                "labels_written": r.labels_written, "dropped_events": self.dropped_events,
                "dropped_labels": self.dropped_labels, "queued_events": self._queued_events,
                "peak_queued_events": self.peak_queued_events, "flushes": r.flushes,
                "error": None if self.error is None else str(self.error)}

    def close(self, timeout_s: float | None = None) -> dict:
        """Drain the queue, close the file, return :meth:`stats`; raise the thread's error."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.recorder.path}: recorder did not drain within "
                               f"{timeout_s} s ({self._queued_events:,} events queued)")
        try:
            if self.error is None:
                self.recorder.set_dropped(self.dropped_events, self.dropped_labels)
            self.recorder.close()
        except BaseException as exc:  # noqa: BLE001
            self.error = self.error or exc
        if self.error is not None:
            raise self.error
        return self.stats()

    def __enter__(self) -> "AsyncRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
