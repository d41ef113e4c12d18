"""Say so when start-up is slow: the first run compiles the Numba kernels (tens of seconds on two
cores, minutes on a loaded machine) before its first label, and a silent wait that long reads as a
hang.  :class:`WarmUpNotice` writes one line if the work it wraps is still running after
``after_s`` seconds, and one more with the time it took once it ends; a fast (cached) start
writes nothing."""

from __future__ import annotations

import threading
import time
from typing import TextIO

#: seconds of silence before the notice: a cached start takes ~1-2 s
NOTICE_AFTER_S = 3.0

NOTICE = ("eventpipe: compiling the Numba kernels (a first run; they are cached for the next runs) "
          "...\n")


class WarmUpNotice:
    """``with WarmUpNotice(err): pipe.warm_up()``."""

    def __init__(self, err: TextIO, after_s: float | None = None):
        if after_s is None:
            after_s = NOTICE_AFTER_S
        if not after_s >= 0:
            raise ValueError(f"after_s must be a number >= 0, got {after_s!r}")
        self.err = err
        self.after_s = float(after_s)
        self.noticed = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _watch(self) -> None:
        if self._done.wait(self.after_s):
            return
        with self._lock:
            if not self._done.is_set():
                self.noticed = True
                self.err.write(NOTICE)
                self.err.flush()

    def __enter__(self) -> "WarmUpNotice":
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="eventpipe-warmup-notice",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._done.set()
        self._thread.join()
        if self.noticed and exc[0] is None:
            self.err.write(f"eventpipe: ready after {time.monotonic() - self._t0:.1f} s of "
                           f"start-up\n")
