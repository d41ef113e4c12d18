"""Property: for any recipe, sensor and events, the three routes the recipe is applied by
(events, sensor counts, a live stream cut into arbitrary packets) give the same counts, and
the counts saturate at the ceiling."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.events import make_events
from eventpipe.represent import InputRecipe, StreamingInput, model_counts, sensor_counts, spatial_map


@st.composite
def cases(draw):
    W, H = draw(st.integers(1, 23)), draw(st.integers(1, 17))
    size = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    channels = draw(st.sampled_from(["polarity", "halves"]))
    window = 2 * draw(st.integers(1, 50))
    stride = (draw(st.sampled_from([None, window, window // 2])) if channels == "halves"
              else draw(st.one_of(st.none(), st.integers(1, 120))))
    roi = None
    if draw(st.booleans()):
        x0, y0 = draw(st.integers(0, W - 1)), draw(st.integers(0, H - 1))
        roi = (x0, y0, draw(st.integers(1, W - x0)), draw(st.integers(1, H - y0)))
    r = InputRecipe(size=size, window_us=window, stride_us=stride, channels=channels,
                    policy=draw(st.sampled_from(["pad", "crop"])), roi=roi,
                    flip_x=draw(st.booleans()), flip_y=draw(st.booleans()),
                    clip_count=draw(st.sampled_from([1, 2, 5, 255, 1000])))
    n = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 600, n))
    t[0] = 0
    ev = make_events(rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, 2, n))
    cuts = np.sort(rng.integers(0, n, draw(st.integers(0, 6))))
    return r, (W, H), ev, cuts


@settings(max_examples=120, deadline=None, derandomize=True)
@given(cases())
def test_events_counts_and_stream_routes_agree(case):
    r, sensor, ev, cuts = case
    a = model_counts(r, ev, sensor)
    n = len(a)
    b = model_counts(r, sensor_counts(r, ev, sensor, t0=0, n_windows=n), sensor)
    assert np.array_equal(a, b)
    assert a.shape == (n, 2, r.size[1], r.size[0])
    assert int(a.max(initial=0)) <= r.count_ceiling
    # a live stream's windows start at its first event that the map keeps, and only kept
    # events move its clock: compare with the events route anchored there
    kept = spatial_map(r, sensor).apply(ev).events
    s = StreamingInput(r, sensor)
    got = [s.push(p)[0] for p in np.split(ev, cuts)] + [s.flush()[0]]
    got = np.concatenate(got)
    if len(kept) == 0:
        assert len(got) == 0
        return
    want = model_counts(r, ev, sensor, t0=int(kept["t"][0]))
    m = min(len(got), len(want))
    assert len(got) >= 1               # at least the flushed partial window
    assert np.array_equal(got[:m].astype(np.int64), want[:m].astype(np.int64))
    if r.stride >= r.window_us:      # what the stream did not close saw no kept event
        assert not want[m:].any()
