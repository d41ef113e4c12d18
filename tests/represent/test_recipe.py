"""The InputRecipe value: validation (typed errors naming the field), derived values,
overrides, and its plain-data form (round trip, versions, unknown fields)."""

import dataclasses
import json

import pytest

from eventpipe.errors import ConfigError
from eventpipe.represent import RECIPE_VERSION, InputRecipe, RecipeError

FULL = InputRecipe(size=(48, 32), window_us=40_000, stride_us=20_000, channels="polarity",
                   policy="crop", roi=(2, 3, 200, 150), flip_x=True, flip_y=False,
                   clip_count=7, pooling="mean", normalisation="clip:2.5")


@pytest.mark.parametrize("field, value, words", [
    ("size", (48,), "expected 2 integers"),
    ("size", (48, 0), "size[1]"),
    ("size", "48x32", "expected 2 integers"),
    ("size", (48.5, 32), "expected an integer"),
    ("window_us", 0, "must be >= 1"),
    ("window_us", -5, "must be >= 1"),
    ("window_us", "10ms", "expected an integer"),
    ("window_us", True, "expected an integer"),
    ("stride_us", 0, "must be >= 1"),
    ("channels", "rgb", "polarity, halves"),
    ("policy", "stretch", "pad, crop"),
    ("roi", (0, 0, 10), "expected 4 integers"),
    ("roi", (0, 0, 0, 10), "w, h >= 1"),
    ("roi", (-1, 0, 10, 10), "roi[0]"),
    ("flip_x", "yes", "true or false"),
    ("flip_y", 1, "true or false"),
    ("clip_count", 0, "in 1..32767"),
    ("clip_count", 40_000, "in 1..32767"),
    ("pooling", "max", "sum, mean"),
    ("normalisation", "log", "counts, binary, log1p, qlog1p:N, clip:N"),
    ("normalisation", "clip:", "clip:N needs a number"),
    ("normalisation", "clip:-1", "clip:N needs a number"),
    ("normalisation", "clip:nan", "clip:N needs a number"),
    ("normalisation", 3, "expected a string"),
])
def test_bad_field_is_a_typed_error_naming_it(field, value, words):
    with pytest.raises(RecipeError) as ei:
        InputRecipe(**{field: value})
    e = ei.value
    assert isinstance(e, ConfigError) and isinstance(e, ValueError)
    assert e.field.startswith(field)
    assert f"field {e.field!r}" in str(e) and words in str(e)


def test_halves_needs_an_even_window_and_a_stride_of_the_window_or_half_of_it():
    with pytest.raises(RecipeError, match="'window_us'.*even window"):
        InputRecipe(window_us=40_001, channels="halves")
    for bad in (10_000, 30_000, 60_000):
        with pytest.raises(RecipeError, match=r"'stride_us'.*stride_us == window_us \(40000\) or half "
                                              r"of it \(20000\), got " + str(bad)):
            InputRecipe(window_us=40_000, stride_us=bad, channels="halves")
    r = InputRecipe(window_us=40_000, stride_us=40_000, channels="halves")
    assert r.stride == 40_000 and not r.overlapping_halves
    o = InputRecipe(window_us=40_000, stride_us=20_000, channels="halves")
    assert o.stride == 20_000 and o.overlapping_halves
    # slices (half windows) that n windows need, and back
    assert [r.slices(n) for n in (0, 1, 3)] == [0, 2, 6] and r.windows_of(7) == 3
    assert [o.slices(n) for n in (0, 1, 3)] == [0, 2, 4] and [o.windows_of(k) for k in (0, 1, 4)] == [0, 0, 3]
    p = InputRecipe(window_us=40_000, stride_us=20_000)
    assert not p.overlapping_halves and p.slices(3) == 3 and p.windows_of(3) == 3


def test_derived_values():
    r = InputRecipe(window_us=40_000, channels="halves")
    assert (r.stride, r.bins_per_window, r.bin_us, r.count_ceiling) == (40_000, 2, 20_000, 32767)
    assert r.channel_names == ["first_half", "second_half"]
    p = InputRecipe(window_us=40_000, stride_us=10_000, clip_count=9)
    assert (p.stride, p.bins_per_window, p.bin_us, p.count_ceiling) == (10_000, 1, 40_000, 9)
    assert p.channel_names == ["OFF", "ON"]


def test_values_are_canonical_and_frozen():
    r = InputRecipe(size=[48, 32], roi=[2, 3, 20, 10], window_us=40_000.0)
    assert r.size == (48, 32) and r.roi == (2, 3, 20, 10) and type(r.window_us) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.window_us = 5


def test_replace_skips_none_and_validates():
    r = FULL.replace(size=None, window_us=None, normalisation="binary", flip_y=True)
    assert r.size == FULL.size and r.window_us == FULL.window_us
    assert r.normalisation == "binary" and r.flip_y is True
    with pytest.raises(RecipeError, match="'policy'"):
        FULL.replace(policy="zoom")
    with pytest.raises(RecipeError, match="'windw_us'.*did you mean 'window_us'"):
        FULL.replace(windw_us=5)


def test_round_trip_through_plain_data():
    d = FULL.to_dict()
    assert d["recipe_version"] == RECIPE_VERSION == 2
    assert d["size"] == [48, 32] and d["roi"] == [2, 3, 200, 150]
    again = InputRecipe.from_dict(json.loads(json.dumps(d)))
    assert again == FULL
    default = InputRecipe()
    assert InputRecipe.from_dict(default.to_dict()) == default
    # missing fields keep the defaults
    assert InputRecipe.from_dict({"recipe_version": 2, "window_us": 7}) == InputRecipe(window_us=7)


@pytest.mark.parametrize("d, field, words", [
    ({"window_us": 5}, "recipe_version", "missing"),
    ({"recipe_version": 3}, "recipe_version", "newer eventpipe"),
    ({"recipe_version": "2"}, "recipe_version", "not readable"),
    ({"recipe_version": 2, "frame_norm": "log1p"}, "frame_norm", "unknown field"),
    ({"recipe_version": 2, "windw_us": 5}, "windw_us", "did you mean 'window_us'"),
    ({"recipe_version": 2, "normalisation": "log"}, "normalisation", "unknown value 'log'"),
    ([1, 2], "recipe", "expected a table"),
])
def test_bad_stored_recipe_names_the_field_and_the_source(d, field, words):
    with pytest.raises(RecipeError) as ei:
        InputRecipe.from_dict(d, source="m.pt")
    assert ei.value.field == field and words in str(ei.value)
    assert str(ei.value).startswith("m.pt: input recipe field")


def test_training_config_with_a_bad_recipe_value_names_the_key(tmp_path):
    from eventpipe.training.config import load_train_config

    with pytest.raises(ConfigError, match=r"^data\.representation: unknown value 'log2'"):
        load_train_config(None, ["data.representation='log2'"])
    with pytest.raises(ConfigError, match=r"^data\.input_size\[1\]: must be >= 1, got 0"):
        load_train_config(None, ["data.input_size=[64, 0]"])
    with pytest.raises(ConfigError, match=r"^aux_data\.stride_us: channels='halves'"):
        load_train_config(None, ["aux_data={ channels = \"halves\", stride_us = 30000 }"])
    cfg = load_train_config(None, ["data.representation='log'"])   # the old spelling
    from eventpipe.training.config import data_recipe

    assert data_recipe(cfg.data).normalisation == "log1p"


def test_the_room_imports_no_runtime_training_or_io():
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys, eventpipe.represent as r; assert all(hasattr(r, n) for n in r.__all__); "
            "print(sorted(m for m in sys.modules if m.startswith(('eventpipe.training', "
            "'eventpipe.runtime', 'eventpipe.sources', 'eventpipe.sinks', 'eventpipe.io', 'snn'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"
