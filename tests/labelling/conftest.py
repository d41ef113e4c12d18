"""A private Xvfb display for the labelling window tests (skips, saying why, where Xvfb or
xdotool is missing), and a small recording to label."""

import numpy as np
import pytest

from eventpipe.events import make_events
from tests.xvfb import start_xvfb


@pytest.fixture(scope="module")
def xdisplay():
    yield from start_xvfb()


def write_recording(path, seconds=5.0, size=(48, 32), seed=0):
    """A recording of ``seconds`` with events from t = 1 s (so times in labels files are
    seconds after the first event, not after t = 0)."""
    from recorders import EventRecorder

    rng = np.random.default_rng(seed)
    n = int(4000 * seconds)
    t = np.sort(rng.integers(1_000_000, 1_000_000 + int(seconds * 1e6), n))
    t[0], t[-1] = 1_000_000, 1_000_000 + int(seconds * 1e6)
    ev = make_events(rng.integers(0, size[0], n), rng.integers(0, size[1], n), t,
                     rng.integers(0, 2, n))
    with EventRecorder(path, size) as rec:
        rec.write(ev)
    return path


@pytest.fixture
def recording(tmp_path):
    return write_recording(tmp_path / "take.h5")
