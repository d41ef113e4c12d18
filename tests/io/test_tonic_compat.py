"""What docs/io.md says about tonic: which of its transforms take our arrays as they are,
which do not, and that ``to_tonic`` gives the array all of them take.

Truth: tonic itself, on an array in the dtype of tonic's own datasets
(``tonic.datasets.NMNIST.dtype``) built here independently of ``to_tonic``; and for the
representations, our kernels (documented to follow tonic).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import tonic.datasets
    import tonic.transforms as T

from eventpipe.events import EVENT_DTYPE, as_events, to_tonic
from eventpipe.kernels import denoise, to_frames, to_timesurface, to_voxel_grid
from tests.conftest import expected_events

S = (34, 34, 2)

# the transforms docs/io.md lists as taking our arrays unchanged
UNCHANGED = {
    "ToFrame": lambda: T.ToFrame(S, n_time_bins=3),
    "ToTimesurface": lambda: T.ToTimesurface(S, dt=50_000, tau=5000),
    "ToImage": lambda: T.ToImage(S),
    "Denoise": lambda: T.Denoise(10_000),
    "RefractoryPeriod": lambda: T.RefractoryPeriod(1000),
    "DropEvent": lambda: T.DropEvent(0.5),
    "DropEventByTime": lambda: T.DropEventByTime(),
    "DropEventByArea": lambda: T.DropEventByArea(S),
    "DropPixel": lambda: T.DropPixel([(1, 1), (20, 20)]),
    "Decimation": lambda: T.Decimation(2),
    "CenterCrop": lambda: T.CenterCrop(S, (20, 20)),
    "RandomCrop": lambda: T.RandomCrop(S, (20, 20)),
    "Downsample": lambda: T.Downsample(spatial_factor=0.5),
    "TimeJitter": lambda: T.TimeJitter(100),
    "TimeSkew": lambda: T.TimeSkew(1.1),
    "TimeAlignment": lambda: T.TimeAlignment(),
    "CropTime": lambda: T.CropTime(0, 100_000),
    "UniformNoise": lambda: T.UniformNoise(S, 100),
    "RandomFlipLR": lambda: T.RandomFlipLR(S, 1.0),
    "RandomFlipUD": lambda: T.RandomFlipUD(S, 1.0),
    "RandomFlipPolarity": lambda: T.RandomFlipPolarity(1.0),
    "MergePolarities": lambda: T.MergePolarities(),
    "NumpyAsType": lambda: T.NumpyAsType(int),
}
# ... and the ones it lists as needing to_tonic
NEEDS_TO_TONIC = {
    "ToVoxelGrid": lambda: T.ToVoxelGrid(S, 3),
    "ToAveragedTimesurface": lambda: T.ToAveragedTimesurface(S),
    "SpatialJitter": lambda: T.SpatialJitter(S, 1, 1),
}


@pytest.fixture(scope="module")
def ev() -> np.ndarray:
    return expected_events("sample_nmnist.bin")


def tonic_native(ev: np.ndarray) -> np.ndarray:
    """The events as tonic's own NMNIST dataset holds them (built without to_tonic)."""
    dt = tonic.datasets.NMNIST.dtype
    return np.rec.fromarrays([ev[f].astype(dt[f]) for f in dt.names], dtype=dt).view(np.ndarray)


def apply(make, events: np.ndarray):
    np.random.seed(0)  # the random transforms draw from NumPy's global generator
    out = make()(events)
    if out.dtype.names:  # events: compare the values, whatever the dtype
        return np.stack([out[f].astype(np.int64) for f in "xytp"])
    return out


def test_to_tonic_is_tonics_dataset_dtype(ev):
    t = to_tonic(ev)
    assert t.dtype == tonic.datasets.NMNIST.dtype
    assert np.array_equal(t, tonic_native(ev))
    t["p"][:] = -1  # a copy: tonic writing into it leaves ours alone
    assert ev.dtype == EVENT_DTYPE and set(np.unique(ev["p"])) == {0, 1}
    assert np.array_equal(as_events(to_tonic(ev)), ev)


@pytest.mark.parametrize("name", sorted(UNCHANGED))
def test_transform_takes_our_arrays_unchanged(ev, name):
    ours = ev.copy()
    got = apply(UNCHANGED[name], ours)
    want = apply(UNCHANGED[name], tonic_native(ev))
    assert np.array_equal(got, want)
    assert np.array_equal(ours, ev)  # not mutated


@pytest.mark.parametrize("name", sorted(NEEDS_TO_TONIC))
def test_transform_needs_to_tonic(ev, name):
    want = apply(NEEDS_TO_TONIC[name], tonic_native(ev))
    assert np.array_equal(apply(NEEDS_TO_TONIC[name], to_tonic(ev)), want)
    try:  # on our array as it is: an error, or a different (wrong) answer
        got = apply(NEEDS_TO_TONIC[name], ev.copy())
    except (OverflowError, ValueError):
        return
    assert got.shape != want.shape or not np.array_equal(got, want)


def test_tonic_representations_on_to_tonic_equal_our_kernels(ev):
    """Independent check that to_tonic's values mean what ours mean."""
    t = to_tonic(ev)
    np.testing.assert_array_equal(T.ToFrame(S, time_window=10_000)(t.copy()),
                                  to_frames(ev, S, time_window=10_000))
    vox = T.ToVoxelGrid(S, 5)(t.copy())
    np.testing.assert_allclose(vox, to_voxel_grid(ev, S, 5, dtype=np.float64), atol=1e-12)
    np.testing.assert_allclose(T.ToTimesurface(S, dt=50_000, tau=5000)(t.copy()),
                               to_timesurface(ev, S, 50_000, 5000.0, dtype=np.float64),
                               atol=1e-12)
    kept = T.Denoise(10_000)(t.copy())
    assert np.array_equal(as_events(kept), denoise(ev, 10_000).events)
