"""Recording from any source, and re-publishing recorded labels with their original timing.

- :func:`record_source` drains a source (any URI :func:`eventpipe.sources.open_source` knows) into a
  recording, with a progress line (events, rate, file size);
- :func:`replay_labels` sends a recording's labels to a sink (a ZeroMQ PUB for
  ``eventpipe replay-labels``), spaced as they were recorded (``wall_s``; ``t_us`` for
  rows without one) divided by ``speed``, or as fast as possible with ``speed=None``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TextIO

import numpy as np

from recorders.labels import messages_from_rows
from recorders.reader import open_recording
from recorders.writer import EventRecorder


def _camera_serial(src) -> str:
    info = getattr(src, "info", None)
    extras = getattr(info, "extras", None) or {}
    return str(extras.get("serial") or extras.get("camera_serial") or "")


def _mb(path) -> float:
    try:
        return os.path.getsize(path) / 1e6
    except OSError:
        return 0.0


def record_source(uri: str, out_path: str | os.PathLike, *, duration_s: float | None = None,
                  compression: str = "lzf", overwrite: bool = False,
                  speed: float | None = None, flush_every_us: int = 1_000_000,
                  progress: TextIO | None = None, progress_every_s: float = 0.5,
                  stop: threading.Event | None = None) -> dict:
    """Record stream 0 (the first stream seen) of ``uri`` into ``out_path`` until the source
    ends, ``duration_s`` of wall time passes or ``stop`` is set.  Returns a summary."""
    from eventpipe.sources import open_source

    if os.path.exists(out_path) and not overwrite:  # before opening sockets or cameras
        raise FileExistsError(f"{out_path}: already exists; refusing to overwrite it "
                              "(pass --overwrite)")
    src = open_source(uri, speed=speed, start=True)
    if progress is not None:
        from eventpipe.sources.uri import bound_port_note

        note = bound_port_note(uri, src)  # port 0: say which port the senders must use
        if note:
            progress.write(f"eventpipe: recording from {uri}{note}\n")
            progress.flush()
    rec = None
    stream = None
    other_streams = 0
    failure = None  # why the source failed: stored in the file, which is then not complete
    t0 = time.monotonic()
    next_progress = t0 + progress_every_s
    try:
        while not (stop is not None and stop.is_set()):
            now = time.monotonic()
            if duration_s is not None and now - t0 >= duration_s:
                break
            if progress is not None and now >= next_progress and rec is not None:
                next_progress = now + progress_every_s
                rate = rec.events_written / max(now - t0, 1e-9)
                progress.write(f"\rrecording: {rec.events_written:,} events, "
                               f"{rate / 1e6:.2f} Mev/s, {_mb(out_path):.1f} MB ")
                progress.flush()
            batch = src.read(timeout=0.1)
            if batch is None:
                if src.done:
                    break
                continue
            if stream is None:
                stream = batch.stream_id
            if batch.stream_id != stream:
                other_streams += len(batch.events)
                continue
            if rec is None:
                rec = EventRecorder(out_path, src.sensor_size, compression=compression,
                                    overwrite=overwrite, flush_every_us=flush_every_us,
                                    source_uri=uri, camera_serial=_camera_serial(src))
            rec.write(batch.events)
        if getattr(src, "error", None) is not None:
            raise src.error
    except Exception as exc:
        failure = f"the source failed: {exc}"
        raise
    finally:
        src.close()
        if progress is not None and rec is not None and failure is not None:
            progress.write("\n")  # end the progress line before the error message
        if rec is None:  # nothing arrived: an empty recording still says what was tried
            rec = EventRecorder(out_path, src.sensor_size, compression=compression,
                                overwrite=overwrite, source_uri=uri)
        rec.close(ended_by_error=failure)
    elapsed = time.monotonic() - t0
    if progress is not None:
        progress.write("\n")
    stats = src.stats.as_dict() if hasattr(src, "stats") else {}
    advice = src.drop_advice() if hasattr(src, "drop_advice") else []
    return {"path": os.fspath(out_path), "events": rec.events_written, "seconds": elapsed,
            "rate_hz": rec.events_written / max(elapsed, 1e-9), "mb": _mb(out_path),
            "compression": rec.compression, "stream": stream,
            "other_stream_events": other_streams, "source_dropped": stats.get("dropped", 0),
            "back_in_time": rec.events_back_in_time,
            "advice": advice}


def replay_labels(path: str | os.PathLike, sink, *, speed: float | None = 1.0,
                  start_us: int | None = None, end_us: int | None = None,
                  stream: int | None = None, stop: threading.Event | None = None) -> int:
    """Write the recording's labels to ``sink`` with their recorded spacing; returns the
    number sent.  ``stop`` (an Event) interrupts the pacing wait at once."""
    if speed is not None and not float(speed) > 0:
        raise ValueError(f"speed must be > 0 or None, got {speed}")
    with open_recording(path) as rec:
        rows = rec.labels(start_us=start_us, end_us=end_us, stream=stream)
    if len(rows) == 0:
        return 0
    clock = rows["wall_s"].astype(np.float64)
    if not np.all(np.isfinite(clock)) or np.any(np.diff(clock) < 0) or clock[0] <= 0:
        clock = rows["t_us"].astype(np.float64) * 1e-6  # no usable wall clock: event time
    stop = stop or threading.Event()
    wall0 = time.monotonic()
    sent = 0
    for c, msg in zip(clock, messages_from_rows(rows)):
        if speed is not None:
            delay = wall0 + (c - clock[0]) / float(speed) - time.monotonic()
            if delay > 0:
                stop.wait(min(delay, threading.TIMEOUT_MAX))
        if stop.is_set():
            break
        msg.pop("wall_s", None)
        sink.write(msg)
        sent += 1
    return sent
