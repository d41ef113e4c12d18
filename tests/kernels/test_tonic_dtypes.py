"""The kernels read tonic's event arrays as they are (no conversion to ``EVENT_DTYPE``).

Truth: tonic's own ``to_frame_numpy`` on the same tonic-dtype array, and our kernels on
the contract array holding the same events; both must agree exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from tonic.functional import to_frame_numpy

import eventpipe.kernels._common as common
from eventpipe.events import make_events
from eventpipe.kernels import to_frames, to_timesurface, to_voxel_grid
from tests.conftest import expected_events, expected_meta

TONIC_STRUCT = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])  # tonic.io
# (x/y, t, p): tonic's struct, tonic's datasets' int arrays, a -1/1 polarity, float times
DTYPES = {
    "tonic-struct": TONIC_STRUCT,
    "int64-p01": np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")]),
    "int16-p-1+1-float-t": np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "i1"), ("t", "<f8")]),
}


def in_dtype(ev: np.ndarray, dt: np.dtype) -> np.ndarray:
    out = np.empty(len(ev), dt)
    for f in "xyt":
        out[f] = ev[f]
    out["p"] = np.where(ev["p"] > 0, 1, -1) if dt["p"] == np.dtype("i1") else ev["p"]
    return out


@pytest.fixture
def no_conversion(monkeypatch):
    """Fail if a kernel converts its input to EVENT_DTYPE."""
    def refuse(arr):
        raise AssertionError(f"converted an array of dtype {np.asarray(arr).dtype}")
    monkeypatch.setattr(common, "as_events", refuse)


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_frames_from_tonic_dtypes_equal_tonic_and_contract(name, no_conversion):
    ev = expected_events("dvs.es")[:200_000]
    wh = tuple(expected_meta("dvs.es")["sensor_size_wh"])
    theirs = in_dtype(ev, DTYPES[name])
    before = theirs.copy()
    ours = to_frames(ev, wh, time_window=20_000)
    for threads in (1, 2):
        got = to_frames(theirs, wh, time_window=20_000, threads=threads)
        np.testing.assert_array_equal(got, ours)
    np.testing.assert_array_equal(to_frames(theirs, wh, event_count=5000),
                                  to_frames(ev, wh, event_count=5000))
    if name != "int16-p-1+1-float-t":  # tonic takes p = -1 as channel -1 = ON
        np.testing.assert_array_equal(ours, to_frame_numpy(theirs, (*wh, 2), time_window=20_000))
    np.testing.assert_array_equal(theirs, before)  # never mutated


def test_voxel_and_timesurface_from_tonic_struct(no_conversion):
    ev = expected_events("dvs.es")[:100_000]
    wh = tuple(expected_meta("dvs.es")["sensor_size_wh"])
    theirs = in_dtype(ev, TONIC_STRUCT)
    np.testing.assert_array_equal(to_voxel_grid(theirs, wh, 8), to_voxel_grid(ev, wh, 8))
    np.testing.assert_array_equal(to_timesurface(theirs, wh, 50_000, 5000.0),
                                  to_timesurface(ev, wh, 50_000, 5000.0))


def test_negative_coordinates_are_out_of_bounds_not_wrapped(no_conversion):
    """A signed coordinate below zero is dropped and counted (a negative index would
    otherwise land on the other side of the frame)."""
    ev = make_events([0, 1, 2, 3], [0, 1, 1, 2], [0, 10, 20, 30], [1, 0, 1, 1])
    theirs = in_dtype(ev, TONIC_STRUCT)
    theirs["x"][1] = -1
    theirs["y"][2] = -3
    kept = ev[[0, 3]]
    for kw in (dict(time_window=100), dict(event_count=2), dict(time_window=100, overlap=50)):
        got, stats = to_frames(theirs, (4, 3), return_stats=True, **kw)
        want = to_frames(kept, (4, 3), start_time=0, **kw) if "time_window" in kw else \
            to_frames(kept, (4, 3), **kw)
        np.testing.assert_array_equal(got, want)
        assert stats.out_of_bounds == 2
    vox, stats = to_voxel_grid(theirs, (4, 3), 2, return_stats=True)
    assert stats.out_of_bounds == 2 and vox[:, 0, 0, 3].sum() == 0


def test_other_dtypes_are_converted_with_range_checks():
    ev = np.zeros(3, [("x", "<f4"), ("y", "<f4"), ("t", "<i8"), ("p", "<i8")])
    ev["x"] = [0, 1, 2]
    np.testing.assert_array_equal(to_frames(ev, (3, 1), event_count=3).sum(axis=(0, 1, 2)),
                                  [1, 1, 1])
    big = np.zeros(1, [("x", ">i2"), ("y", ">i2"), ("t", ">i8"), ("p", ">i8")])  # big-endian
    big["p"] = 2
    with pytest.raises(ValueError, match="'p'"):
        to_frames(big, (3, 1), event_count=1)
