"""AsyncRecorder: never blocks the producer; drops are counted, stored and reported."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from recorders import AsyncRecorder, EventRecorder, RecorderWriteError, open_recording
from tests.recorders.conftest import label_msg, random_events


class GatedRecorder(EventRecorder):
    """A recorder whose first write waits until the test opens the gate (a slow disk)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write(self, events):
        self.entered.set()
        assert self.gate.wait(30)
        super().write(events)


def test_drops_when_the_queue_is_full_are_counted_and_recorded(tmp_path):
    path = tmp_path / "r.h5"
    ev = random_events(20, 15_000)
    batches = [ev[i:i + 3000] for i in range(0, 15_000, 3000)]
    rec = GatedRecorder(path, (640, 480))
    a = AsyncRecorder(rec, max_queue_events=10_000)
    assert a.put_events(batches[0])
    assert rec.entered.wait(10)  # the thread holds batch 0 and is stuck writing it
    assert [a.put_events(b) for b in batches[1:]] == [True, True, True, False]
    assert a.put_labels([label_msg(0)])
    assert a.dropped_events == 3000 and a.queued_events == 9000
    rec.gate.set()
    stats = a.close()
    assert stats["dropped_events"] == 3000 and stats["events_written"] == 12_000
    assert stats["peak_queued_events"] == 9000
    with open_recording(path) as r:
        np.testing.assert_array_equal(r.events(), ev[:12_000])
        assert r.info.dropped_events == 3000 and r.info.labels == 1


def test_label_queue_is_bounded_by_items(tmp_path):
    rec = GatedRecorder(tmp_path / "r.h5", (8, 8))
    a = AsyncRecorder(rec, max_queue_items=2)
    a.put_events(random_events(21, 10, size=(8, 8)))
    assert rec.entered.wait(10)
    results = [a.put_labels(label_msg(i)) for i in range(4)]
    assert results == [True, True, False, False] and a.dropped_labels == 2
    rec.gate.set()
    a.close()
    with open_recording(tmp_path / "r.h5") as r:
        assert r.info.labels == 2 and r.info.dropped_labels == 2


def test_a_write_error_on_the_thread_is_raised_by_close(tmp_path):
    class Failing(EventRecorder):
        def write(self, events):
            raise RecorderWriteError("disk full", path=self.path, committed=0)

    a = AsyncRecorder(Failing(tmp_path / "r.h5", (8, 8)))
    a.put_events(random_events(22, 10, size=(8, 8)))
    a._thread.join(10)
    assert not a.put_events(random_events(23, 7, size=(8, 8)))  # after the error: dropped
    assert a.dropped_events == 7
    with pytest.raises(RecorderWriteError, match="disk full"):
        a.close()
