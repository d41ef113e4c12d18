"""dvcam: a live DV camera through dv-processing, driven by a stand-in camera object
that hands out real dv-processing EventStores (no hardware needed)."""

import threading

import numpy as np
import pytest

from eventpipe.sources.dv_camera import DvCameraSource
from tests.conftest import expected_events

dv = pytest.importorskip("dv_processing", reason="dv-processing not installed (interop extra)")


class FakeCamera:
    def __init__(self, ev, n_batches):
        self.batches = []
        for part in np.array_split(ev, n_batches):
            store = dv.EventStore()
            for e in part:
                store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
            self.batches.append(store)
        self.done = threading.Event()

    def isEventStreamAvailable(self):
        return True

    def getEventResolution(self):
        return (78, 42)

    def isRunning(self):
        return not self.done.is_set()

    def getNextEventBatch(self):
        if self.batches:
            return self.batches.pop(0)
        self.done.set()
        return None


def test_dv_camera_batches_arrive_exactly():
    ev = expected_events("sample_ncars.dat")
    with DvCameraSource(camera=FakeCamera(ev, 7)) as src:
        assert src.sensor_size == (78, 42)
        got = [b.events for b in src.packets(timeout=5.0)]
    assert np.array_equal(np.concatenate(got), ev)
    assert src.stats.received == len(ev) and src.stats.dropped == 0
