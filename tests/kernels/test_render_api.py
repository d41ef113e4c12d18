"""Rendering helpers and the public API of eventpipe.kernels."""

from __future__ import annotations

import importlib

import cv2
import numpy as np
import pytest

import eventpipe.kernels as K
from eventpipe.render import frames_to_images, render_events, write_png_sequence, write_video
from tests.kernels._util import real


def test_all_names_exist_and_are_documented():
    mod = importlib.import_module("eventpipe.kernels")
    for name in mod.__all__:
        assert hasattr(mod, name), name
        assert name in mod.__doc__, name
    ns = {}
    exec("from eventpipe.kernels import *", ns)
    assert set(mod.__all__) <= set(ns)


def test_frames_to_images_colours():
    f = np.zeros((2, 2, 3, 4), np.int16)
    f[0, 1, 0, 0] = 5  # ON
    f[0, 0, 1, 1] = 5  # OFF
    im = frames_to_images(f)
    assert im.shape == (2, 3, 4, 3) and im.dtype == np.uint8 and im.flags.c_contiguous
    bg = im[0, 2, 3]
    assert not np.array_equal(im[0, 0, 0], bg) and not np.array_equal(im[0, 1, 1], bg)
    assert im[0, 0, 0, 0] > im[0, 0, 0, 2]  # ON is blue-ish (BGR)
    assert im[0, 1, 1, 2] > im[0, 1, 1, 0]  # OFF is red-ish
    assert (im[1] == bg).all()
    assert frames_to_images(f[:, :1]).shape == (2, 3, 4, 3)
    with pytest.raises(ValueError):
        frames_to_images(np.zeros((2, 3, 4, 4)))


def test_png_sequence_and_video(tmp_path):
    ev, wh = real("sample_nmnist.bin")
    frames = K.to_frames(ev, wh, time_window=50_000)
    ims = frames_to_images(frames)
    paths = write_png_sequence(ims, tmp_path / "png")
    assert len(paths) == len(frames)
    back = cv2.imread(str(paths[0]))
    assert back.shape == (wh[1], wh[0], 3) and np.array_equal(back, ims[0])
    vid = write_video(ims, tmp_path / "v.avi", fps=10)
    assert vid.stat().st_size > 0


@pytest.mark.parametrize("name", ["dvs.es", "evt3_sample.raw"])
def test_render_events_png_streams(tmp_path, name):
    ev, wh = real(name)
    packets = np.array_split(ev, 9)
    n = render_events(iter(packets), wh, tmp_path / "out", window_us=100_000, max_frames=5)
    files = sorted((tmp_path / "out").glob("*.png"))
    assert n == len(files) >= 1
    im = cv2.imread(str(files[0]))
    assert im.shape == (wh[1], wh[0], 3) and im.std() > 0  # non-empty: not a flat image


def test_render_events_mp4(tmp_path):
    ev, wh = real("sample.aedat4")
    out = tmp_path / "rec.mp4"
    n = render_events(ev, wh, out, window_us=50_000)
    assert n == len(K.to_frames(ev, wh, time_window=50_000, include_incomplete=True))
    assert out.stat().st_size > 1000
    cap = cv2.VideoCapture(str(out))
    ok, im = cap.read()
    cap.release()
    assert ok and im.shape == (wh[1], wh[0], 3) and im.std() > 0
