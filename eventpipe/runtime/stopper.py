"""SIGINT/SIGTERM for ``eventpipe run``: installed before anything loads (no torch here).

The first signal asks the run to stop: during start-up (config, model load) the
pipeline is then not started, but the run still ends with its summary; once
running, reading stops and what was read drains.  A second signal stops at once
(during start-up it raises ``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    def __init__(self):
        self.pipe = None          # the running pipeline, once there is one
        self.requested = False

    def __call__(self, signum=None, frame=None) -> None:
        again = self.requested
        self.requested = True
        if self.pipe is not None:
            self.pipe.stop(drain=not again)
        elif again:
            raise KeyboardInterrupt  # a second signal during start-up: give up at once

    @contextlib.contextmanager
    def installed(self) -> Iterator["Stopper"]:
        """Handle SIGINT/SIGTERM while inside (main thread only; elsewhere a no-op)."""
        with handling(self):
            yield self


@contextlib.contextmanager
def handling(handler) -> Iterator[None]:
    """``handler`` answers SIGINT/SIGTERM while inside, the previous handlers come back after
    (main thread only, where Python delivers signals; elsewhere a no-op)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """While inside, the first SIGINT/SIGTERM sets ``stop`` (the command ends as at the end
    of its input, with its summary), a second raises ``KeyboardInterrupt`` (main thread only;
    elsewhere a no-op)."""
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    with handling(handler):
        yield stop
