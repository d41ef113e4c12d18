"""`view --out x.gif` wrote a folder named x.gif; now it writes an animated GIF whose frames
are the PNG frames of the same recording, and an unknown suffix is refused up front."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.errors import ExitStatus
from tests.cli.conftest import assert_one_error_line
from tests.conftest import sample_path


def test_gif_holds_the_png_frames(cli, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    cv2 = pytest.importorskip("cv2")
    src = sample_path("sample_ncars.dat")
    res = cli(["view", src, "--out", tmp_path / "x.gif", "--window-us", "20000"])
    assert res.rc == 0 and "wrote 5 frames" in res.out, res
    assert (tmp_path / "x.gif").is_file()
    assert cli(["view", src, "--out", tmp_path / "png", "--window-us", "20000"]).rc == 0
    pngs = sorted((tmp_path / "png").glob("*.png"))
    with Image.open(tmp_path / "x.gif") as gif:
        assert gif.format == "GIF" and gif.size == (78, 42) and gif.n_frames == len(pngs) == 5
        for i, png in enumerate(pngs):
            gif.seek(i)
            got = np.asarray(gif.convert("RGB"))
            want = cv2.imread(str(png))[..., ::-1]  # BGR -> RGB
            # the fixed palette holds every colour a count up to the saturation makes
            assert np.abs(got.astype(int) - want).max() <= 1, i


@pytest.mark.parametrize("name", ["x.png", "frames.jpg", "out.webm"])
def test_unknown_suffix_is_refused_and_nothing_is_made(cli, tmp_path, name):
    res = cli(["view", sample_path("sample_ncars.dat"), "--out", tmp_path / name])
    assert_one_error_line(res, ExitStatus.CONFIG, "unknown extension", ".gif")
    assert not (tmp_path / name).exists()


def test_an_existing_folder_with_a_dot_is_still_a_folder(cli, tmp_path):
    out = tmp_path / "frames.v2"
    out.mkdir()
    res = cli(["view", sample_path("sample_ncars.dat"), "--out", out, "--window-us", "50000"])
    assert res.rc == 0 and len(list(out.glob("*.png"))) == 2, res


def test_gif_is_written_one_frame_at_a_time(tmp_path, monkeypatch):
    """Pillow's save_all keeps every frame in memory; ours holds one: no save_all call, and
    frames from random counts come back within one level of the palette."""
    Image = pytest.importorskip("PIL.Image")
    from eventpipe.render import frames_to_images, write_png_sequence
    from eventpipe.view import write_gif

    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: pytest.fail("save_all used"))
    rng = np.random.default_rng(5)
    ims = frames_to_images(rng.poisson(0.7, (40, 2, 30, 50)).astype(np.int32))
    write_png_sequence(ims, tmp_path / "png")
    assert write_gif(tmp_path / "png", tmp_path / "r.gif", fps=25) == 40
    with Image.open(tmp_path / "r.gif") as gif:
        assert gif.n_frames == 40 and gif.info["duration"] == 40 and gif.info["loop"] == 0
        for i in (0, 17, 39):
            gif.seek(i)
            got = np.asarray(gif.convert("RGB")).astype(int)
            # saturation 3: counts 0..3 are the levels 0, 5, 10, 15 of 15, all in the palette
            assert np.abs(got - ims[i][..., ::-1]).max() <= 1


@pytest.mark.parametrize("name", ["x.gif", "x.mp4"])
def test_a_video_or_gif_in_a_missing_folder_is_refused_like_every_output(cli, tmp_path, name):
    """``--out`` a .gif/.mp4 in a folder that does not exist: one line saying how to make
    it, exit 4, before anything is read (was: the folders made silently, e.g. a typo'd
    ``/tmp/ouput/x.gif`` became a new folder tree)."""
    out = tmp_path / "missing" / "deeper" / name
    res = cli(["view", sample_path("sample_ncars.dat"), "--out", out])
    assert_one_error_line(res, ExitStatus.CONFIG, f"--out {out}",
                          f"does not exist (mkdir -p {tmp_path / 'missing' / 'deeper'} first)")
    assert not (tmp_path / "missing").exists()


def test_a_folder_holding_frames_is_refused_unless_overwrite(cli, tmp_path):
    """A second view into the same PNG folder with fewer frames left the first's past them (100
    frames of 1 ms, then 5 of 20 ms: 5 new and 95 old in one folder, 'wrote 5 frames'): now exit 4
    naming --out and the count before anything is read; --overwrite deletes the old frames (and
    only them) first."""
    src, out = sample_path("sample_ncars.dat"), tmp_path / "frames"
    assert cli(["view", src, "--out", out, "--window-us", "1000"]).rc == 0
    assert len(list(out.glob("*.png"))) == 100
    (out / "notes.txt").write_text("mine")
    res = cli(["view", src, "--out", out, "--window-us", "20000"])
    assert_one_error_line(res, ExitStatus.CONFIG, f"--out {out}: already holds 100 frames",
                          "--overwrite")
    assert len(list(out.glob("*.png"))) == 100
    res = cli(["view", src, "--out", out, "--window-us", "20000", "--overwrite"])
    assert res.rc == 0 and "wrote 5 frames" in res.out, res
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(5)] + ["notes.txt"]


def test_demo_twice_into_one_folder_replaces_its_frames(cli, tmp_path):
    assert cli(["demo", "--out", tmp_path]).rc == 0
    res = cli(["demo", "--out", tmp_path])
    assert res.rc == 0 and "rendered 40 frames" in res.out, res
    assert len(list((tmp_path / "frames").glob("*.png"))) == 40
