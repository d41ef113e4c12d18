"""docs/represent.md, the claims no other test held: the recipe table's defaults and the
training side's spelling (`data_recipe`: pooling `mean` by default, `log` = `log1p`, stride 0 =
none, a bad value names `data.<key>`)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.errors import ConfigError
from eventpipe.events import make_events
from eventpipe.represent import InputRecipe, apply


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
