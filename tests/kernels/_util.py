"""Helpers for the kernel tests."""

from __future__ import annotations

import numpy as np

from eventpipe.events import make_events
from tests.conftest import expected_events, expected_meta

REAL = ["sample.aedat4", "IMU_translBoxes.aedat", "evt2_sample.raw", "evt3_sample.raw",
        "sample_ncars.dat", "sample_nmnist.bin", "dvs.es"]
TONIC_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def sensor(name: str) -> tuple[int, int]:
    wh = expected_meta(name)["sensor_size_wh"]
    return tuple(wh) if wh else (120, 100)


def real(name: str) -> tuple[np.ndarray, tuple[int, int]]:
    return expected_events(name), sensor(name)


def to_tonic(ev: np.ndarray) -> np.ndarray:
    out = np.empty(len(ev), TONIC_DTYPE)
    for f in "xytp":
        out[f] = ev[f]
    return out


def synthetic(n, W=32, H=24, t_max=100_000, seed=0, backwards=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_max, n))
    if backwards and n:
        idx = rng.integers(0, n, backwards)
        t[idx] -= rng.integers(0, 50, backwards)
    return make_events(rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, 2, n))
