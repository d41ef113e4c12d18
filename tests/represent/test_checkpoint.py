"""The recipe in checkpoints: version 2 round trip, version 1 files (the shipped model, files
with only ``extra`` + ``input_size``, files with neither), bad stored recipes, and the run
config's overrides on top."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import snn
from eventpipe.represent import InputRecipe, RecipeError, apply, recipe_from_checkpoint
from eventpipe.runtime.config import load_run_config
from eventpipe.runtime.model_loader import DEFAULT_WEIGHTS, load_model, run_recipe
from eventpipe.runtime.preprocess import StreamPrep
from tests.conftest import REPO, expected_events

# The shipped model's runtime input on IMU_translBoxes.aedat (240x180, all 2.07 s, 23
# packets, flushed), computed with the code before eventpipe.represent existed
# (runtime.run.input_recipe + runtime.preprocess.StreamPrep at commit 4c9bfc1).
SHIPPED = dict(
    shape=(41, 2, 64, 64),
    counts_sha256="4ed861ca1450faf7f90e156b18108e5f7fb5eb5e3ba9e7e92e25046c44ea76f3",
    sum=14743.53793349117, sumsq=8159.239459192639, nonzero=50166,
    samples=[((0, 0, 10, 12), 0.1718502640724182), ((5, 0, 44, 38), 0.31845372915267944),
             ((10, 0, 27, 20), 0.4855078160762787), ((15, 0, 17, 34), 0.11778303235769272),
             ((20, 0, 18, 29), 0.11778303235769272), ((25, 0, 34, 17), 0.8109301924705505),
             ((30, 0, 38, 6), 0.0606246218085289), ((35, 1, 14, 49), 0.11778303235769272)])


def stream_frames(recipe, sensor, ev, packets=23):
    prep = StreamPrep(0, sensor, recipe=recipe, timeout_s=None)
    out = []
    for chunk in np.array_split(ev, packets):
        out += prep.push(chunk, 0.0)
    out += prep.flush()
    return out


def test_shipped_model_is_fed_overlapping_halves():
    """Since issue #16 the shipped model reads halves (docs/training.md): the runtime's
    defaults feed its stored recipe, windows of 100 ms every 50 ms."""
    loaded = load_model("default")
    assert run_recipe(load_run_config(None, []), loaded) == InputRecipe(
        size=(64, 64), window_us=100_000, stride_us=50_000, channels="halves", clip_count=255,
        pooling="mean", normalisation="qlog1p:6")   # snapped to the chip's exact grid (docs/chip.md)
    raw = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    assert raw["recipe"]["recipe_version"] == 2 and raw["recipe"]["channels"] == "halves"


def test_the_off_on_recipe_gives_the_same_runtime_input_as_before():
    """The OFF/ON recipe of the model shipped before issue #16 (a version 1 file, in git
    history) still gives the runtime input it was trained on."""
    recipe = InputRecipe(size=(64, 64), window_us=100_000, stride_us=50_000,
                         channels="polarity", clip_count=255, pooling="mean",
                         normalisation="log1p")
    ev = expected_events("IMU_translBoxes.aedat")
    frames = stream_frames(recipe, (240, 180), ev)
    x = torch.stack([f.frame for f in frames]).numpy()
    assert x.shape == SHIPPED["shape"]
    assert [f.t_us - int(ev["t"][0]) for f in frames] == [100_000 + 50_000 * k for k in range(41)]
    counts = stream_frames(recipe.replace(normalisation="counts", pooling="sum"), (240, 180), ev)
    c = torch.stack([f.frame for f in counts]).numpy().astype(np.int16)
    assert hashlib.sha256(c.tobytes()).hexdigest() == SHIPPED["counts_sha256"]
    assert int((x != 0).sum()) == SHIPPED["nonzero"]
    assert float(x.astype(np.float64).sum()) == pytest.approx(SHIPPED["sum"], rel=1e-6)
    assert float((x.astype(np.float64) ** 2).sum()) == pytest.approx(SHIPPED["sumsq"], rel=1e-6)
    for idx, v in SHIPPED["samples"]:
        assert x[idx] == pytest.approx(v, abs=1e-6)


def _v1_file(tmp_path, input_size, extra):
    """A checkpoint as eventpipe wrote them before recipes (no "recipe" key)."""
    m = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1),
                         num_heads=2, num_classes=3, T=2)
    path = tmp_path / "old.pt"
    snn.save_checkpoint(path, m, class_names=["a", "b", "c"], input_size=input_size, extra=extra)
    raw = torch.load(path, weights_only=True)
    del raw["recipe"]
    torch.save(raw, path)
    return path


def test_v1_training_file_reads_input_size_as_h_w(tmp_path):
    """Training wrote input_size (H, W); the runtime used to read it as (W, H).  A 48 wide,
    32 high model now gets 48x32 frames."""
    extra = dict(window_us=40_000, representation="binary", clip_count=300, resize="area",
                 channels="halves", channel_names=["first_half", "second_half"],
                 dataset="hardvs", sensor_size=None, train_config={"data": {"T": 2}})
    path = _v1_file(tmp_path, (32, 48), extra)
    loaded = load_model(str(path))
    assert loaded.recipe == InputRecipe(size=(48, 32), window_us=40_000, channels="halves",
                                        clip_count=255, pooling="mean", normalisation="binary")
    assert loaded.input_size == (48, 32)
    ev = expected_events("IMU_translBoxes.aedat")[:20_000]
    frames = stream_frames(run_recipe(load_run_config(None, []), loaded), (240, 180), ev)
    assert frames and tuple(frames[0].frame.shape) == (2, 32, 48)
    assert set(torch.unique(torch.stack([f.frame for f in frames])).tolist()) == {0.0, 1.0}


def test_v1_file_with_only_extra_and_input_size(tmp_path):
    path = _v1_file(tmp_path, (16, 16), {"window_us": 30_000, "representation": "log"})
    assert load_model(str(path)).recipe == InputRecipe(size=(16, 16), window_us=30_000,
                                                       normalisation="log1p")


def test_v1_file_without_extra_keeps_the_runtime_defaults(tmp_path):
    path = _v1_file(tmp_path, (40, 24), None)       # not from training: (W, H) as before
    r = load_model(str(path)).recipe
    assert r == InputRecipe(size=(40, 24), window_us=50_000, normalisation="counts", pooling="sum")
    assert recipe_from_checkpoint({"input_size": None, "extra": {}}) == InputRecipe()
    assert run_recipe(load_run_config(None, []), load_model(str(path))).size == (40, 24)


def test_v1_file_with_an_unknown_representation_names_it(tmp_path):
    path = _v1_file(tmp_path, (16, 16), {"representation": "voxels"})
    with pytest.raises(RecipeError, match=r"old\.pt \(extra\): input recipe field 'normalisation'.*voxels"):
        load_model(str(path))


def test_a_halves_checkpoint_at_half_window_stride_is_fed_overlapping_halves(tmp_path):
    """A checkpoint whose recipe says ``halves`` every half window: the runtime's defaults feed
    it exactly that (window k = half windows k and k + 1 of merged polarity), on a real
    recording cut into packets."""
    m = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1),
                         num_heads=2, num_classes=3, T=2)
    r = InputRecipe(size=(64, 64), window_us=100_000, stride_us=50_000, channels="halves",
                    clip_count=255, pooling="mean", normalisation="log1p")
    path = tmp_path / "halves.pt"
    snn.save_checkpoint(path, m, class_names=["a", "b", "c"], input_size=r.size, recipe=r.to_dict())
    loaded = load_model(str(path))
    recipe = run_recipe(load_run_config(None, []), loaded)
    assert recipe == r
    ev = expected_events("IMU_translBoxes.aedat")
    frames = stream_frames(recipe, (240, 180), ev)
    t0 = int(ev["t"][0])
    assert [f.t_us - t0 for f in frames][:40] == [100_000 + 50_000 * k for k in range(40)]
    x = torch.stack([f.frame for f in frames]).numpy()
    want = apply(r, ev, (240, 180), t0=t0, n_windows=40).numpy()
    np.testing.assert_allclose(x[:40], want, rtol=0, atol=1e-6)
    assert np.array_equal(x[1:, 0], x[:-1, 1]) and x.sum() > 0   # each half is in two windows
    # by hand: the merged counts of window 3's first half = all events of [150 ms, 200 ms)
    t = ev["t"] - t0
    half = (t >= 150_000) & (t < 200_000)
    scale = (1.0 / 4 ** 2)                                      # 240x180 pooled by 4 into 64x64
    counts = np.expm1(x[3, 0].astype(np.float64)) / scale
    assert counts.sum() == pytest.approx(half.sum(), rel=1e-3)  # no pooled pixel saturates here


def test_v2_round_trip_through_snn_checkpoint(tmp_path):
    r = InputRecipe(size=(48, 32), window_us=40_000, stride_us=20_000, policy="crop",
                    roi=(1, 2, 100, 80), flip_y=True, clip_count=9, pooling="mean",
                    normalisation="clip:3")
    m = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1),
                         num_heads=2, num_classes=2, T=2)
    path = tmp_path / "new.pt"
    snn.save_checkpoint(path, m, class_names=["a", "b"], input_size=r.size, recipe=r.to_dict())
    _, meta = snn.load_checkpoint(path)
    assert meta["recipe"] == r.to_dict() and meta["input_size"] == [48, 32]
    assert recipe_from_checkpoint(meta) == r
    assert load_model(str(path)).recipe == r
    with pytest.raises(TypeError, match="recipe must be a dict"):
        snn.save_checkpoint(tmp_path / "x.pt", m, recipe=r)


@pytest.mark.parametrize("stored, field", [
    ({"recipe_version": 2, "window_us": -1}, "window_us"),
    ({"recipe_version": 9}, "recipe_version"),
    ({"recipe_version": 2, "flip": True}, "flip"),
])
def test_bad_stored_recipe_is_an_error_naming_file_and_field(tmp_path, stored, field):
    m = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1),
                         num_heads=2, num_classes=2, T=2)
    path = tmp_path / "bad.pt"
    snn.save_checkpoint(path, m, recipe=stored)
    with pytest.raises(RecipeError) as ei:
        load_model(str(path))
    assert ei.value.field == field and str(ei.value).startswith(f"{path}: input recipe field")


def test_run_config_overrides_apply_on_top_of_the_checkpoint_recipe():
    loaded = load_model("default")
    cfg = load_run_config(None, ["input.policy='crop'", "input.flip_x=true",
                                 "window.window_us=20000", "input.frame_norm='binary'",
                                 "input.size=[32, 24]", "input.roi=[0, 0, 100, 50]"])
    with pytest.raises(RecipeError, match=r"'stride_us'.*\(20000\) or half of it \(10000\), got 50000"):
        run_recipe(cfg, loaded)             # the shipped halves stride does not fit a 20 ms window
    cfg = load_run_config(None, ["input.policy='crop'", "input.flip_x=true",
                                 "window.window_us=20000", "input.frame_norm='binary'",
                                 "input.size=[32, 24]", "input.roi=[0, 0, 100, 50]",
                                 "window.stride_us=10000"])
    r = run_recipe(cfg, loaded)
    assert r == InputRecipe(size=(32, 24), window_us=20_000, stride_us=10_000, policy="crop",
                            roi=(0, 0, 100, 50), flip_x=True, clip_count=255, pooling="mean",
                            normalisation="binary", channels="halves")
    bad = load_run_config(None, ["input.channels='halves'", "window.stride_us=30000"])
    with pytest.raises(RecipeError, match=r"run config.*'stride_us'.*stride_us == window_us"):
        run_recipe(bad, loaded)
    bad = load_run_config(None, ["input.frame_norm='log'"])
    with pytest.raises(RecipeError, match="'normalisation'.*unknown value 'log'"):
        run_recipe(bad, loaded)


def test_run_default_toml_keeps_the_checkpoint_recipe():
    cfg = load_run_config(REPO / "configs" / "run_default.toml", [])
    loaded = load_model("default")
    assert run_recipe(cfg, loaded) == loaded.recipe


def test_snn_imports_nothing_from_eventpipe():
    code = "import sys, snn, snn.checkpoint; print(sorted(m for m in sys.modules if m.startswith('eventpipe')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"
