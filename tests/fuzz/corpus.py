"""Seed inputs for every format: the real samples, and spec vectors from our encoders."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from eventpipe.events import make_events

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO.parent / "shared" / "data" / "events"

REAL = {
    "aedat4": "aedat4/sample.aedat4",
    "aedat2": "aedat2/IMU_translBoxes.aedat",
    "evt2": "evt2/evt2_sample.raw",
    "evt3": "evt3/evt3_sample.raw",
    "dat": "dat/sample_ncars.dat",
    "atis_bin": "bin/sample_nmnist.bin",
    "es": "es/dvs.es",
}

# file suffix the fuzzed input is written under (some readers look at it)
SUFFIX = {"atis_bin": ".bin", "hardvs": ".npz", "npz": ".npz", "npy": ".npy",
          "gesture_npy": ".npy", "csv": ".csv", "aedat3": ".aedat", "aedat2": ".aedat",
          "aedat4": ".aedat4", "evt2": ".raw", "evt3": ".raw", "dat": ".dat", "es": ".es",
          "h5": ".h5"}


def _events(n: int, seed: int, w: int = 128, h: int = 128):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 200, n)).astype(np.int64) + 1000
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t, rng.integers(0, 2, n))


def _via_file(write, suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"seed{suffix}"
        write(p)
        return p.read_bytes()


def seeds(fmt: str) -> list[bytes]:
    """Seed files (bytes) for ``fmt``; empty when a real sample is missing."""
    if fmt in REAL:
        p = EVENTS_DIR / REAL[fmt]
        return [p.read_bytes()] if p.exists() else []
    ev = _events(3000, 1)
    if fmt == "aedat3":
        from eventpipe.io.aedat3 import encode_aedat31
        return [encode_aedat31(ev, "DVS128", packet_events=512)]
    if fmt in ("hardvs", "npz"):
        from eventpipe.io.plain import write_npz
        return [_via_file(lambda p: write_npz(p, ev, sensor_size=(346, 260)), ".npz"),
                _via_file(lambda p: write_npz(p, ev, compressed=True), ".npz")]
    if fmt == "npy":
        from eventpipe.io.plain import write_npy
        return [_via_file(lambda p: write_npy(p, ev), ".npy")]
    if fmt == "gesture_npy":
        arr = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] / 1000.0], axis=1).astype(np.float64)
        buf = io.BytesIO()
        np.save(buf, arr)
        return [buf.getvalue()]
    if fmt == "csv":
        from eventpipe.io.csv_text import write_csv
        return [_via_file(lambda p: write_csv(p, ev[:800]), ".csv")]
    if fmt == "h5":
        from recorders import EventRecorder

        def write(p):
            with EventRecorder(p, (128, 128), chunk_events=1024, flush_every_us=None) as rec:
                rec.write(ev)
                rec.write_labels([{"t_us": 5000, "label": "wave", "score": 0.9}])
        return [_via_file(write, ".h5")]
    raise KeyError(fmt)


def donors() -> list[bytes]:
    """Heads of every seed, spliced into other formats' inputs."""
    out = []
    for fmt in SUFFIX:
        for s in seeds(fmt):
            out.append(s[:2048])
    return out
