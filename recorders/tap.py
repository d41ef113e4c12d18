"""``eventpipe run --record OUT.h5``: record a run's events and labels off the hot path.

:func:`attach_recorder` wraps the pipeline's source so every batch of the recorded stream
(the first stream id seen) is queued to an :class:`AsyncRecorder`, and adds a sink that
queues every label message (all streams).  Neither ever blocks the pipeline: when the
disk cannot keep up the recorder's bounded queue drops and counts, and the counts are
written into the file and reported when the run ends.
"""

from __future__ import annotations

import threading
from typing import TextIO

from eventpipe.sinks.base import Sink
from recorders.async_writer import AsyncRecorder
from recorders.writer import EventRecorder


class RunRecording:
    """The lazily created recorder shared by the source tap and the label sink."""

    def __init__(self, path, *, sensor_size, source_uri: str, compression: str = "lzf",
                 overwrite: bool = False, max_queue_events: int = 1 << 23):
        self.path = path
        self.kwargs = {"compression": compression, "overwrite": overwrite,
                       "source_uri": source_uri}
        self.sensor_size = sensor_size
        self.max_queue_events = max_queue_events
        self.stream: int | None = None
        self.other_stream_events = 0
        self._rec: AsyncRecorder | None = None
        self._lock = threading.Lock()
        self.stats: dict | None = None
        # fail now, not in the ingest thread, if the target is unusable
        EventRecorder.check_target(path, overwrite=overwrite)

    def recorder(self, sensor_size=None) -> AsyncRecorder:
        with self._lock:
            if self._rec is None:
                size = self.sensor_size or sensor_size
                self._rec = AsyncRecorder(EventRecorder(self.path, size, **self.kwargs),
                                          max_queue_events=self.max_queue_events)
            return self._rec

    def on_batch(self, batch, sensor_size) -> None:
        if self.stream is None:
            self.stream = batch.stream_id
        if batch.stream_id != self.stream:
            self.other_stream_events += len(batch.events)
            return
        self.recorder(sensor_size).put_events(batch.events)

    def close(self) -> dict:
        if self.stats is None:
            self.stats = self.recorder().close()
            self.stats["other_stream_events"] = self.other_stream_events
        return self.stats


class TappedSource:
    """The pipeline's source with every batch also handed to the recording."""

    def __init__(self, source, recording: RunRecording):
        self._source = source
        self._recording = recording

    def read(self, timeout: float | None = None):
        batch = self._source.read(timeout=timeout)
        if batch is not None:
            self._recording.on_batch(batch, getattr(self._source, "sensor_size", None))
        return batch

    def __getattr__(self, name):
        return getattr(self._source, name)


class RecordingSink(Sink):
    """Queues label messages to the recording; closing it closes the recording."""

    def __init__(self, recording: RunRecording, err: TextIO | None = None):
        self.recording = recording
        self.err = err

    def write(self, msg: dict) -> None:
        if msg.get("type", "label") == "label":
            self.recording.recorder().put_labels(msg)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        st = self.recording.close()
        if self.err is not None:
            self.err.write(f"eventpipe: recorded {st['events_written']:,} events and "
                           f"{st['labels_written']:,} labels to {st['path']}; dropped "
                           f"{st['dropped_events']:,} events, {st['dropped_labels']:,} labels"
                           + (f"; {st['other_stream_events']:,} events of other streams not "
                              "recorded" if st["other_stream_events"] else "") + "\n")


def attach_recorder(pipe, path, *, source_uri: str, err: TextIO | None = None,
                    compression: str = "lzf", overwrite: bool = False) -> RunRecording:
    """Record ``pipe``'s events and labels into ``path`` (call before ``pipe.start()``)."""
    recording = RunRecording(path, sensor_size=getattr(pipe.source, "sensor_size", None),
                             source_uri=source_uri, compression=compression,
                             overwrite=overwrite)
    pipe.source = TappedSource(pipe.source, recording)
    pipe.sinks.append(RecordingSink(recording, err))
    return recording
