"""A live iniVation camera through dv-processing (optional: ``pip install dv-processing``).

``dvcam:`` opens the first camera ``dv_processing.io.camera.open()`` finds,
``dvcam:NAME`` a given one (e.g. ``DVXplorer_DXA00093``).  The receive thread
polls ``getNextEventBatch()``; batches become EVENT_DTYPE arrays (camera
timestamps, µs).  A live source: when the consumer falls behind, the oldest
batches are dropped and counted.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from eventpipe.events import EVENT_DTYPE
from eventpipe.sources.base import Batch, Source


def store_to_events(batch: Any) -> np.ndarray:
    """A dv-processing ``EventStore`` (``.numpy()``: timestamp, x, y, polarity) -> EVENT_DTYPE."""
    raw = batch.numpy()
    out = np.empty(len(raw), EVENT_DTYPE)
    out["x"], out["y"] = raw["x"], raw["y"]
    out["t"] = raw["timestamp"]
    out["p"] = raw["polarity"] != 0
    return out


class DvCameraSource(Source):
    live = True

    def __init__(self, name: str = "", *, camera=None, poll_s: float = 0.001,
                 queue_size: int = 65536, queue_events: int | None = 1 << 22,
                 stream_id: int = 0):
        if camera is None:
            try:
                import dv_processing as dv
            except ImportError:
                raise RuntimeError("dvcam: needs dv-processing (pip install 'eventpipe[interop]' "
                                   "or dv-processing)") from None
            try:
                camera = dv.io.camera.open(name) if name else dv.io.camera.open()
            except IndexError:  # dv-processing's "vector::_M_range_check": no camera at all
                raise RuntimeError(f"dvcam:{name}: no iniVation camera found") from None
            except RuntimeError as exc:
                raise RuntimeError(f"dvcam:{name}: cannot open the camera ({exc})") from None
        if not camera.isEventStreamAvailable():
            raise RuntimeError(f"dvcam:{name}: the camera has no event stream")
        res = camera.getEventResolution()
        super().__init__(queue_size=queue_size, sensor_size=(int(res[0]), int(res[1])),
                         queue_events=queue_events)
        self.camera = camera
        self.poll_s = float(poll_s)
        self.stream_id = int(stream_id)
        self._seq = 0

    def _run(self) -> None:
        while not self._stop.is_set() and self.camera.isRunning():
            batch = self.camera.getNextEventBatch()
            if batch is None or len(batch) == 0:
                self._stop.wait(self.poll_s)
                continue
            ev = store_to_events(batch)
            self.stats.received += len(ev)
            self.stats.packets += 1
            self._put(Batch(self.stream_id, self._seq, ev, time.monotonic()), len(ev))
            self._seq += 1
