"""A private Xvfb display for the labelling window tests (skips, saying why, where Xvfb or
xdotool is missing), and a small recording to label."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from eventpipe.events import make_events


@pytest.fixture(scope="module")
def xdisplay():
    missing = [p for p in ("Xvfb", "xdotool") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (Debian packages xvfb, xdotool) for a display")
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp", "-noreset"], pass_fds=(wfd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(wfd)
    try:
        with os.fdopen(rfd) as f:  # Xvfb writes the display number once it accepts clients
            number = f.readline().strip()
        if not number:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


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
