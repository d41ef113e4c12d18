"""``eventpipe label`` in a real window on a private Xvfb: real key events from xdotool,
the labels file it writes, the timeline on the screen.  Skips where no display can be made."""

import sys
from pathlib import Path

import numpy as np
import pytest

from eventpipe.labelling.files import Segment, read_labels
from eventpipe.labelling.window import TITLE, TRACK_BGR, class_colour
from tests.transport.helpers import wait_for
from tests.xvfb import WindowProcess

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


class Labeller(WindowProcess):
    def __init__(self, display, *args):
        super().__init__(display, [sys.executable, "-m", "eventpipe", "label", "--echo-keys",
                                   *map(str, args)], REPO)

    def keys(self, wid, *keys: str) -> None:
        """Type each key once the window has handled the one before (``--echo-keys``):
        OpenCV keeps one pending key, so two keys sent while a picture is drawn would be
        read as one."""
        for k in keys:
            n = self.handled()
            super().keys(wid, k)
            assert wait_for(lambda: self.handled() > n or self.proc.poll() is not None,
                            timeout=30, interval=0.02), f"key {k} not handled"

    def handled(self) -> int:
        return sum(line.startswith("eventpipe: key ") for line in self.lines["err"])

    def window(self):
        return self.find_window(TITLE, timeout=90)

    def ready(self, wid):
        """Wait until the window shows its first picture (keys sent earlier can be lost)."""
        assert wait_for(lambda: np.all(self.shot(wid) == TRACK_BGR,
                                       axis=-1).sum() > 1000, timeout=60, interval=0.2), \
            "the window shows no timeline"


def test_keys_mark_segments_and_save(xdisplay, recording, tmp_path):
    out = tmp_path / "take.labels.csv"
    lab = Labeller(xdisplay, recording, "--classes", "wave,clap,push")
    try:
        wid = lab.window()
        lab.ready(wid)
        # clap from 0 to 2 s, then push from 2 s to 3.1 s (two arrow seeks of 1 s, two
        # frame steps of 50 ms), then a third segment undone with backspace
        lab.keys(wid, "2", "space", "Right", "Right", "space")
        lab.keys(wid, "3", "space", "Right", "period", "period", "space")
        lab.keys(wid, "1", "space", "Right", "space", "BackSpace")

        # the timeline shows clap's and push's colours, and no wave (more pixels than
        # the 13 x 13 squares of the class list)
        def colours():
            img = lab.shot(wid)
            return [bool(np.all(img == class_colour(i), axis=-1).sum() > 500) for i in range(3)]

        assert wait_for(lambda: colours() == [False, True, True], timeout=20, interval=0.2), \
            colours()
        lab.keys(wid, "s")
        assert wait_for(out.is_file, timeout=20, interval=0.1)
        lab.keys(wid, "q")
        rc, stdout, err = lab.finish(30)
    finally:
        if lab.proc.poll() is None:
            lab.finish(0.1)
    assert rc == 0, err
    assert read_labels(out) == [Segment(0.0, 2.0, "clap"), Segment(2.0, 3.1, "push")]
    assert out.read_text() == "start_s,end_s,label\n0,2,clap\n2,3.1,push\n"
    assert stdout == f"2 segments, saved to {out}\n"
    assert not lab.xdo("search", "--name", f"^{TITLE}$").split(), "window left open"


def test_existing_labels_load_and_unsaved_quit_asks_twice(xdisplay, recording, tmp_path):
    out = tmp_path / "take.labels.json"
    out.write_text('[{"start_s": 1, "end_s": 2, "label": "sit"}]')
    lab = Labeller(xdisplay, recording, "--labels", out)  # classes from the file
    try:
        wid = lab.window()
        lab.ready(wid)
        lab.keys(wid, "Right", "Right", "space", "Right", "space", "q")
        assert wait_for(lambda: lab.proc.poll() is None, timeout=2)
        lab.keys(wid, "q")
        rc, stdout, err = lab.finish(30)
    finally:
        if lab.proc.poll() is None:
            lab.finish(0.1)
    assert rc == 0, err
    assert stdout == "2 segments, not saved\n"
    assert "quit with unsaved changes" in err
    assert read_labels(out) == [Segment(1.0, 2.0, "sit")]  # untouched


def test_window_ms_sets_the_frame_step(xdisplay, recording, tmp_path):
    """``--window-ms 200``: ``.`` steps 200 ms, so three steps mark a 0.6 s segment."""
    out = tmp_path / "take.labels.csv"
    lab = Labeller(xdisplay, recording, "--classes", "wave", "--window-ms", "200")
    try:
        wid = lab.window()
        lab.ready(wid)
        lab.keys(wid, "1", "space", "period", "period", "period", "space", "s")
        assert wait_for(out.is_file, timeout=20, interval=0.1)
        lab.keys(wid, "q")
        rc, _, err = lab.finish(30)
    finally:
        if lab.proc.poll() is None:
            lab.finish(0.1)
    assert rc == 0, err
    assert read_labels(out) == [Segment(0.0, 0.6, "wave")]
    # --echo-keys: one line per handled key, in the window's key names
    assert [line for line in err.splitlines() if line.startswith("eventpipe: key ")] == \
        [f"eventpipe: key {k}" for k in ("1", "space", ".", ".", ".", "space", "s", "q")]
