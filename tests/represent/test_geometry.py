"""Hand-worked small cases: pad/crop placement, flips, ROI, saturation, halves, overlap and
the normalisations (the binary threshold included), each through all three routes the
recipe is applied by (events, sensor counts, a live stream)."""

import numpy as np
import pytest
import torch

from eventpipe.events import make_events
from eventpipe.represent import (
    InputRecipe,
    RecipeError,
    StreamingInput,
    apply,
    count_scale,
    model_counts,
    normalise,
    sensor_counts,
    spatial_map,
)

# a 6x4 (W x H) sensor: two events at (0,0)+(1,0), (5,3)+(4,2), and two at (3,1); all ON
XY = [(0, 0), (1, 0), (5, 3), (4, 2), (3, 1), (3, 1)]


def events(xy=XY, t=None, p=None):
    n = len(xy)
    t = list(range(n)) if t is None else t
    return make_events([a for a, _ in xy], [b for _, b in xy], t, [1] * n if p is None else p)


def routes(recipe, ev, sensor, t0=0, n=1):
    """Model counts by events, by sensor counts and by a live stream (one event per packet);
    asserts they agree and returns them."""
    a = model_counts(recipe, ev, sensor, t0=t0, n_windows=n)
    b = model_counts(recipe, sensor_counts(recipe, ev, sensor, t0=t0, n_windows=n), sensor)
    stream = StreamingInput(recipe, sensor)
    got, ends = [], []
    for k in range(len(ev)):
        c, e = stream.push(ev[k:k + 1])
        got += list(c)
        ends += e
    c, e = stream.flush()
    got += list(c)
    ends += e
    assert a.dtype == b.dtype and np.array_equal(a, b)
    if int(ev["t"][0]) == t0:
        assert np.array_equal(np.stack(got[:n]).astype(a.dtype), a), (np.stack(got[:n]), a)
    return a


def on(counts):
    return counts[0, 1].tolist()


def test_pad_fits_the_pooled_sensor_centred_with_a_zero_border():
    r = InputRecipe(size=(4, 4), window_us=100, policy="pad")
    m = spatial_map(r, (6, 4))
    assert (m.pool_factor, m.pooled_size, m.offset) == (2, (3, 2), (0, 1))
    assert on(routes(r, events(), (6, 4))) == [[0, 0, 0, 0],
                                             [2, 2, 0, 0],
                                             [0, 0, 2, 0],
                                             [0, 0, 0, 0]]


def test_crop_covers_the_output_and_counts_what_falls_off():
    r = InputRecipe(size=(2, 2), window_us=100, policy="crop")
    m = spatial_map(r, (6, 4))
    assert (m.pool_factor, m.pooled_size, m.offset) == (2, (3, 2), (-1, 0))
    assert on(routes(r, events(), (6, 4))) == [[2, 0],
                                             [0, 2]]
    s = StreamingInput(r, (6, 4))
    s.push(events())
    assert s.out_of_bounds == 2           # (0,0) and (1,0) pool to the cropped column


def test_flips_mirror_within_the_sensor_before_pooling():
    fx = InputRecipe(size=(4, 4), window_us=100, flip_x=True)
    assert on(routes(fx, events(), (6, 4))) == [[0, 0, 0, 0],
                                              [0, 2, 2, 0],
                                              [2, 0, 0, 0],
                                              [0, 0, 0, 0]]
    fy = InputRecipe(size=(4, 4), window_us=100, flip_y=True)
    assert on(routes(fy, events(), (6, 4))) == [[0, 0, 0, 0],
                                              [0, 0, 2, 0],
                                              [2, 2, 0, 0],
                                              [0, 0, 0, 0]]


def test_roi_is_cut_from_the_sensor_first():
    r = InputRecipe(size=(2, 2), window_us=100, roi=(2, 0, 4, 4))
    assert spatial_map(r, (6, 4)).pool_factor == 2
    assert on(routes(r, events(), (6, 4))) == [[2, 0],
                                             [0, 2]]
    with pytest.raises(RecipeError, match="'roi'.*does not fit the sensor"):
        spatial_map(r, (5, 4))


def test_a_small_sensor_is_padded_not_stretched():
    r = InputRecipe(size=(7, 4), window_us=100)
    m = spatial_map(r, (3, 2))
    assert (m.pool_factor, m.offset) == (1, (2, 1))
    got = on(routes(r, events([(0, 0), (2, 1)]), (3, 2)))
    want = np.zeros((4, 7), int)
    want[1, 2] = want[2, 4] = 1
    assert got == want.tolist()


def test_binary_is_any_event_in_the_model_pixel():
    """4x4 sensor -> 2x2 input, mean pooling (f=2): one event in a 2x2 cell is 0.25 after the
    mean, and binary makes it 1 (training used to threshold at > 0.25, i.e. 2 events)."""
    ev = events([(0, 0), (3, 0), (2, 1)])          # cell (0,0): 1 event; cell (1,0): 2
    r = InputRecipe(size=(2, 2), window_us=100, pooling="mean", normalisation="binary")
    c = routes(r, ev, (4, 4))
    assert on(c) == [[1, 2], [0, 0]]
    assert count_scale(r, spatial_map(r, (4, 4))) == 0.25
    assert apply(r, ev, (4, 4), t0=0, n_windows=1)[0, 1].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    # the other normalisations of the same counts
    x = {n: apply(r.replace(normalisation=n), ev, (4, 4), t0=0, n_windows=1)[0, 1]
         for n in ("counts", "log1p", "clip:0.3")}
    assert x["counts"].tolist() == [[0.25, 0.5], [0.0, 0.0]]
    torch.testing.assert_close(x["log1p"], torch.log1p(torch.tensor([[0.25, 0.5], [0.0, 0.0]])))
    torch.testing.assert_close(x["clip:0.3"], torch.tensor([[0.25, 0.3], [0.0, 0.0]]))
    s = apply(r.replace(pooling="sum", normalisation="counts"), ev, (4, 4), t0=0, n_windows=1)
    assert s[0, 1].tolist() == [[1.0, 2.0], [0.0, 0.0]]


def test_clip_count_saturates_the_pooled_count():
    ev = events([(0, 0)] * 5 + [(1, 1)] * 2)     # 7 events in one 2x2 cell
    r = InputRecipe(size=(1, 1), window_us=100, clip_count=3)
    assert on(routes(r, ev, (2, 2))) == [[3]]
    assert on(routes(r.replace(clip_count=1000), ev, (2, 2))) == [[7]]
    assert model_counts(r, ev, (2, 2), t0=0, n_windows=1).dtype == np.uint8
    assert model_counts(r.replace(clip_count=1000), ev, (2, 2), t0=0, n_windows=1).dtype == np.int16


def test_halves_are_the_two_halves_of_the_window_polarity_merged():
    ev = make_events([0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [0, 60, 70, 120, 180], [1, 0, 1, 0, 1])
    r = InputRecipe(size=(2, 1), window_us=100, channels="halves", clip_count=255)
    c = routes(r, ev, (2, 1), n=2)
    assert c.tolist() == [[[[1, 0]], [[1, 1]]],      # [0, 50) | [50, 100)
                          [[[0, 1]], [[0, 1]]]]      # [100, 150) | [150, 200)
    # saturation applies to the merged count
    both = make_events([0, 0, 0, 0], [0] * 4, [1, 2, 3, 4], [1, 0, 1, 0])
    assert routes(r.replace(clip_count=3), both, (2, 1))[0, 0].tolist() == [[3, 0]]


def test_halves_at_half_window_stride_pair_each_half_with_the_next():
    # half windows [0, 50) [50, 100) [100, 150) [150, 200): pixel 0 sees 1, 1, 0, 0 events,
    # pixel 1 sees 0, 1, 1, 1 (polarity merged); window k = (half k, half k + 1)
    ev = make_events([0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [0, 60, 70, 120, 180], [1, 0, 1, 0, 1])
    r = InputRecipe(size=(2, 1), window_us=100, stride_us=50, channels="halves", clip_count=255)
    c = routes(r, ev, (2, 1), n=3)
    assert c.tolist() == [[[[1, 0]], [[1, 1]]],      # [0, 50) | [50, 100)
                          [[[1, 1]], [[0, 1]]],      # [50, 100) | [100, 150)
                          [[[0, 1]], [[0, 1]]]]      # [100, 150) | [150, 200)


def test_overlapping_windows_share_events():
    ev = make_events([0, 1, 0], [0, 0, 0], [0, 60, 120], [1, 1, 1])
    r = InputRecipe(size=(2, 1), window_us=100, stride_us=50)
    c = routes(r, ev, (2, 1), n=2)
    assert c[:, 1].tolist() == [[[1, 1]], [[1, 1]]]   # [0, 100) and [50, 150)


def test_normalise_is_batched_and_leaves_its_input_alone():
    r = InputRecipe(size=(2, 1), normalisation="log1p")
    x = torch.ones(3, 4, 2, 1, 2)
    y = normalise(r, x, 0.5)
    assert y.shape == x.shape and torch.equal(x, torch.ones_like(x))
    torch.testing.assert_close(y, torch.full_like(x, float(np.log1p(0.5))))
    counts = np.zeros((5, 2, 2, 3, 4), np.uint8)           # batch of 5 clips, 2 windows
    assert model_counts(r.replace(size=(2, 2)), counts, (4, 3)).shape == (5, 2, 2, 2, 2)


def test_counts_of_the_wrong_sensor_size_are_an_error():
    r = InputRecipe(size=(2, 2))
    with pytest.raises(ValueError, match="counts of 4x3"):
        model_counts(r, np.zeros((1, 2, 3, 4), np.uint8), (6, 4))
    with pytest.raises(RecipeError, match="'size'"):
        spatial_map(InputRecipe(), (6, 4))
