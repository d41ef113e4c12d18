"""A recording process for the SIGKILL test: writes seeded batches, flushing often.

``python crash_child.py PATH SEED [N]`` writes batch after batch (sizes and contents from
:func:`batch`), flushes every few batches and after each flush prints the committed event
and label counts (``flushed EVENTS LABELS``) to stdout, flushed, so the parent knows what
the file must hold at least.  It runs until killed.
"""

from __future__ import annotations

import sys

import numpy as np

from eventpipe.events import make_events

BATCHES_PER_FLUSH = 3


def batch(seed: int, i: int) -> tuple[np.ndarray, list[dict]]:
    """Batch ``i`` of run ``seed``: events continuing in time, and one label."""
    rng = np.random.default_rng([seed, i])
    n = int(rng.integers(1, 3000))
    t = i * 10_000 + np.sort(rng.integers(0, 10_000, n))
    ev = make_events(rng.integers(0, 640, n), rng.integers(0, 480, n), t, rng.integers(0, 2, n))
    label = {"t_us": int(i * 10_000 + 9_999), "stream": int(i % 3), "seq": i,
             "label": f"action{i % 7}", "score": float(rng.random()),
             "topk": [["a", 0.5], ["b", 0.25]], "latency_ms": 1.5, "wall_s": float(i)}
    return ev, [label]


def expected(seed: int, n_batches: int) -> tuple[np.ndarray, list[dict]]:
    evs, labs = [], []
    for i in range(n_batches):
        e, lab = batch(seed, i)
        evs.append(e)
        labs += lab
    return np.concatenate(evs), labs


def main(path: str, seed: int, n_batches: int | None = None) -> None:
    """Write until killed, or ``n_batches`` batches and close the file."""
    from recorders import EventRecorder

    # small chunks: chunk allocation, index and label growth happen all the time
    with EventRecorder(path, (640, 480), flush_every_us=None, compression="lzf",
                       chunk_events=2048, index_period_us=500) as rec:
        i = 0
        while n_batches is None or i < n_batches:
            ev, labels = batch(seed, i)
            rec.write(ev)
            rec.write_labels(labels)
            i += 1
            if i % BATCHES_PER_FLUSH == 0:
                n = rec.flush()
                sys.stdout.write(f"flushed {n} {i}\n")
                sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
