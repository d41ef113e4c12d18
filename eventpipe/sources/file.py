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
import time

from eventpipe.sources.base import Batch, Source


class FileSource(Source):
    live = False

    def __init__(self, path: str | os.PathLike, *, speed: float | None = None,
                 loop: bool = False, chunk_us: int | None = 10_000,
                 chunk_events: int | None = 1 << 20, stream_id: int = 0, queue_size: int = 64,
                 sensor_size=None, format: str | None = None):
        from eventpipe.io import open_reader

        if speed is not None and not float(speed) > 0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        if chunk_us is None and chunk_events is None:
            raise ValueError("give chunk_us or chunk_events")
        self.path = os.fspath(path)
        self._reader_args = {"format": format}
        info = open_reader(self.path, format=format, sensor_size=sensor_size).info
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

        return iter_events(self.path, chunk_us=self.chunk_us, chunk_events=self.chunk_events,
                           sensor_size=self._sensor_size, **self._reader_args)

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
                    if delay > 0 and self._stop.wait(delay):  # interruptible pacing
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
