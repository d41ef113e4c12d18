"""Streaming filters equal the one-shot filters for any split of a real recording."""

import numpy as np
import pytest

from eventpipe.kernels import StreamingDenoise, StreamingRefractory, denoise, refractory_period
from tests.conftest import expected_events, expected_meta


@pytest.mark.parametrize("name", ["evt2_sample.raw", "dvs.es", "sample.aedat4"])
def test_streaming_filters_equal_one_shot(name):
    ev = expected_events(name)[:150_000]
    size = tuple(expected_meta(name)["sensor_size_wh"])
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.integers(0, len(ev), 40))
    packets = np.split(ev, cuts)

    ref = refractory_period(ev, 1000, sensor_size=size)
    f = StreamingRefractory(size, 1000)
    got = np.concatenate([f(p).events for p in packets])
    assert np.array_equal(got, ref.events) and f.removed == ref.n_removed > 0

    ref = denoise(ev, 5000)
    g = StreamingDenoise(size, 5000)
    got = np.concatenate([g(p).events for p in packets])
    assert np.array_equal(got, ref.events) and g.removed == ref.n_removed > 0
