"""Shared fixtures: paths to ../shared data and the expected decoder outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from eventpipe.events import make_events

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVENTPIPE_SHARED", REPO.parent / "shared"))
EVENTS_DIR = SHARED / "data" / "events"
REFERENCE_DIR = SHARED / "reference"

# name of the recording -> path relative to EVENTS_DIR
SAMPLES = {
    "sample.aedat4": "aedat4/sample.aedat4",
    "IMU_translBoxes.aedat": "aedat2/IMU_translBoxes.aedat",
    "evt2_sample.raw": "evt2/evt2_sample.raw",
    "evt3_sample.raw": "evt3/evt3_sample.raw",
    "sample_ncars.dat": "dat/sample_ncars.dat",
    "sample_nmnist.bin": "bin/sample_nmnist.bin",
    "dvs.es": "es/dvs.es",
}


def sample_path(name: str) -> Path:
    p = EVENTS_DIR / SAMPLES[name]
    if not p.exists():
        pytest.skip(f"shared sample {p} is missing (expected ../shared beside the repo)")
    return p


def expected_events(name: str) -> np.ndarray:
    """The events an independent decoder produced from sample ``name``."""
    p = EVENTS_DIR / "expected" / f"{name}.npz"
    if not p.exists():
        pytest.skip(f"expected events {p} are missing")
    with np.load(p) as z:
        return make_events(z["x"], z["y"], z["t"], z["p"])


def expected_meta(name: str) -> dict:
    with open(EVENTS_DIR / "expected" / "expected.json") as f:
        return json.load(f)[name]


@pytest.fixture(params=sorted(SAMPLES))
def sample_name(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seeded_global_rngs():
    """docs/testing.md: "Randomness is seeded". Each test starts the global generators
    (``random``, NumPy's legacy one, and torch's when the test imported torch) from seed 0,
    so a draw without an explicit generator is the same in every run and every order."""
    import random
    import sys

    random.seed(0)
    np.random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)
    yield
