"""Emulator sources: frame iterables, a video file round trip, a camera stand-in."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from eventpipe.emulator import DvsEmulator, camera_source, frames_source, video_source
from eventpipe.events import EVENT_DTYPE

W, H, N, FPS = 64, 48, 20, 25.0


def bar_frames(n=N):
    out = []
    for i in range(n):
        f = np.full((H, W, 3), 40, np.uint8)
        f[:, 5 + 2 * i: 15 + 2 * i] = 220
        out.append(f)
    return out


def write_video(tmp_path, frames):
    for name, fourcc in (("clip.avi", "MJPG"), ("clip.mp4", "mp4v")):
        path = tmp_path / name
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
        if not vw.isOpened():
            continue
        for f in frames:
            vw.write(f)
        vw.release()
        if path.stat().st_size > 0:
            return path
    pytest.skip("this OpenCV build can write neither MJPG/AVI nor mp4v/MP4")


def test_frames_source_equals_pushing():
    frames = bar_frames()
    packets = list(frames_source(((f, i * 1000) for i, f in enumerate(frames)), seed=2))
    assert len(packets) == N - 1
    emu = DvsEmulator((W, H), None, seed=2)
    direct = [emu.push(f, i * 1000) for i, f in enumerate(frames)][1:]
    for a, b in zip(packets, direct):
        assert np.array_equal(a, b)


def test_frames_source_resizes():
    packets = list(frames_source(((f, i * 1000) for i, f in enumerate(bar_frames())),
                                 sensor_size=(32, 24)))
    ev = np.concatenate(packets)
    assert len(ev) and ev["x"].max() < 32 and ev["y"].max() < 24


def test_video_round_trip(tmp_path):
    frames = bar_frames()
    path = write_video(tmp_path, frames)
    packets = list(video_source(path, config={"sigma_threshold": 0.0}, seed=0))
    assert len(packets) == N - 1
    for i, ev in enumerate(packets, start=1):
        assert ev.dtype == EVENT_DTYPE
        t_prev, t = round((i - 1) * 1e6 / FPS), round(i * 1e6 / FPS)
        assert np.all((ev["t"] > t_prev) & (ev["t"] <= t))
        # the bar moved right by 2 px: ON at its leading edge, OFF at its trailing edge
        on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
        lead, trail = 5 + 2 * i + 9, 5 + 2 * (i - 1)
        assert abs(np.median(on["x"]) - (lead - 0.5)) <= 2
        assert abs(np.median(off["x"]) - (trail + 0.5)) <= 2
    # fps override and resizing
    half = list(video_source(path, sensor_size=(32, 24), fps=50.0, max_frames=5))
    assert len(half) == 4 and np.concatenate(half)["t"].max() <= 80_000
    assert np.concatenate(half)["x"].max() < 32


def test_video_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        video_source(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="OpenCV cannot decode it as a video"):
        video_source(junk)  # at call time (emulator.md), not when first iterated


class FakeCapture:
    def __init__(self, frames):
        self.frames = list(frames)
        self.released = False

    def isOpened(self):
        return True

    def read(self):
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def release(self):
        self.released = True


def test_camera_source_with_injected_capture():
    ticks = iter([0, 10_000_000, 10_000_000, 30_000_000] + [40_000_000 + k for k in range(100)])
    cap = FakeCapture(bar_frames(6))
    packets = list(camera_source(capture=cap, clock=lambda: next(ticks), seed=1))
    assert cap.released and len(packets) == 5
    # frame times 0, 10000, 10001 (clock did not move), 30000 µs
    assert packets[0]["t"].max() <= 10_000 and packets[1]["t"].min() == 10_001
    assert packets[2]["t"].min() > 10_001 and packets[2]["t"].max() <= 30_000


def test_camera_source_unavailable():
    class Closed(FakeCapture):
        def isOpened(self):
            return False
    with pytest.raises(RuntimeError, match="cannot open camera"):
        camera_source(3, capture=Closed([]))


def test_bad_videos_and_camera_uris_on_the_command_line(tmp_path):
    """`record video:...` of a file that is not a video, of a video with no frames or only
    one (events need two), is a data error naming the file (exit 3); `camera:abc` a config
    error naming the URI (exit 4); one line each, no recording left behind."""
    import io

    from eventpipe.cli import main

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), out=out, err=err), err.getvalue()

    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all")
    videos = {"empty": 0, "one": 1}
    for name, n in videos.items():
        w = cv2.VideoWriter(str(tmp_path / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                            (W, H))
        for f in bar_frames(n):
            w.write(f)
        w.release()
    for src, words in ((junk, "cannot decode it as a video"),
                       (tmp_path / "empty.avi", "no frames"),
                       (tmp_path / "one.avi", "1 frame")):
        out = tmp_path / f"{src.stem}.h5"
        rc, err = cli("record", f"video:{src}", str(out))
        assert rc == 3 and err.count("\n") == 1, err
        assert str(src) in err and words in err, err
    rc, err = cli("record", "camera:abc", str(tmp_path / "cam.h5"))
    assert rc == 4 and err.count("\n") == 1 and "camera:abc" in err and "index" in err, err
    assert not (tmp_path / "cam.h5").exists() and not (tmp_path / "junk.h5").exists()
