"""SIGKILL at random moments: every file opens and holds every event up to its last flush.

Real child processes (``crash_child.py``) write and flush; the parent kills each with
SIGKILL after a seeded random delay past a seeded number of acknowledged flushes, then
opens the file and compares it with the events the child wrote.  ``python -m
tests.recorders.test_crash N`` runs N kills (the manual run in docs/recorders.md).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recorders import open_recording
from tests.recorders import crash_child

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(crash_child.__file__)


def kill_and_check(tmp: Path, run: int, rng: random.Random) -> tuple[int, int]:
    """One kill; returns (events acknowledged, events in the file)."""
    path = tmp / f"crash_{run}.h5"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path), str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    acked_events = acked_batches = 0
    try:
        want_flushes = rng.randint(1, 25)
        for _ in range(want_flushes):
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"child ended early: {proc.stderr.read()}")
            _, n, b = line.split()
            acked_events, acked_batches = int(n), int(b)
        time.sleep(rng.random() * 0.02)  # somewhere inside a later write or flush
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    with open_recording(path) as rec:
        got = rec.events()
        labels = rec.label_messages()
        assert not rec.complete
    assert len(got) >= acked_events, f"run {run}: {len(got)} events < {acked_events} flushed"
    # everything in the file is exactly what the child wrote, in order
    n_batches = acked_batches + 20 + len(got) // 1000
    want, want_labels = crash_child.expected(run, n_batches)
    assert len(got) <= len(want)
    np.testing.assert_array_equal(got, want[:len(got)])
    assert len(labels) >= acked_batches
    for m, w in zip(labels, want_labels):
        assert (m["t_us"], m["stream"], m["seq"], m["label"]) == \
            (w["t_us"], w["stream"], w["seq"], w["label"])
    # the index agrees with the events it holds: a slice equals a mask
    if len(got) > 10:
        a, b = int(got["t"][len(got) // 3]), int(got["t"][len(got) // 2]) + 1
        with open_recording(path) as rec:
            np.testing.assert_array_equal(rec.events(a, b), got[(got["t"] >= a) & (got["t"] < b)])
    return acked_events, len(got)


@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_keeps_every_flushed_event(tmp_path):
    rng = random.Random(1234)
    for run in range(20):
        kill_and_check(tmp_path, run, rng)


if __name__ == "__main__":  # manual run: python -m tests.recorders.test_crash 200
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = random.Random(99)
    with tempfile.TemporaryDirectory() as d:
        extra = []
        for run in range(n):
            acked, held = kill_and_check(Path(d), 1000 + run, rng)
            extra.append(held - acked)
            os.remove(Path(d) / f"crash_{1000 + run}.h5")
        print(f"{n} kills: every file opened and held every flushed event; events beyond the "
              f"last acknowledged flush: median {int(np.median(extra))}, max {max(extra)}")
