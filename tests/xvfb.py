"""A private Xvfb display and screen grabs for the window tests (the live viewer, the
labelling window).  Tests that need them skip, saying why, where Xvfb, xdotool or Pillow's
XCB support is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterator

import numpy as np
import pytest


def start_xvfb() -> Iterator[str]:
    """Yield the display name (``":N"``) of a private Xvfb; ``-displayfd`` picks a free one."""
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


def grab(display: str, geometry: tuple[int, int, int, int]) -> np.ndarray:
    """The screen region ``(x, y, w, h)`` of ``display`` as a BGR image (OpenCV's order)."""
    from PIL import ImageGrab, features

    if not features.check("xcb"):
        pytest.skip("this Pillow was built without XCB: cannot grab the X screen")
    x, y, w, h = geometry
    img = np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))
    return np.ascontiguousarray(img[y:y + h, x:x + w, ::-1])
