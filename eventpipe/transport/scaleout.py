"""The broker as a command: :func:`run_broker` (what ``eventpipe broker`` runs).

``eventpipe broker`` does not start workers: it binds the sender, worker-slot and label
endpoints, prints one ``eventpipe run`` command per slot, and forwards until stopped.
Start the workers yourself (their argv: ``Broker.worker_command(i)`` or
:func:`eventpipe.transport.broker.worker_command`).  See ``docs/scaleout.md``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TextIO

from eventpipe.transport.broker import (DEFAULT_IN, DEFAULT_LABELS_IN, DEFAULT_LABELS_OUT, Broker,
                                        BrokerStats)


def run_broker(in_endpoint: str = DEFAULT_IN, n_workers: int = 2,
               labels_in: str = DEFAULT_LABELS_IN, labels_out: str = DEFAULT_LABELS_OUT, *,
               stop: threading.Event | None = None, duration_s: float | None = None,
               stats_every_s: float | None = None, err: TextIO = sys.stderr,
               **options) -> dict:
    """Run a :class:`Broker` until ``stop`` is set, ``duration_s`` passed, or
    SIGINT/SIGTERM (when called from the main thread); print the endpoints and each
    worker's command on ``err``; return the final stats as a dict."""
    stop = stop or threading.Event()
    broker = Broker(in_endpoint, n_workers, labels_in, labels_out, **options)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        broker.start()
        err.write(f"eventpipe broker: senders -> {broker.sender_endpoint()}, "
                  f"listeners <- {broker.listen_endpoint()}, {n_workers} worker slot(s)\n")
        for i in range(broker.n_workers):
            err.write(f"  worker {i}: eventpipe run --source '{broker.worker_source(i)}' "
                      f"--publish '{broker.worker_publish(i)}' --model NAME\n")
        err.flush()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_stats = None if not stats_every_s else time.monotonic() + stats_every_s
        while not stop.is_set() and broker.running:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if next_stats is not None and now >= next_stats:
                err.write(f"eventpipe broker: {_format_stats(broker.stats)}\n")
                err.flush()
                next_stats = now + stats_every_s
            stop.wait(0.2)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        broker.close()
    err.write(f"eventpipe broker: {_format_stats(broker.stats)}\n")
    return broker.stats.as_dict()


def _format_stats(st: BrokerStats) -> str:
    return (f"received {st.received}, malformed {st.malformed}, forwarded {st.forwarded}, "
            f"dropped {st.dropped}, streams {len(st.streams)}, workers {st.slot_peers}, "
            f"publishers {st.publishers}, messages {st.messages}, subscriptions {st.subscriptions}")


__all__ = ["run_broker"]
