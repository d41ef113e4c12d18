"""Filters (vs tonic where tonic has the filter) and spatial maps."""

from __future__ import annotations

import numpy as np
import pytest
from tonic.functional import denoise_numpy, refractory_period_numpy

from eventpipe.events import make_events
from eventpipe.kernels import (
    FilterResult,
    SpatialMap,
    crop,
    denoise,
    flip_x,
    flip_y,
    pool_events,
    pool_frames,
    refractory_period,
    select_polarity,
    suppress_hot_pixels,
    to_frames,
)
from tests.kernels._util import real, to_tonic


def _same_events(a, b):
    return len(a) == len(b) and all(np.array_equal(a[f], b[f]) for f in "xytp")


@pytest.mark.parametrize("name", ["sample.aedat4", "sample_nmnist.bin", "sample_ncars.dat"])
def test_denoise_matches_tonic(name):
    ev, _ = real(name)
    res = denoise(ev, 3000)
    assert isinstance(res, FilterResult)
    kept, removed = res
    assert _same_events(kept, denoise_numpy(to_tonic(ev), 3000))
    assert removed == len(ev) - len(kept) > 0


@pytest.mark.parametrize("name", ["sample.aedat4", "sample_nmnist.bin"])
def test_refractory_matches_tonic(name):
    ev, _ = real(name)
    kept, removed = refractory_period(ev, 2000)
    assert _same_events(kept, refractory_period_numpy(to_tonic(ev), 2000))
    assert removed > 0


def test_refractory_keeps_first_event_at_t0_unlike_tonic():
    ev, _ = real("sample_ncars.dat")  # starts at t = 0
    kept, _ = refractory_period(ev, 1000)
    theirs = refractory_period_numpy(to_tonic(ev), 1000)
    assert len(kept) == len(theirs) + 1 and kept["t"][0] == 0


def test_hot_pixels_removed_and_counted():
    ev, wh = real("sample.aedat4")
    n = 5000
    hot = make_events(np.full(n, 7), np.full(n, 9), np.linspace(ev["t"][0], ev["t"][-1], n).astype(np.int64),
                      np.ones(n, int))
    both = np.sort(np.concatenate([ev, hot]), order="t", kind="stable")
    res = suppress_hot_pixels(both, wh)
    assert [7, 9] in res.info["hot_pixels"].tolist()
    assert n <= res.n_removed < n + 0.1 * len(ev)
    assert not ((res.events["x"] == 7) & (res.events["y"] == 9)).any()
    ev2, _ = real("evt2_sample.raw")  # one pixel fires 3323 times in 50 ms
    res3 = suppress_hot_pixels(ev2, (640, 480))
    assert 3323 <= res3.n_removed < 0.02 * len(ev2) and len(res3.events) == len(ev2) - res3.n_removed
    res2 = suppress_hot_pixels(both, wh, max_rate_hz=1e9, rel_factor=None)
    assert res2.n_removed == 0


def test_select_polarity():
    ev, _ = real("sample_nmnist.bin")
    on, r = select_polarity(ev, 1)
    off, r2 = select_polarity(ev, 0)
    assert on["p"].all() and not off["p"].any() and r == len(off) and r2 == len(on)


def test_crop_flip_pool_equal_frame_operations():
    ev, (W, H) = real("sample.aedat4")
    frames = to_frames(ev, (W, H), n_time_bins=2, dtype=np.int32)
    c, removed = crop(ev, (10, 20, 100, 50))
    np.testing.assert_array_equal(to_frames(c, (100, 50), n_time_bins=2, dtype=np.int32,
                                            start_time=ev["t"][0]).sum(),
                                  frames[..., 20:70, 10:110].sum())
    assert removed == len(ev) - len(c)
    np.testing.assert_array_equal(to_frames(flip_x(ev, (W, H)), (W, H), n_time_bins=2, dtype=np.int32),
                                  frames[..., ::-1])
    np.testing.assert_array_equal(to_frames(flip_y(ev, (W, H)), (W, H), n_time_bins=2, dtype=np.int32),
                                  frames[..., ::-1, :])
    pooled = to_frames(pool_events(ev, 3), (-(-W // 3), -(-H // 3)), n_time_bins=2, dtype=np.int32)
    np.testing.assert_array_equal(pooled, pool_frames(frames, 3))


@pytest.mark.parametrize("src,dst,policy,factor,pooled", [
    ((346, 260), (128, 128), "pad", 3, (116, 87)),
    ((346, 260), (128, 128), "crop", 2, (173, 130)),
    ((1280, 720), (224, 224), "pad", 6, (214, 120)),
    ((1280, 720), (224, 224), "crop", 3, (427, 240)),
])
def test_resize_policy(src, dst, policy, factor, pooled):
    m = SpatialMap.from_config({"input_size": list(src), "output_size": list(dst), "policy": policy})
    assert m.pool_factor == factor and m.pooled_size == pooled and m.out_size == dst
    assert SpatialMap.from_config(m.to_config()) == m
    rng = np.random.default_rng(0)
    n = 20000
    ev = make_events(rng.integers(0, src[0], n), rng.integers(0, src[1], n), np.arange(n),
                     rng.integers(0, 2, n))
    out, removed = m.apply(ev)
    assert out["x"].max() < dst[0] and out["y"].max() < dst[1]
    if policy == "pad":
        assert removed == 0
        ox, oy = m.offset
        assert out["x"].min() >= ox and out["y"].min() >= oy
    else:
        assert 0 < removed < n
    f = to_frames(out, dst, n_time_bins=1)
    assert f.shape == (1, 2, dst[1], dst[0])


def test_spatial_map_roi_and_flip_on_real_data():
    ev, wh = real("evt3_sample.raw")
    m = SpatialMap(wh, (128, 128), policy="pad", roi=(0, 0, 640, 720), flip_x=True)
    out, removed = m.apply(ev)
    assert removed == np.count_nonzero(ev["x"] >= 640)
    # flip then pool by 6 then pad: x' = (639 - x) // 6 + offset
    keep = ev[ev["x"] < 640]
    np.testing.assert_array_equal(out["x"], (639 - keep["x"].astype(int)) // 6 + m.offset[0])
    with pytest.raises(ValueError):
        SpatialMap.from_config({"input_size": [10, 10], "bogus": 1})
    with pytest.raises(ValueError):
        SpatialMap((10, 10), roi=(5, 5, 10, 10))
