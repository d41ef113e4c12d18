"""``eventpipe view`` writes non-empty ON/OFF images a person can look at."""

import io

import cv2
import numpy as np

from eventpipe.cli import main
from tests.conftest import sample_path


def test_view_png_sequence(tmp_path):
    out = tmp_path / "frames"
    err = io.StringIO()
    rc = main(["view", str(sample_path("sample_ncars.dat")), "--out", str(out),
               "--window-us", "20000"], out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 5  # 0..99,952 us in 20 ms windows
    img = cv2.imread(str(pngs[0]))
    assert img.shape[:2] == (42, 78)  # inferred sensor size of the N-CARS crop
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= 2  # background plus event colours


def test_view_video(tmp_path):
    out = tmp_path / "evt3.mp4"
    rc = main(["view", str(sample_path("evt3_sample.raw")), "--out", str(out),
               "--window-us", "1000", "--max-frames", "5"], out=io.StringIO())
    assert rc == 0
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while True:
        ok, im = cap.read()
        if not ok:
            break
        frames += 1
        assert im.shape[:2] == (720, 1280) and im.std() > 0
    assert frames == 5


def test_demo_round_trips_and_renders(tmp_path):
    """Into a folder that does not exist yet (made, with its parents)."""
    out, folder = io.StringIO(), tmp_path / "new" / "demo"
    assert main(["demo", "--out", str(folder)], out=out) == 0
    text = out.getvalue()
    assert "evt3" in text and "rendered 40 frames" in text
    assert len(list((folder / "frames").glob("*.png"))) == 40
