"""docs/represent.md, the claims no other test held: the recipe table's defaults and the
training side's spelling (`data_recipe`: pooling `mean` by default, `log` = `log1p`, stride 0 =
none, a bad value names `data.<key>`)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.errors import ConfigError
from eventpipe.events import make_events
from eventpipe.represent import InputRecipe, StreamingInput, apply


def test_recipe_table_defaults():
    r = InputRecipe()
    assert (r.size, r.window_us, r.stride_us, r.channels, r.policy, r.roi) == \
        (None, 50_000, None, "polarity", "pad", None)
    assert (r.flip_x, r.flip_y, r.clip_count, r.pooling, r.normalisation) == \
        (False, False, None, "sum", "counts")


def test_clip_count_none_saturates_at_32767_and_channel_0_is_off():
    """`clip_count` None: 32767, the int16 counters' ceiling; `polarity`: channel 0 = OFF."""
    n = 40_000
    ev = make_events(np.zeros(n + 3), np.zeros(n + 3), np.arange(n + 3) % 1000,
                     np.r_[np.ones(n), np.zeros(3)])
    x = apply(InputRecipe(size=(4, 4), window_us=1000), ev, sensor_size=(4, 4), t0=0,
              n_windows=1)
    assert tuple(x.shape) == (1, 2, 4, 4)
    assert float(x[0, 1, 0, 0]) == 32767.0  # ON, saturated
    assert float(x[0, 0, 0, 0]) == 3.0      # OFF


def test_training_data_recipe_spelling():
    from eventpipe.training.config import load_train_config

    cfg = load_train_config(None, ["data.representation=\"log\"", "data.stride_us=0",
                                   "data.input_size=[48,32]"])
    from eventpipe.training.config import data_recipe

    r = data_recipe(cfg.data)
    assert r.pooling == "mean"  # training's default
    assert r.normalisation == "log1p" and r.stride_us is None and r.size == (48, 32)
    with pytest.raises(ConfigError, match=r"data\.window_us"):
        load_train_config(None, ["data.channels=\"halves\"", "data.window_us=30001"])


def test_apply_starts_at_the_first_event_and_takes_the_complete_windows():
    """"For events, windows start at `t0` (default: the first event) and `n_windows` defaults
    to the complete windows the events span": events at 1000..1260 us in 100 us windows are
    the windows [1000, 1100) and [1100, 1200); [1200, 1300) is not complete."""
    r = InputRecipe(size=(4, 4), window_us=100)
    ev = make_events([0, 1, 2, 3], [0, 1, 2, 3], [1000, 1050, 1150, 1260], [1, 1, 0, 1])
    x = apply(r, ev, (4, 4))
    assert tuple(x.shape) == (2, 2, 4, 4)
    assert x[0, 1].nonzero().tolist() == [[0, 0], [1, 1]]  # ON at (0, 0) and (1, 1)
    assert x[1, 0].nonzero().tolist() == [[2, 2]] and x[1, 1].sum() == 0
    assert (apply(r, ev, (4, 4), t0=950, n_windows=4)[0, 1].nonzero().tolist()
            == [[0, 0]])  # [950, 1050): the event at 1050 is in the next window


def test_streaming_windows_start_at_the_first_kept_event():
    """`StreamingInput`: "Its windows start at the first event the map keeps, and only kept
    events move its clock (events outside the ROI or cropped away close no window)"."""
    r = InputRecipe(size=(2, 2), window_us=100, roi=(0, 0, 2, 2))
    s = StreamingInput(r, (4, 4))
    # two events outside the ROI at 0 and 500 us, then kept ones from 1000 us on
    ev = make_events([3, 3, 0, 1, 0], [3, 3, 0, 1, 1], [0, 500, 1000, 1050, 1150], [1, 1, 1, 1, 0])
    counts, ends = s.push(ev)
    assert ends == [1100]  # not 100, 200, ... from the dropped event at 0
    assert counts[0, 1].tolist() == [[1, 0], [0, 1]] and counts[0, 0].sum() == 0
    outside = make_events([3], [2], [5000], [1])  # far ahead, but outside: no window closes
    assert s.push(outside)[1] == []
    counts, ends = s.flush()
    assert ends == [1200] and counts[0, 0].tolist() == [[0, 0], [1, 0]]
