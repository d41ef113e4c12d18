"""docs/synthetic.md, the claims no other test held: the class table's order, the clip-seed
formula, the stream's default sensor and arguments, and item i being class i % n_classes."""

from __future__ import annotations

import inspect

from eventpipe.synthetic import CLASS_NAMES, SyntheticActionDataset, SyntheticStream, clip_seed
from eventpipe.synthetic.stream import STREAM_CONFIG

TABLE = ["wave_left_hand", "wave_right_hand", "clap", "jump", "circle_clockwise",
         "circle_anticlockwise", "swipe_up", "swipe_down", "swipe_left", "swipe_right", "push",
         "idle"]


def test_class_names_are_the_table_in_order():
    assert list(CLASS_NAMES) == TABLE


def test_clip_seed_formula():
    """`clip_seed(seed, split, index) = ((seed * 2^24 + index) << 1) | split_bit`."""
    for seed, index in [(0, 0), (3, 7), (12345, (1 << 24) - 1)]:
        train, test = clip_seed(seed, "train", index), clip_seed(seed, "test", index)
        assert {train, test} == {(seed * 2**24 + index) << 1, ((seed * 2**24 + index) << 1) | 1}


def test_stream_defaults_and_sensor():
    params = inspect.signature(SyntheticStream).parameters
    defaults = {k: params[k].default for k in ("switch_every_s", "sensor_size", "packet_us",
                                                "fps", "crossfade_s", "duration_s", "config",
                                                "realtime")}
    assert defaults == {"switch_every_s": 3.0, "sensor_size": (128, 128), "packet_us": 10_000,
                        "fps": 200, "crossfade_s": 0.2, "duration_s": None, "config": None,
                        "realtime": False}
    assert (STREAM_CONFIG.refractory_us, STREAM_CONFIG.shot_noise_rate_hz,
            STREAM_CONFIG.leak_rate_hz) == (100, 0.05, 0.02)


def test_dataset_item_i_is_class_i_mod_n():
    ds = SyntheticActionDataset(n_per_class=2, seed=0, sensor_size=(32, 32),
                                duration_us=50_000, classes=("clap", "jump", "idle"))
    assert len(ds) == 6
    assert [ds[i][1] for i in range(6)] == [0, 1, 2, 0, 1, 2]
