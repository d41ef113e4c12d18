"""Voxel grid and time surface against tonic on the real recordings."""

from __future__ import annotations

import numpy as np
import pytest
from tonic.functional import to_timesurface_numpy as tonic_ts
from tonic.functional import to_voxel_grid_numpy as tonic_voxel

from eventpipe.events import empty_events, make_events
from eventpipe.kernels import to_timesurface, to_timesurface_numpy, to_voxel_grid, to_voxel_grid_numpy
from tests.kernels._util import real, to_tonic

NAMES = ["sample.aedat4", "sample_nmnist.bin", "sample_ncars.dat", "evt3_sample.raw"]


@pytest.mark.parametrize("name", NAMES)
def test_voxel_grid_matches_tonic(name):
    ev, wh = real(name)
    theirs = tonic_voxel(to_tonic(ev), (*wh, 2), 8)
    ours = to_voxel_grid(ev, wh, 8, dtype=np.float64)
    assert ours.shape == theirs.shape == (8, 1, wh[1], wh[0])
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    np.testing.assert_allclose(to_voxel_grid(ev, wh, 8), theirs, atol=1e-3)  # float32 default
    np.testing.assert_allclose(to_voxel_grid_numpy(ev, wh, 8), theirs, atol=1e-9)


def test_voxel_grid_uint8_polarity_and_no_mutation():
    ev, wh = real("sample_nmnist.bin")
    before = ev["p"].copy()
    ours = to_voxel_grid(ev, wh, 4, dtype=np.float64)
    np.testing.assert_array_equal(ev["p"], before)
    with pytest.raises(OverflowError):  # tonic's p[p == 0] = -1 fails on uint8 (NumPy 2)
        tonic_voxel(ev.copy(), (*wh, 2), 4)
    assert ours.max() > 0 > ours.min()
    theirs_input = to_tonic(ev)
    tonic_voxel(theirs_input, (*wh, 2), 4)
    assert (theirs_input["p"] == -1).any()  # ...and mutates an int input in place


def test_voxel_grid_single_timestamp_and_empty():
    ev = make_events([0, 1], [0, 0], [5, 5], [1, 0])
    g = to_voxel_grid(ev, (2, 1), 3)
    assert g[0, 0, 0, 0] == 1 and g[0, 0, 0, 1] == -1 and np.isfinite(g).all()
    assert not to_voxel_grid(empty_events(), (2, 1), 3).any()


@pytest.mark.parametrize("name", NAMES)
def test_timesurface_matches_tonic(name):
    ev, wh = real(name)
    d = int(ev["t"][-1] - ev["t"][0])
    dt, tau = d // 12 + 1, d / 40 + 1
    theirs = tonic_ts(to_tonic(ev), (*wh, 2), dt, tau)
    ours = to_timesurface(ev, wh, dt, tau, dtype=np.float64)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(to_timesurface_numpy(ev, wh, dt, tau), theirs, rtol=1e-12)
    f32 = to_timesurface(ev, wh, dt, tau)
    assert f32.dtype == np.float32 and f32.flags.c_contiguous
    np.testing.assert_allclose(f32, theirs, rtol=1e-5, atol=1e-30)


def test_timesurface_empty_and_oob():
    assert to_timesurface(empty_events(), (3, 3), 10, 5).shape == (0, 2, 3, 3)
    ev = make_events([0, 9, 1], [0, 0, 0], [0, 5, 10], [1, 1, 0])
    s, st = to_timesurface(ev, (3, 3), 10, 5.0, include_incomplete=True, return_stats=True)
    assert st.out_of_bounds == 1 and s.shape == (2, 2, 3, 3)
