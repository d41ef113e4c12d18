"""``eventpipe view`` writes at most ``--max-frames`` frames (default 10,000) and says on
stderr when the cap cut the rendering short (was: ``--window-us 1`` on the 0.1 s N-CARS
sample wrote 99,953 PNGs, and a packet after a long silence allocated every empty window's
frame at once)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from eventpipe import kernels as K
from eventpipe.errors import ExitStatus
from eventpipe.events import EVENT_DTYPE
from tests.conftest import expected_events, sample_path

NCARS = "sample_ncars.dat"
NCARS_WH = (78, 42)  # the size view infers from the coordinates


def pngs(folder):
    return sorted(folder.glob("*.png"))


def test_default_cap_stops_a_tiny_window_and_says_so(cli, tmp_path, monkeypatch):
    """The default cap (shrunk to 50 here: the real 10,000 would write 10,000 files)."""
    import eventpipe.view

    monkeypatch.setattr(eventpipe.view, "DEFAULT_MAX_FRAMES", 50)
    res = cli(["view", sample_path(NCARS), "--out", tmp_path / "f", "--window-us", "1"])
    assert res.rc == ExitStatus.OK and "wrote 50 frames" in res.out, res
    assert len(pngs(tmp_path / "f")) == 50
    assert len(res.err_lines) == 1, res
    line = res.err_lines[0]
    assert line.startswith("eventpipe: warning: stopped after 50 frames"), res
    for needle in ("--max-frames 50, the default", "--window-us (1 us)", str(sample_path(NCARS))):
        assert needle in line, (needle, res)


def test_the_frames_written_are_the_first_windows(cli, tmp_path):
    """An explicit cap: the frames are those of the uncapped rendering, the first N windows
    of the independent decoder's events."""
    import cv2

    from eventpipe.render import frames_to_images

    res = cli(["view", sample_path(NCARS), "--out", tmp_path / "f", "--window-us", "100",
               "--max-frames", "7"])
    assert res.rc == 0 and "wrote 7 frames" in res.out, res
    assert "--max-frames 7)" in res.err and "default" not in res.err, res
    want = frames_to_images(K.to_frames(expected_events(NCARS), NCARS_WH, time_window=100)[:7])
    got = np.stack([cv2.imread(str(p)) for p in pngs(tmp_path / "f")])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("cap, stopped", [(4, True), (5, False), (6, False)])
def test_a_cap_at_or_past_the_end_says_nothing(cli, tmp_path, cap, stopped):
    """0..99,952 us in 20 ms windows is 5 frames: a cap of 5 or more is not a stop."""
    res = cli(["view", sample_path(NCARS), "--out", tmp_path / "f", "--window-us", "20000",
               "--max-frames", cap])
    assert res.rc == 0 and len(pngs(tmp_path / "f")) == min(cap, 5), res
    assert ("stopped after" in res.err) is stopped and ("warning" in res.err) is stopped, res


def test_help_states_the_default():
    from eventpipe.view import DEFAULT_MAX_FRAMES
    from tests.cli.conftest import run_cli

    res = run_cli(["view", "--help"])
    assert DEFAULT_MAX_FRAMES == 10_000 and "(default 10,000)" in " ".join(res.out.split())


def test_a_long_silence_is_rendered_in_bounded_memory(tmp_path):
    """Two events 20 ms apart with a 1 us window: 20,000 windows between them (under the
    binner's 1 s gap bound, so each is a frame).  Rendering five of them must not allocate
    the 20,000 frames (490 MB) of the packet that holds both."""
    from eventpipe.render import render_events

    ev = np.zeros(2, EVENT_DTYPE)
    ev["t"] = [0, 20_000]
    ev["x"], ev["y"], ev["p"] = [1, 2], [1, 2], [1, 0]
    tracemalloc.start()
    try:
        n = render_events(iter([ev]), (64, 48), tmp_path / "f", window_us=1, max_frames=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 5 and len(pngs(tmp_path / "f")) == 5
    assert peak < 160 << 20, peak  # one bounded binner call (64 MiB) and its images


def test_events_outside_the_sensor_size_are_said_not_drawn(cli, tmp_path):
    """``--sensor-size`` smaller than the events: the binner drops them; one warning line counts
    them (the independent decoder's events past 10x10) - before, nothing was said."""
    ev = expected_events(NCARS)
    outside = int(((ev["x"] >= 10) | (ev["y"] >= 10)).sum())
    res = cli(["view", sample_path(NCARS), "--out", tmp_path / "f", "--window-us", "20000",
               "--sensor-size", "10x10"])
    assert res.rc == 0 and "wrote 5 frames" in res.out, res
    assert res.err_lines == [f"eventpipe: warning: {outside:,} events of {sample_path(NCARS)} lay "
                             "outside the sensor size 10x10 and are not drawn: give the real size "
                             "with --sensor-size WxH"], res
    res = cli(["view", sample_path(NCARS), "--out", tmp_path / "g", "--window-us", "20000"])
    assert res.rc == 0 and res.err == "", res
