"""Run metrics: counters and latency percentiles, reported at the end and periodically."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

import numpy as np


#: latency percentiles are over the last this many labels (a run's memory stays bounded)
LATENCY_WINDOW = 1 << 16


@dataclasses.dataclass
class Metrics:
    events_in: int = 0
    frames: int = 0
    frames_dropped: int = 0
    steps: int = 0
    labels: int = 0
    streams_reset: int = 0
    gap_resets: int = 0     # streams reset at an event-time discontinuity
    events_over_max_streams: int = 0   # events of stream ids past runtime.max_streams: dropped
    started: float = dataclasses.field(default_factory=time.monotonic)
    _latencies: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW), repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add_latency(self, ms: float) -> None:
        with self._lock:
            self._latencies.append(float(ms))

    def latency_percentiles(self) -> tuple[float | None, float | None]:
        with self._lock:
            lat = np.asarray(self._latencies)
        if lat.size == 0:
            return None, None
        return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))

    def snapshot(self, source_stats: dict | None = None) -> dict:
        p50, p99 = self.latency_percentiles()
        elapsed = time.monotonic() - self.started
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if not f.name.startswith("_") and f.name != "started"}
        d.update(
            elapsed_s=elapsed,
            labels_per_s=self.labels / elapsed if elapsed > 0 else 0.0,
            steps_per_s=self.steps / elapsed if elapsed > 0 else 0.0,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            events_dropped=(source_stats or {}).get("dropped", 0),
            source=source_stats or {},
        )
        return d


def format_summary(m: dict) -> str:
    def ms(v):
        return "-" if v is None else f"{v:.1f} ms"
    src = m.get("source", {})
    return (f"events in {m['events_in']:,} (dropped {m['events_dropped']:,}, malformed "
            f"{src.get('malformed', 0):,}, filtered {m['events_filtered']:,}), frames {m['frames']:,} "
            f"(dropped {m['frames_dropped']:,}), steps {m['steps']:,}, labels {m['labels']:,} "
            f"({m['labels_per_s']:.1f}/s), latency p50 {ms(m['latency_p50_ms'])} "
            f"p99 {ms(m['latency_p99_ms'])}, {m['elapsed_s']:.1f} s"
            + (f", time jumps {m['time_jumps']:,} ({m['windows_skipped']:,} empty windows "
               f"skipped)" if m.get("time_jumps") else "")
            + "".join(f"\n  {line}" for line in m.get("advice", ())))
