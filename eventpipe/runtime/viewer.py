"""``--view`` / ``--video``: the live demo window and the labelled video.

Two threads meet here.  The pipeline's inference thread calls :meth:`LabelViewer.show`
after each step with the stream's frame and its current label: the frame is rendered
ON/OFF coloured (``eventpipe.render``), composed with a panel (label, top-k probability
bars, latency, events/s; :func:`eventpipe.render.compose_view`) and appended to the video.
The window itself belongs to the thread that made the viewer (the main thread in
``eventpipe run``): OpenCV's Qt HighGUI must be driven from one thread, so
:meth:`LabelViewer.pump`, called there while the run waits, shows the newest picture,
reads keys and notices a closed window.

Keys: space pauses (the inference thread waits in ``show``: file sources wait too, live
sources drop their oldest frames and count them) and resumes; ``q`` / Esc, or closing the
window, ends the run as SIGINT does (the frames already read are still stepped, the
summary is printed).

``dump_dir`` writes every picture the window shows as ``view_NNNNNN.png`` and one JSON
line per picture to ``view.jsonl`` (``n``, the frame's ``seq`` and ``t_us``, the shown
label's ``seq``, ``paused``, ``frames``): what the tests check the window against.

The video gets one picture per model step, at ``fps`` = 1e6 / stride_us, so it plays at
the speed of the events.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from eventpipe.render import VideoSink, compose_view, frame_to_image, view_layout

KEY_PAUSE = {ord(" ")}
KEY_QUIT = {ord("q"), ord("Q"), 27}


VIEW_ADVICE = ("--view", "use --video out.mp4 instead",
               "use --video out.mp4 instead, or run under Xvfb (xvfb-run eventpipe run --view)")


def _check_display(who: tuple[str, str, str] = VIEW_ADVICE) -> Callable[[], None]:
    """Qt aborts the whole process when it cannot reach the X server: check first.
    ``who``: (what needs it, advice when the display cannot be opened, advice when none
    is set), for the messages.

    Returns a function that closes the probe's connection; call it once Qt has connected
    (an X server with no client left resets, and refuses connections while it does)."""
    what, cannot_open, none_set = who
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return lambda: None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise RuntimeError(f"{what} needs a display and DISPLAY is not set; {none_set}")
    if os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        try:
            x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        except OSError:
            return lambda: None  # cannot probe; let Qt try
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        d = x11.XOpenDisplay(None)
        if not d:
            raise RuntimeError(f"{what} cannot open the display {os.environ['DISPLAY']!r}; "
                               f"{cannot_open}")
        return lambda: x11.XCloseDisplay(d)
    return lambda: None


class LabelViewer:
    def __init__(self, *, window: bool = False, video: str | None = None, fps: float = 20.0,
                 scale: int | None = None, stream=None, dump_dir: str | None = None,
                 merged: bool = False, frame_hw: tuple[int, int] | None = None,
                 title: str = "eventpipe"):
        import cv2

        if not fps > 0:
            raise ValueError(f"video fps must be positive, got {fps}")
        self.cv2 = cv2
        self.window = bool(window)
        self.scale = scale
        self.stream = stream  # show one stream (default: the first seen)
        self.merged = merged  # channels are not OFF/ON (recipe 'halves')
        self.title = title
        self.fps = float(fps)
        self._video = VideoSink(video, fps) if video else None
        if self._video is not None and frame_hw is not None:  # open now, not in the first step
            self._video.open(*view_layout(frame_hw, scale).size)
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self._dump_log = None
        self.frames = 0          # frames shown (composed)
        self.dumped = 0
        self.paused = False
        self.quit_requested = False
        self.metrics = None
        self.on_quit: Callable[[], None] | None = None
        self.stopping: threading.Event | None = None
        self._cond = threading.Condition()
        self._dump_lock = threading.Lock()
        self._latest: dict | None = None  # the newest frame's parts, for the window thread
        self._latest_n = 0
        self._shown_n = 0
        self._shown_paused = False
        self._closed = False
        self._rate = (None, 0, 0.0)  # (events/s, events_in at t, t)
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            self._dump_log = open(self.dump_dir / "view.jsonl", "w")
        if self.window:
            release_probe = _check_display()
            try:
                cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            except cv2.error as exc:
                raise RuntimeError("--view needs OpenCV with GUI support (opencv-python, not "
                                   "opencv-python-headless) and a display; use --video out.mp4 "
                                   f"instead ({str(exc).strip().splitlines()[-1]})") from None
            finally:
                release_probe()

    def bind(self, *, metrics=None, on_quit: Callable[[], None] | None = None,
             stopping: threading.Event | None = None) -> None:
        """``metrics``: an object with ``events_in`` (for events/s); ``on_quit``: called once
        in the window thread when the user quits (q, Esc, window closed); ``stopping``: set
        when the run is ending, which ends a pause."""
        self.metrics = metrics
        self.on_quit = on_quit
        self.stopping = stopping

    # -- the inference thread ---------------------------------------------------------------
    def _events_per_s(self) -> float | None:
        if self.metrics is None:
            return None
        rate, n0, t0 = self._rate
        now, n = time.monotonic(), int(self.metrics.events_in)
        if t0 == 0.0:
            self._rate = (None, n, now)
        elif now - t0 >= 0.5:
            self._rate = ((n - n0) / (now - t0), n, now)
        return self._rate[0]

    def show(self, stream, frame, label: dict | None, seq=None, t_us=None) -> None:
        """Render one stepped frame with its label (any thread).  While paused it waits
        before the frame is published, so a pause holds the picture on screen exactly."""
        if self.stream is None:
            self.stream = stream
        if stream != self.stream or self._closed:
            return
        f = np.asarray(frame.cpu() if hasattr(frame, "cpu") else frame)
        parts = dict(frame_img=frame_to_image(f, merged=self.merged), label=label,
                     latency_ms=None if label is None else label.get("latency_ms"),
                     seq=seq, t_us=t_us, label_seq=None if label is None else label.get("seq"))
        with self._cond:
            while self.paused and not self._closed and not self.quit_requested:
                if self.stopping is not None and self.stopping.is_set():
                    break  # the run is ending (signal, --duration): drain, do not wait
                self._cond.wait(0.1)
            if self._closed:
                return
            self.frames += 1
            parts["frames"] = self.frames
            parts["events_per_s"] = self._events_per_s()
            if self._video is not None:
                self._video.write(self._compose(parts, paused=False))
            self._latest = parts
            self._latest_n += 1
            self._cond.notify_all()
        if not self.window:
            self._dump(self._compose(parts, paused=False), parts, paused=False)

    def _compose(self, parts: dict, paused: bool) -> np.ndarray:
        return compose_view(parts["frame_img"], label=parts["label"],
                            latency_ms=parts["latency_ms"], events_per_s=parts["events_per_s"],
                            frames=parts["frames"], paused=paused, scale=self.scale)

    def _dump(self, img: np.ndarray, parts: dict, paused: bool) -> None:
        with self._dump_lock:
            if self._dump_log is not None:
                self._dump_locked(img, parts, paused)

    def _dump_locked(self, img: np.ndarray, parts: dict, paused: bool) -> None:
        path = self.dump_dir / f"view_{self.dumped:06d}.png"
        if not self.cv2.imwrite(str(path), img):
            raise OSError(f"could not write {path}")
        self._dump_log.write(json.dumps({
            "n": self.dumped, "file": path.name, "seq": parts["seq"], "t_us": parts["t_us"],
            "label_seq": parts["label_seq"], "label": (parts["label"] or {}).get("label"),
            "paused": paused, "frames": parts["frames"]}) + "\n")
        self._dump_log.flush()
        self.dumped += 1

    # -- the window thread ------------------------------------------------------------------
    def pump(self, wait_s: float = 0.02) -> bool:
        """Show the newest picture, handle keys and a closed window; wait about ``wait_s``.
        Returns False once the user has quit (or the viewer is closed)."""
        if self._closed or self.quit_requested:
            time.sleep(wait_s)
            return False
        if not self.window:
            time.sleep(wait_s)
            return True
        cv2 = self.cv2
        with self._cond:
            parts, n, paused = self._latest, self._latest_n, self.paused
        if parts is not None and (n != self._shown_n or paused != self._shown_paused):
            img = self._compose(parts, paused)
            cv2.imshow(self.title, img)
            self._dump(img, parts, paused)
            self._shown_n, self._shown_paused = n, paused
        key = cv2.waitKey(max(1, int(wait_s * 1000)))
        if key != -1 and (key & 0xFF) in KEY_PAUSE:
            with self._cond:
                self.paused = not self.paused
                self._cond.notify_all()
        elif (key != -1 and (key & 0xFF) in KEY_QUIT) or self._window_gone():
            self._quit()
            return False
        return True

    def _window_gone(self) -> bool:
        try:
            return self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) < 1
        except self.cv2.error:
            return True

    def _quit(self) -> None:
        with self._cond:
            self.quit_requested = True
            self.paused = False
            self._cond.notify_all()
        if self.on_quit is not None:
            self.on_quit()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self.paused = False
            self._cond.notify_all()
            if self._video is not None:
                self._video.close()
                self._video = None
        with self._dump_lock:
            if self._dump_log is not None:
                self._dump_log.close()
                self._dump_log = None
        if self.window:
            try:
                self.cv2.destroyWindow(self.title)
                self.cv2.waitKey(1)
            except self.cv2.error:
                pass
