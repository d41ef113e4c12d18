"""``file:PATH``: a recording replayed as a source.

``speed=None`` reads as fast as the consumer takes batches; ``speed=1.0``
paces batches by event time (real time), ``2.0`` twice as fast.  ``loop=True``
replays forever, shifting each pass's timestamps so time keeps increasing
(``t += k * (t_last - t_first + 1)`` on pass ``k``).  Files never drop: the
reader thread blocks while the queue is full (back-pressure).  A batch is
``chunk_us`` of event time and at most ``chunk_events`` events (2**20), so memory
stays bounded whatever the file's timestamps say.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from eventpipe.sources.base import Batch, Source


class FileSource(Source):
    live = False

    def __init__(self, path: str | os.PathLike, *, speed: float | None = None,
                 loop: bool = False, chunk_us: int | None = 10_000,
                 chunk_events: int | None = 1 << 20, stream_id: int = 0, queue_size: int = 64,
                 sensor_size=None, format: str | None = None, start_s: float | None = None,
                 end_s: float | None = None):
        from eventpipe.io import open_reader

        if speed is not None and not float(speed) > 0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        if chunk_us is None and chunk_events is None:
            raise ValueError("give chunk_us or chunk_events")
        self.path = os.fspath(path)
        self._reader_args = {"format": format}
        self._slice_s = (start_s, end_s)  # seconds from the first event; recordings seek
        if start_s is not None and end_s is not None and float(end_s) <= float(start_s):
            raise ValueError(f"end_s={end_s} must be after start_s={start_s}")
        info = open_reader(self.path, format=format, sensor_size=sensor_size).info
        if info.format == "h5" and (start_s is not None or end_s is not None):
            self._reader_args.update(start_s=start_s, end_s=end_s)
            self._slice_s = (None, None)
            open_reader(self.path, sensor_size=sensor_size, **self._reader_args)  # bad slice?
        super().__init__(queue_size=queue_size, sensor_size=info.sensor_size)
        self.info = info
        self.speed = None if speed is None else float(speed)
        self.loop = bool(loop)
        self.chunk_us = chunk_us
        self.chunk_events = chunk_events
        self.stream_id = int(stream_id)
        self.passes = 0

    def _chunks(self):
        from eventpipe.io import iter_events

        chunks = iter_events(self.path, chunk_us=self.chunk_us, chunk_events=self.chunk_events,
                             sensor_size=self._sensor_size, **self._reader_args)
        start_s, end_s = self._slice_s
        return chunks if start_s is None and end_s is None else \
            _time_slice(chunks, start_s, end_s, self.path)

    def _run(self) -> None:
        seq = 0
        shift = 0
        t0_wall = time.monotonic()
        t0_ev = None
        while not self._stop.is_set():
            t_first = t_last = None
            for ev in self._chunks():
                if self._stop.is_set():
                    return
                if len(ev) == 0:
                    continue
                if t_first is None:
                    t_first = int(ev["t"][0])
                t_last = int(ev["t"][-1])
                if shift:
                    ev = ev.copy()
                    ev["t"] += shift
                if self.speed is not None:
                    if t0_ev is None:
                        t0_ev = int(ev["t"][0])
                    delay = t0_wall + (int(ev["t"][0]) - t0_ev) * 1e-6 / self.speed \
                        - time.monotonic()
                    # interruptible pacing (a tiny speed: a delay past what a wait takes)
                    if delay > 0 and self._stop.wait(min(delay, threading.TIMEOUT_MAX)):
                        return
                self.stats.received += len(ev)
                self.stats.packets += 1
                if not self._put(Batch(self.stream_id, seq, ev, time.monotonic()), len(ev)):
                    return
                seq += 1
            self.passes += 1
            if not self.loop or t_first is None:
                return
            shift += t_last - t_first + 1


def _time_slice(chunks, start_s, end_s, path=None):
    """Events from ``start_s`` to ``end_s`` seconds after the first event (any format).  A slice
    that holds none of a recording's events is an ``EventFormatError`` naming ``path`` and the
    recording's span, as a recording's (``.h5``) own seek says (not a run of no events)."""
    from eventpipe.errors import EventFormatError

    lo = None if start_s is None else int(round(float(start_s) * 1e6))
    hi = None if end_s is None else int(round(float(end_s) * 1e6))
    t_first = None
    span = kept = 0
    for ev in chunks:
        if len(ev) == 0:
            continue
        if t_first is None:
            t_first = int(ev["t"][0])
        t = ev["t"] - t_first
        span = max(span, int(t.max()))
        if hi is not None and t.min() >= hi:
            break  # the rest of the recording lies after the slice
        keep = np.ones(len(ev), bool)
        if lo is not None:
            keep &= t >= lo
        if hi is not None:
            keep &= t < hi
        if keep.any():
            kept += int(keep.sum())
            yield ev[keep]
    if t_first is not None and not kept:
        raise EventFormatError(f"slice [{lo}, {hi}) us (from the first event) lies outside the "
                               f"recording, which spans [0, {span}] us from its first event",
                               path=path)
