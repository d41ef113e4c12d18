"""A time jump through every source kind: memory stays bounded, labels continue.

The trial run's reproductions (issue 15): bit 30 flipped in one timestamp of
``sample_ncars.dat`` (file), an EVPK packet one hour ahead (zmq), an aestream
datagram ``struct.pack('<II', (5 << 16) | 5, 0xFFFFFFFF)`` after valid traffic (udp).
Before the fix each made ``StreamingBinner.push`` build every empty window across the
gap (RSS 0.45 -> 3 GB, labels stopped).  Here each run must:

- count the jump(s) (``time_jumps``) and skip the empty windows without building them;
- keep the process's resident memory within a bound (``/proc/self/statm``, sampled
  while the pipeline runs) far below what the skipped windows would take;
- go on labelling after the jump.

The binner's own bounds are tested in ``tests/kernels/test_streaming_bounded.py``.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import numpy as np
import pytest

from eventpipe.sources import open_source
from eventpipe.sources.sender import Sender
from tests.conftest import expected_events, sample_path
from tests.runtime.test_sources_e2e import (W, chunks_by_time, finish, make_cfg, small_model,
                                            start, stop_when_all_in)
from tests.transport.helpers import wait_for

HOUR_US = 3_600_000_000
PAGE = os.sysconf("SC_PAGE_SIZE")
# what the skipped windows of the smallest jump here (2**30 us at 20 ms: 53,687 frames of
# 32x32x2 int16 + their float32 tensors) would have taken: ~650 MB.  The bound is a
# quarter of that.
RSS_BOUND = 160 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    """Samples the resident set every 5 ms in a thread: ``peak - base`` is the growth."""

    def __init__(self):
        self.base = rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


@pytest.fixture(scope="module")
def loaded():
    return small_model()


def _dat_with_flipped_bit(tmp_path, k: int):
    """A copy of sample_ncars.dat with bit 30 set in event ``k``'s timestamp."""
    data = bytearray(sample_path("sample_ncars.dat").read_bytes())
    pos = 0
    while data[pos:pos + 1] == b"%":  # header lines, then event type and size bytes
        pos = data.index(b"\n", pos) + 1
    pos += 2
    off = pos + 8 * k + 3  # the little-endian u32 timestamp's top byte
    data[off] |= 0x40
    path = tmp_path / "flipped.dat"
    path.write_bytes(bytes(data))
    return path


def _run_file(path, loaded, size):
    src = open_source(f"file:{path}", speed=None, sensor_size=size)
    try:
        pipe, labels = start(src, loaded)
        summary = finish(pipe)
    finally:
        src.close()
    summary["binned"] = sum(p.binner.stats.binned for p in pipe.preps.values())
    summary["dropped_backwards"] = sum(p.binner.stats.dropped_backwards
                                       for p in pipe.preps.values())
    return summary, labels


def test_file_bit_flip_in_one_timestamp(tmp_path, loaded):
    ev = expected_events("sample_ncars.dat")
    size = (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1)
    k = len(ev) // 2
    clean, clean_labels = _run_file(sample_path("sample_ncars.dat"), loaded, size)  # warm
    assert clean["time_jumps"] == 0
    path = _dat_with_flipped_bit(tmp_path, k)
    with PeakRss() as mem:
        summary, labels = _run_file(path, loaded, size)
    assert mem.growth < RSS_BOUND, f"RSS grew {mem.growth >> 20} MB"
    assert summary["events_in"] == len(ev)
    assert summary["dropped_backwards"] == 0 and summary["binned"] == clean["binned"]
    assert summary["time_jumps"] == 2  # ahead to the damaged event, back after it
    assert summary["windows_skipped"] >= (1 << 30) // W - 2
    # every label before the damage as in the clean run, then the damaged event's window,
    # then labels on the original time line again, up to the clean run's last window
    t_k = int(ev["t"][k])
    before = [m["t_us"] for m in clean_labels if m["t_us"] <= t_k]
    assert [m["t_us"] for m in labels[:len(before)]] == before
    after = [m for m in labels if t_k < m["t_us"] < (1 << 30)]
    assert after and after[-1]["t_us"] >= clean_labels[-1]["t_us"] - W
    assert any(m["t_us"] > (1 << 30) for m in labels)
    assert summary["gap_resets"] == 2


def test_zmq_packet_one_hour_ahead(loaded):
    ev = expected_events("sample.aedat4")
    chunks = chunks_by_time(ev, 10_000)
    half = len(chunks) // 2
    ahead = chunks[half][:50].copy()
    ahead["t"] += HOUR_US
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=4096) as src:
        pipe, labels = start(src, loaded)
        with PeakRss() as mem:
            with Sender(f"tcp://127.0.0.1:{src.port}", stream_id=1,
                        sensor_size=(320, 240)) as tx:
                for c in chunks[:half]:
                    tx.send(c)
                tx.send(ahead)
                for c in chunks[half:]:
                    tx.send(c)
            summary = stop_when_all_in(pipe, src, len(ev) + len(ahead))
    assert mem.growth < RSS_BOUND, f"RSS grew {mem.growth >> 20} MB"
    assert summary["time_jumps"] == 2 and summary["windows_skipped"] >= HOUR_US // W - 2
    from eventpipe.runtime.metrics import format_summary
    assert f"time jumps 2 ({summary['windows_skipped']:,} empty windows skipped)" \
        in format_summary(summary)
    t_jump = int(chunks[half]["t"][0])
    t_far = int(ev["t"][0]) + HOUR_US  # (AEDAT4 times are since the epoch)
    i_jump = next(i for i, m in enumerate(labels) if m["t_us"] > t_far)
    assert all(m["t_us"] <= t_jump + W for m in labels[:i_jump])
    after = [m["t_us"] for m in labels[i_jump + 1:]]
    assert len(after) >= (int(ev["t"][-1]) - t_jump) // W - 2  # the second half labelled
    assert all(t < t_far for t in after) and after[-1] >= int(ev["t"][-1])


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_udp_timestamp_0xffffffff_after_valid_traffic(loaded):
    """aestream's timestamped words: ``(x << 16) | (p << 15) | y`` then ``u32 t``."""
    rng = np.random.default_rng(3)

    def datagram(t0: int, n: int = 100) -> bytes:
        t = t0 + np.sort(rng.integers(0, 5_000, n))
        w = (rng.integers(0, 64, n) << 16) | (rng.integers(0, 2, n) << 15) | rng.integers(0, 48, n)
        return np.stack([w, t], axis=1).astype("<u4").tobytes()

    before = [datagram(5_000 * i) for i in range(40)]     # 0.2 s of valid traffic
    after = [datagram(5_000 * i) for i in range(40, 80)]  # the sender goes on
    with open_source("udp://127.0.0.1:0", sensor_size=(64, 48)) as src:
        pipe, labels = start(src, loaded, make_cfg(**{"window.max_gap_us": 500_000}))
        with PeakRss() as mem, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for i, d in enumerate(before + [struct.pack("<II", (5 << 16) | 5, 0xFFFFFFFF)]
                                  + after):
                tx.sendto(d, ("127.0.0.1", src.port))
                if i % 8 == 7:  # let the receiver keep up (loopback, no kernel drops)
                    wait_for(lambda: src.stats.packets > i - 4, timeout=2)
            summary = stop_when_all_in(pipe, src, 8001, timeout=20)
    assert mem.growth < RSS_BOUND, f"RSS grew {mem.growth >> 20} MB"
    assert src.stats.kernel_dropped == 0 and summary["source"]["malformed"] == 0
    # the unwrapper takes the valid words after 0xFFFFFFFF as the next 2**32 lap: one jump
    assert summary["time_jumps"] == 1
    late = [m["t_us"] for m in labels if m["t_us"] > 0xFFFFFFFF]
    assert len(late) >= 9  # 0.2 s of 20 ms windows after the jump


def test_tiny_windows_respect_duration(loaded):
    """``window.window_us=1`` on a file at full speed: millions of windows; the run
    stops at its duration with bounded memory instead of building them all first."""
    from eventpipe.runtime.pipeline import Pipeline

    path = sample_path("evt2_sample.raw")
    src = open_source(f"file:{path}", speed=None)
    labels: list = []
    cfg = make_cfg(**{"runtime.frame_queue": 16})
    pipe = Pipeline(cfg, src, loaded, [], window_us=1, input_size=(32, 32),
                    frame_norm="counts", on_label=labels.append)
    try:
        with PeakRss() as mem:
            t0 = time.monotonic()
            pipe.start()
            pipe.wait(1.0)
            took = time.monotonic() - t0
    finally:
        src.close()
    assert took < 10, f"the 1 s run took {took:.1f} s"
    assert mem.growth < RSS_BOUND, f"RSS grew {mem.growth >> 20} MB"
    assert pipe.metrics.frames > 0 and labels


def test_latency_record_is_bounded():
    """Percentiles over the last LATENCY_WINDOW labels: a day-long run keeps no list per label."""
    from eventpipe.runtime.metrics import LATENCY_WINDOW, Metrics

    m = Metrics()
    for i in range(LATENCY_WINDOW + 1000):
        m.add_latency(1000.0 if i < 1000 else 1.0)  # the first 1000 fall out of the window
    assert len(m._latencies) == LATENCY_WINDOW
    assert m.latency_percentiles() == (1.0, 1.0)
