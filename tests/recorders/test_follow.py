"""Following a recording another process is writing (SWMR reader)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recorders import open_recording
from tests.recorders import crash_child

REPO = Path(__file__).resolve().parents[2]


def start_writer(path: Path, seed: int, n_batches: int | None) -> subprocess.Popen:
    args = [sys.executable, str(Path(crash_child.__file__)), str(path), str(seed)]
    if n_batches is not None:
        args.append(str(n_batches))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.mark.timeout(120)
def test_follow_reads_everything_a_concurrent_writer_writes(tmp_path):
    path = tmp_path / "live.h5"
    proc = start_writer(path, 7, 300)
    try:
        # the reader starts as soon as the file is readable, long before the writer ends
        rec = open_recording(path, follow=True, wait_s=60)
        with rec:
            assert not rec.complete
            chunks = list(rec.iter_events(chunk_events=5000, idle_timeout_s=30))
            assert rec.complete and not rec.follow_timed_out
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    want, _ = crash_child.expected(7, 300)
    assert len(chunks) > 10 and all(len(c) == 5000 for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate(chunks), want)


@pytest.mark.timeout(120)
def test_follow_ends_after_idle_timeout_when_the_writer_dies(tmp_path):
    path = tmp_path / "dead.h5"
    proc = start_writer(path, 8, None)
    try:
        for _ in range(5):  # five acknowledged flushes, then the writer dies
            line = proc.stdout.readline()
        acked = int(line.split()[1])
        with open_recording(path, follow=True, wait_s=30) as rec:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            got = np.concatenate(list(rec.iter_events(idle_timeout_s=1.0, poll_s=0.02)))
            assert rec.follow_timed_out and not rec.complete
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    want, _ = crash_child.expected(8, 200)
    assert len(got) >= acked
    np.testing.assert_array_equal(got, want[:len(got)])


def test_follow_slice_stops_at_end_us(tmp_path):
    from recorders import EventRecorder
    from tests.recorders.conftest import random_events

    path = tmp_path / "r.h5"
    ev = random_events(9, 100_000)
    rec = EventRecorder(path, (640, 480), flush_every_us=None)
    rec.write(ev)
    rec.flush()  # not closed: a follower must stop on end_us, not wait for the end
    a, b = int(ev["t"][1000]), int(ev["t"][50_000])
    with open_recording(path, follow=True) as r:
        got = np.concatenate(list(r.iter_events(start_us=a, end_us=b, idle_timeout_s=30)))
    rec.close()
    np.testing.assert_array_equal(got, ev[(ev["t"] >= a) & (ev["t"] < b)])


def test_wait_for_a_recording_that_never_appears(tmp_path):
    with pytest.raises(TimeoutError, match="never.h5: no readable recording after 0.2 s"):
        open_recording(tmp_path / "never.h5", follow=True, wait_s=0.2)
