from __future__ import annotations

import numpy as np
import pytest

from eventpipe.events import make_events


def random_events(seed: int, n: int, *, size=(640, 480), step_max: int = 3, t0: int = 0,
                  sorted_t: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.integers(0, step_max + 1, n))
    if not sorted_t:
        t = t + rng.integers(-50, 50, n)
    return make_events(rng.integers(0, size[0], n), rng.integers(0, size[1], n), t,
                       rng.integers(0, 2, n))


def label_msg(i: int, *, stream: int = 0, t_us: int | None = None) -> dict:
    return {"stream": stream, "seq": i, "t_us": 1000 * i if t_us is None else t_us,
            "label": f"act{i % 4}", "score": 0.5 + (i % 5) / 10,
            "topk": [[f"act{i % 4}", 0.5], ["other", 0.25]], "latency_ms": 2.0 + i,
            "truth": "act0", "wall_s": 1000.0 + i * 0.01}


@pytest.fixture
def events_1m():
    return random_events(0, 1_000_000)
