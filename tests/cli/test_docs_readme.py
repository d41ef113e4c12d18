"""README.md's command table, claim by claim, where no other test held it.

* ``eventpipe info FILE [--json]``: "format, sensor size (and where it came from), events,
  first/last timestamp, duration, rate, ON fraction" -- checked on every real recording against
  the independent decoders' ``expected/`` events; with the events back in time counted.
* ``eventpipe view FILE --out DIR|OUT.mp4|OUT.gif``: "ON/OFF coloured frames ... PNGs in a folder,
  a video (.mp4/.avi/.mkv)" -- the colours of a hand-made recording, and every video suffix;
  "at most 10,000 frames unless --max-frames says otherwise" -- ``tests/cli/test_view_cap.py``.
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from eventpipe.cli import main
from eventpipe.events import make_events
from eventpipe.render import BACKGROUND_BGR, OFF_BGR, ON_BGR
from tests.conftest import SAMPLES, expected_events, sample_path

# what the README says `info` reports, with the sensor-size source each file has (the data
# README: EVT 2/3 of this age carry no geometry line, DAT and .bin none at all)
SIZE_SOURCE = {
    "sample.aedat4": {"file"}, "IMU_translBoxes.aedat": {"file", "table"},
    "evt2_sample.raw": {"inferred", "table"}, "evt3_sample.raw": {"table"},
    "sample_ncars.dat": {"inferred"}, "sample_nmnist.bin": {"inferred", "table"},
    "dvs.es": {"file"},
}


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_info_json_reports_what_the_readme_lists_against_the_expected_decoders(name):
    path = sample_path(name)
    ref = expected_events(name)
    rc, out, err = _run(["info", "--json", str(path)])
    assert rc == 0, err
    info = json.loads(out)
    assert info["events"] == len(ref)
    assert info["t_first"] == int(ref["t"][0]) and info["t_last"] == int(ref["t"][-1])
    assert info["t_min"] == int(ref["t"].min()) and info["t_max"] == int(ref["t"].max())
    assert info["duration_us"] == int(ref["t"].max()) - int(ref["t"].min())
    assert info["rate_hz"] == pytest.approx(len(ref) / (info["duration_us"] * 1e-6), rel=1e-9)
    assert info["on_fraction"] == pytest.approx(float(np.mean(ref["p"] == 1)), abs=1e-12)
    assert info["back_in_time"] == _back_in_time(ref["t"])
    assert info["sensor_size_source"] in SIZE_SOURCE[name]
    W, H = info["sensor_size"]
    assert W > int(ref["x"].max()) and H > int(ref["y"].max())  # every event fits, (W, H) order
    assert info["format"] and info["format_title"]
    # the plain-text table says the same numbers
    rc, text, err = _run(["info", str(path)])
    assert rc == 0, err
    rows = dict(line.split(None, 1) if "  " not in line else
                [s.strip() for s in line.split("  ", 1)] for line in text.splitlines())
    assert rows["events"].replace(",", "") == str(len(ref))
    assert rows["first t"] == f"{info['t_first']} us" and rows["last t"] == f"{info['t_last']} us"
    assert rows["sensor size"].startswith(f"{W} x {H} ({info['sensor_size_source']}")


def _back_in_time(t) -> int:
    """Events earlier than the largest time before them, one event at a time."""
    count, top = 0, None
    for v in t.tolist():
        if top is not None and v < top:
            count += 1
        top = v if top is None else max(top, v)
    return count


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_info_counts_events_back_in_time_across_chunks(tmp_path, chunk, monkeypatch):
    """Time going backwards is counted, not only hidden in first/last t (before: ``info``
    of a recording whose time runs backwards said nothing of it; ``last t`` merely below
    ``first t``), also where it crosses the reader's chunks."""
    from eventpipe.io import base

    rng = np.random.default_rng(5)
    t = np.cumsum(rng.integers(-40, 60, 500))
    path = tmp_path / "unsorted.npy"
    np.save(path, make_events(rng.integers(0, 10, 500), rng.integers(0, 8, 500), t,
                              rng.integers(0, 2, 500)))
    real_stats = base.EventReader.stats
    monkeypatch.setattr(base.EventReader, "stats",
                        lambda self, chunk_events=chunk: real_stats(self, chunk_events))
    want = _back_in_time(t)
    assert want > 100
    rc, out, err = _run(["info", "--json", str(path)])
    assert rc == 0 and json.loads(out)["back_in_time"] == want, err
    rc, text, err = _run(["info", str(path)])
    rows = dict(line.split("  ", 1) for line in text.splitlines())
    assert rows["back in time"].strip() == f"{want:,} events earlier than an event before them"


def _tiny_recording(tmp_path):
    """10x8 sensor, one 10 ms window: 3 ON events at (2, 3), 3 OFF events at (7, 5)."""
    x = [2, 2, 2, 7, 7, 7, 9]
    y = [3, 3, 3, 5, 5, 5, 7]
    t = [100, 200, 300, 400, 500, 600, 9_000]
    p = [1, 1, 1, 0, 0, 0, 1]
    path = tmp_path / "tiny.npy"
    np.save(path, make_events(x, y, t, p))
    return path


def test_view_pngs_are_on_off_coloured(tmp_path):
    src = _tiny_recording(tmp_path)
    out = tmp_path / "frames"
    rc, text, err = _run(["view", str(src), "--out", str(out), "--window-us", "10000",
                          "--sensor-size", "10x8"])
    assert rc == 0, err
    (png,) = sorted(out.glob("*.png"))
    img = cv2.imread(str(png))
    assert img.shape == (8, 10, 3)
    # three events saturate (the renderer's default saturation is 3): the full colours
    assert tuple(img[3, 2]) == ON_BGR
    assert tuple(img[5, 7]) == OFF_BGR
    assert tuple(img[0, 0]) == BACKGROUND_BGR
    # one ON event is a third of the way from the background to the ON colour
    third = np.asarray(BACKGROUND_BGR) + (np.asarray(ON_BGR) - np.asarray(BACKGROUND_BGR)) / 3
    assert np.abs(img[7, 9].astype(float) - third).max() <= 1
    assert "wrote 1 frames" in text


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_view_writes_each_documented_video_suffix(tmp_path, suffix):
    out = tmp_path / f"dat{suffix}"
    rc, _, err = _run(["view", str(sample_path("sample_ncars.dat")), "--out", str(out),
                       "--window-us", "20000"])
    assert rc == 0, err
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, im = cap.read()
        if not ok:
            break
        frames.append(im)
    cap.release()
    assert len(frames) == 5  # 0..99,952 us in 20 ms windows
    assert all(f.shape[:2] == (42, 78) and f.std() > 0 for f in frames)


def test_duration_counts_from_the_end_of_the_warm_up(monkeypatch, tmp_path):
    """README: "The first run compiles the Numba kernels before its first label ...
    `--duration` counts from the end of that warm-up": a warm-up longer than the duration
    still leaves the run its full duration of events and labels."""
    import threading

    from eventpipe.runtime.pipeline import Pipeline

    real = Pipeline.warm_up
    slow = threading.Event()

    def slow_warm_up(self):
        real(self)
        slow.wait(2.0)  # nobody sets it: a warm-up that takes 2 s

    monkeypatch.setattr(Pipeline, "warm_up", slow_warm_up)
    out = tmp_path / "labels.jsonl"
    rc, _, err = _run(["run", "--source", "synthetic:seed=2", "--duration", "1.0", "--quiet",
                       "--max-speed", "--set", "decoder.emit_every=1", "--jsonl", str(out)])
    assert rc == 0, err
    labels = [m for m in map(json.loads, out.read_text().splitlines()) if "label" in m]
    assert len(labels) >= 5, err  # events flowed for the second after the 2 s warm-up
