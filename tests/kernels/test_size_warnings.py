"""Size mistakes that used to pass in silence now warn (typed warnings), and only then."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from eventpipe.events import InputSizeWarning, SensorSizeWarning, SizeWarning, make_events
from eventpipe.kernels import to_frames, to_timesurface, to_voxel_grid
from tests.conftest import expected_events, expected_meta


@pytest.fixture(scope="module")
def dvs():
    ev = expected_events("dvs.es")[:50_000]
    return ev, tuple(expected_meta("dvs.es")["sensor_size_wh"])  # 320 x 240


def test_swapped_sensor_size_warns_with_the_numbers(dvs):
    ev, (w, h) = dvs
    n_out = int(np.count_nonzero(ev["x"] >= h))  # x beyond the mistaken width 240
    assert 0.01 * len(ev) < n_out and ev["y"].max() < w
    with pytest.warns(SensorSizeWarning) as rec:
        _, stats = to_frames(ev, (h, w), time_window=10_000, return_stats=True)
    assert stats.out_of_bounds == n_out
    msg = str(rec[0].message)
    assert f"{n_out:,} of {len(ev):,}" in msg and f"({h}, {w})" in msg and f"({w}, {h})" in msg
    assert rec[0].filename == __file__  # points at the caller
    for fn in (lambda: to_voxel_grid(ev, (h, w), 5),
               lambda: to_timesurface(ev, (h, w), 50_000, 5000.0),
               lambda: to_frames(ev, (h, w), event_count=5000)):
        with pytest.warns(SensorSizeWarning):
            fn()
    assert issubclass(SensorSizeWarning, SizeWarning) and issubclass(SizeWarning, UserWarning)


def test_no_warning_when_the_size_is_right_or_the_swap_would_not_fit(dvs):
    ev, (w, h) = dvs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_frames(ev, (w, h), time_window=10_000)  # right
        to_frames(ev, (200, 100), time_window=10_000)  # a crop: swapped does not fit either
        sq = make_events([0, 9, 5], [0, 3, 9], [0, 1, 2], [1, 0, 1])
        to_frames(sq, (8, 8), event_count=3)  # square: swapping changes nothing
        few = make_events(np.arange(200) % 10, np.zeros(200), np.arange(200), np.ones(200))
        few["x"][0] = 12
        to_frames(few, (11, 13), event_count=50)  # 1 of 200 out: < 1%, a stray event
        tiny = make_events(np.arange(15) + 10, np.zeros(15), np.arange(15), np.ones(15))
        to_frames(tiny, (8, 30), event_count=5)  # all 15 out, too few to judge (< 16)
    tiny = make_events(np.arange(16) + 10, np.zeros(16), np.arange(16), np.ones(16))
    with pytest.warns(SensorSizeWarning):
        to_frames(tiny, (8, 30), event_count=4)  # 16 out, all fit in (30, 8)


def test_runtime_warns_when_input_size_differs_from_the_checkpoint(tmp_path):
    """The shipped checkpoint's recipe says 64x64; input.size=[32,32] is a mistake worth a
    word (the model takes any size, its answers are then meaningless)."""
    from eventpipe.cli import main
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.run import build_pipeline

    cfg = load_run_config(None, ["input.size=[32, 32]", "source.uri=synthetic:duration_s=0.1"])
    with pytest.warns(InputSizeWarning, match="32x32 differs from the checkpoint's recipe"):
        pipe = build_pipeline(cfg, io.StringIO())
    pipe.source.close()
    cfg = load_run_config(None, ["input.size=[64, 64]", "source.uri=synthetic:duration_s=0.1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SizeWarning)
        build_pipeline(cfg, io.StringIO()).source.close()
    err = io.StringIO()
    assert main(["run", "--source", "synthetic:duration_s=0.2", "--max-speed", "--quiet",
                 "--set", "input.size=[32, 32]", "--set", "model.threads=1"],
                out=io.StringIO(), err=err) == 0
    assert "eventpipe: warning: input.size 32x32 differs" in err.getvalue()
    # said once, at the start: the model does not say it again at the first frame
    # (snn.frame_size.FrameSizeWarning), and the session runs the size asked for
    assert err.getvalue().count("warning") == 1, err.getvalue()
