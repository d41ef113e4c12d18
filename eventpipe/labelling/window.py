"""``eventpipe label REC``: play a recording in an OpenCV window and mark segments with keys.

The picture is the events of the last ``window_us`` before the cursor, ON/OFF coloured as
in ``eventpipe run --view`` (:func:`eventpipe.render.frame_to_image`), and below it a
status line (time, play state, selected class, open segment), the classes with their
colours and keys, the timeline of the recording with every segment in its class's colour,
the open segment outlined and the cursor, the last message and the keys.  The keys and
what they do are :mod:`eventpipe.labelling.state` (a pure state machine; this module only
draws it, feeds it key names and wall time, and writes the labels file on ``s``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Sequence, TextIO

import numpy as np

from eventpipe.errors import ConfigError
from eventpipe.labelling.files import Segment, labels_path_for, read_labels, write_labels
from eventpipe.labelling.state import QUIT, SAVE, LabelState, n_segments
from eventpipe.view import MAX_VIEW_PIXELS

TITLE = "eventpipe label"
PANEL_BGR = (32, 32, 32)
TEXT_BGR = (235, 235, 235)
DIM_BGR = (150, 150, 150)
CURSOR_BGR = (255, 255, 255)
TRACK_BGR = (70, 70, 70)
#: class colours (BGR), in class order, repeating
CLASS_BGR = ((60, 200, 60), (60, 160, 255), (230, 120, 60), (200, 80, 200), (60, 220, 220),
             (150, 150, 255), (140, 90, 40), (100, 100, 180), (180, 200, 120), (220, 220, 90))
TIMELINE_H = 26
MIN_WIDTH = 520

# OpenCV waitKeyEx codes: Qt and GTK backends give X keysyms for the special keys (Qt also
# its own key codes); plain keys are their ASCII codes.
_SPECIAL = {
    0xFF51: "left", 0xFF53: "right", 0xFF50: "home", 0xFF57: "end", 0xFF08: "backspace",
    0xFF09: "tab", 0xFF1B: "esc", 0x1000012: "left", 0x1000014: "right", 0x1000010: "home",
    0x1000011: "end", 0x1000003: "backspace", 0x1000001: "tab", 0x1000000: "esc",
    0x250000: "left", 0x270000: "right", 0x240000: "home", 0x230000: "end",  # Windows
    8: "backspace", 9: "tab", 27: "esc", 32: "space", 127: "backspace",
}


def key_name(code: int) -> Optional[str]:
    """An OpenCV ``waitKeyEx`` code -> the state machine's key name (None: no key/unknown)."""
    if code is None or code < 0:
        return None
    if code in _SPECIAL:
        return _SPECIAL[code]
    low = code & 0xFF
    if code < 0x100 and 32 < low < 127:
        return chr(low).lower()
    return None


def class_colour(i: int) -> tuple:
    return CLASS_BGR[i % len(CLASS_BGR)]


class RecordingFrames:
    """The events of a recording between two times (µs after its first event), binned
    into one OFF/ON count frame at the sensor's resolution."""

    def __init__(self, path):
        from eventpipe.labelling.events import take_events

        self.read, self.size, self.t_first, t_last = take_events(Path(path))
        self.duration_us = int(t_last - self.t_first)

    def frame(self, a_us: int, b_us: int) -> np.ndarray:
        W, H = self.size
        ev = self.read(self.t_first + a_us, self.t_first + b_us)
        out = np.zeros((2, H, W), np.float32)
        if len(ev):
            ok = (ev["x"] < W) & (ev["y"] < H)
            ev = ev[ok]
            idx = (ev["p"].astype(np.int64) * H + ev["y"]) * W + ev["x"]
            out.reshape(-1)[:] = np.bincount(idx, minlength=2 * H * W)[: 2 * H * W]
        return out


def check_picture(size, scale: int) -> None:
    """The window's picture (the sensor size times ``scale``) within ``MAX_VIEW_PIXELS``."""
    w, h = size[0] * scale, size[1] * scale
    if w * h > MAX_VIEW_PIXELS:
        raise ConfigError(f"--scale {scale}: a {w}x{h} picture of the {size[0]}x{size[1]} "
                          f"sensor, more than {MAX_VIEW_PIXELS:,} pixels; lower --scale")


def draw(state: LabelState, frame: np.ndarray, *, scale: int) -> np.ndarray:
    """The window's picture for ``state`` and the event ``frame`` ([2, H, W] counts)."""
    import cv2

    from eventpipe.render import frame_to_image

    img_f = frame_to_image(frame)
    h, w = img_f.shape[:2]
    fw, fh = w * scale, h * scale
    W = max(MIN_WIDTH, fw)
    rows = 4 + (len(state.classes) + 3) // 4
    H = fh + 22 * rows + TIMELINE_H + 16
    img = np.empty((H, W, 3), np.uint8)
    img[...] = PANEL_BGR
    x0 = (W - fw) // 2
    img[:fh, x0:x0 + fw] = cv2.resize(img_f, (fw, fh), interpolation=cv2.INTER_NEAREST)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def text(s, x, y, colour=TEXT_BGR, size=0.45, thick=1):
        cv2.putText(img, s, (x, y), font, size, colour, thick, cv2.LINE_AA)

    y = fh + 18
    play = "PLAYING" if state.playing else "paused"
    status = (f"{state.t_us / 1e6:7.3f} / {state.duration_us / 1e6:.3f} s   {play}   "
              f"class {state.current + 1}: {state.label}")
    if state.open_start_us is not None:
        status += f"   open from {state.open_start_us / 1e6:.3f} s"
    if state.dirty:
        status += "   *unsaved*"
    text(status, 8, y)
    y += 22
    for i, name in enumerate(state.classes):
        col, row = i % 4, i // 4
        cx, cy = 8 + col * (W // 4), y + row * 22
        cv2.rectangle(img, (cx, cy - 11), (cx + 12, cy + 1), class_colour(i), -1)
        if i == state.current:
            cv2.rectangle(img, (cx - 2, cy - 13), (cx + 14, cy + 3), CURSOR_BGR, 1)
        text(f"{(i + 1) % 10} {name}", cx + 18, cy, TEXT_BGR if i == state.current else DIM_BGR)
    y += 22 * ((len(state.classes) + 3) // 4)
    # the timeline
    tx0, tx1, ty0 = 8, W - 8, y
    ty1 = ty0 + TIMELINE_H
    img[ty0:ty1, tx0:tx1] = TRACK_BGR
    span = max(1, state.duration_us)

    def px(t_us):
        return tx0 + int(round((tx1 - tx0 - 1) * min(max(t_us, 0), span) / span))

    for s in state.segments:
        i = state.classes.index(s.label) if s.label in state.classes else -1
        colour = class_colour(i) if i >= 0 else DIM_BGR
        img[ty0 + 3:ty1 - 3, px(s.start_s * 1e6):max(px(s.end_s * 1e6), px(s.start_s * 1e6) + 1)] = colour
    if state.open_start_us is not None:
        a, b = sorted((state.open_start_us, state.t_us))
        cv2.rectangle(img, (px(a), ty0 + 1), (max(px(b), px(a) + 1), ty1 - 2),
                      class_colour(state.current), 1)
    cx = px(state.t_us)
    img[ty0 - 3:ty1 + 3, max(tx0, cx - 1):cx + 1] = CURSOR_BGR
    y = ty1 + 18
    text(state.message[:110], 8, y, TEXT_BGR)
    y += 22
    text("1-9 class  space start/end  backspace undo  x delete  arrows 1 s  , . frame  "
         "p play  s save  q quit", 8, y, DIM_BGR, 0.38)
    return img


def initial_segments(labels: Path, classes: Sequence[str], duration_us: int) -> list[Segment]:
    if not labels.is_file():
        return []
    return read_labels(labels, duration_s=duration_us / 1e6 + 1e-6, classes=classes)


def run_label_window(recording, classes: Sequence[str], *, labels: Optional[str] = None,
                     window_us: int = 50_000, speed: float = 1.0, scale: Optional[int] = None,
                     err: TextIO = sys.stderr, max_seconds: Optional[float] = None,
                     echo_keys: bool = False) -> dict:
    """Open the window on ``recording`` and run until the user quits (or closes the
    window).  ``labels``: the file to read (if it exists) and write on ``s`` (default
    ``REC.labels.csv``).  ``echo_keys``: write ``eventpipe: key NAME`` to ``err`` once each
    key is handled, so a script can wait for one key before typing the next (OpenCV keeps
    one pending key: two keys that arrive while a picture is drawn are read as one).
    Returns ``{"segments", "saved", "labels"}``."""
    import cv2

    from eventpipe.runtime.viewer import _check_display

    frames = RecordingFrames(recording)
    labels_path = Path(labels) if labels else labels_path_for(recording)
    segs = initial_segments(labels_path, classes, frames.duration_us)
    state = LabelState(frames.duration_us, classes, segs, speed=speed, step_us=window_us)
    state.message = (f"{n_segments(len(segs))} from {labels_path.name}" if segs
                     else "p plays; 1-9 picks a class; space starts and ends a segment")
    if scale is None:
        scale = max(1, min(8, 512 // max(frames.size)))
    check_picture(frames.size, scale)
    release = _check_display(("eventpipe label", "is the X server running? (Xvfb :N)",
                              "run it under Xvfb (xvfb-run eventpipe label REC)"))
    try:
        cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    except cv2.error as exc:
        raise RuntimeError("eventpipe label needs OpenCV with GUI support (opencv-python, not "
                           "opencv-python-headless) and a display "
                           f"({str(exc).strip().splitlines()[-1]})") from None
    finally:
        release()
    saved_any = False
    t_last = time.monotonic()
    t_start = t_last
    shown_key = None
    try:
        while True:
            now = time.monotonic()
            state.tick(int((now - t_last) * 1e6))
            t_last = now
            if max_seconds is not None and now - t_start > max_seconds:
                break
            key = (state.t_us, state.playing, state.current, state.open_start_us,
                   tuple(state.segments), state.message, state.dirty)
            if key != shown_key:
                a = max(0, state.t_us - window_us)
                pic = draw(state, frames.frame(a, max(a + 1, state.t_us)), scale=scale)
                cv2.imshow(TITLE, pic)
                shown_key = key
            code = cv2.waitKeyEx(15)
            name = key_name(code)
            if name is not None:
                action = state.handle(name)
                if action == SAVE:
                    write_labels(labels_path, state.segments)
                    state.saved(labels_path.name)
                    saved_any = True
                    err.write(f"eventpipe: saved {n_segments(len(state.segments))} to "
                              f"{labels_path}\n")
                    err.flush()
                if echo_keys:
                    err.write(f"eventpipe: key {name}\n")
                    err.flush()
                if action == QUIT:
                    break
            try:
                gone = cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1
            except cv2.error:
                gone = True
            if gone:
                break
    finally:
        try:
            cv2.destroyWindow(TITLE)
            cv2.waitKey(1)
        except cv2.error:
            pass
    if state.dirty:
        err.write(f"eventpipe: warning: quit with unsaved changes; {labels_path} holds the "
                  "last save\n")
    return {"segments": list(state.segments), "saved": saved_any, "labels": str(labels_path)}
