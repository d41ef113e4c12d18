"""A private Xvfb display, screen grabs and a windowed process for the window tests (the live
viewer, the labelling window).  Tests that need them skip, saying why, where Xvfb, xdotool or Pillow's
XCB support is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
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


class WindowProcess:
    """A command run as a process on a test display, its pipes drained by threads, and
    xdotool on that display: find its window, read the window's geometry, type keys."""

    def __init__(self, display: str, cmd: list[str], cwd) -> None:
        self.display = display
        env = {**os.environ, "DISPLAY": display, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = {"out": [], "err": []}  # grows while the process runs
        self.nudges = 0  # times an all-black window was mapped again (see shot)
        self.threads = [threading.Thread(target=self._read, args=(k, s), daemon=True)
                        for k, s in (("out", self.proc.stdout), ("err", self.proc.stderr))]
        for t in self.threads:
            t.start()

    def _read(self, name: str, stream) -> None:
        for line in stream:
            self.lines[name].append(line)

    def text(self, name: str) -> str:
        """What the process wrote so far to ``"out"`` or ``"err"``."""
        return "".join(self.lines[name])

    def xdo(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "DISPLAY": self.display}).stdout

    def find_window(self, title: str, timeout: float, *, visible: bool = False) -> str:
        """The id of the first window named exactly ``title`` (``visible``: mapped only, for
        screen grabs); fails if the process ends or ``timeout`` s pass without one."""
        from tests.transport.helpers import wait_for

        found = {}
        extra = ["--onlyvisible"] if visible else []

        def look():
            ids = self.xdo("search", *extra, "--name", f"^{title}$").split()
            if ids:
                found["id"] = ids[0]
            return bool(ids) or self.proc.poll() is not None

        assert wait_for(look, timeout=timeout, interval=0.1), f"no {title!r} window"
        assert "id" in found, f"the process ended without a window: {self.finish(1)}"
        return found["id"]

    def geometry(self, wid) -> tuple[int, int, int, int]:
        """The window's ``(x, y, w, h)`` on the screen."""
        vals = dict(line.partition("=")[::2]
                    for line in self.xdo("getwindowgeometry", "--shell", str(wid)).split())
        return tuple(int(vals[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))

    def shot(self, wid) -> np.ndarray:
        """The window's pixels (BGR).  Qt under Xvfb now and then never paints a window it
        has mapped (about one start in six on a loaded machine, eventpipe's window and a bare
        ``cv2.imshow`` loop alike): it stays black whatever it is given, until the window is
        mapped again.  So an all-black grab (no picture of ours is) maps the window again, as
        a window manager would, and the caller's wait grabs again."""
        img = grab(self.display, self.geometry(wid))
        if not img.any():
            self.nudges += 1
            self.xdo("windowunmap", "--sync", str(wid))
            self.xdo("windowmap", "--sync", str(wid))
        return img

    def keys(self, wid, *keys: str) -> None:
        for k in keys:  # one at a time, as a person types
            self.xdo("key", "--window", str(wid), k)

    def finish(self, timeout: float) -> tuple[int | None, str, str]:
        """Wait up to ``timeout`` s for the process to end, kill it after that (rc None);
        ``(rc, stdout, stderr)``."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.kill()
            self.proc.wait(10)
        for t in self.threads:
            t.join(10)
        return rc, self.text("out"), self.text("err")
