"""Training's input is the runtime's input, for every recipe option.

Each case goes the whole way: a training config -> the training dataset's (unaugmented)
item; the same config -> a checkpoint (trainer.save_model) -> the runtime's model loader
-> the run config on top -> the pipeline's per-stream preprocessing over packets.  The
model input is non-square ((W, H) = (48, 32) or (20, 36)) and so are the sensors (real
recordings, 240x180 and 320x240), so a swapped axis anywhere shows."""

import dataclasses

import numpy as np
import pytest
import torch

from eventpipe.represent import apply
from eventpipe.runtime.config import load_run_config
from eventpipe.runtime.model_loader import LoadedModel, load_model, run_recipe
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.training.config import data_recipe, load_train_config
from eventpipe.training.datasets import EventClipDataset, SyntheticFrames
from eventpipe.training.trainer import build_model, save_model
from tests.conftest import expected_events
from tests.training.conftest import tiny_overrides

T = 4
BASE = {"data.input_size": [48, 32], "data.window_us": 40_000, "data.T": T,
        "data.representation": "log1p", "data.clip_count": 255}

OPTIONS = {
    "pad": {},
    "crop": {"data.policy": "crop"},
    "flip_x": {"data.flip_x": True},
    "flip_y": {"data.flip_y": True},
    "flip_xy_crop": {"data.flip_x": True, "data.flip_y": True, "data.policy": "crop"},
    "roi": {"data.roi": [10, 20, 200, 140]},
    "halves": {"data.channels": "halves"},
    "halves_crop_flip": {"data.channels": "halves", "data.policy": "crop", "data.flip_x": True},
    "counts": {"data.representation": "counts"},
    "binary": {"data.representation": "binary"},
    "clip_norm": {"data.representation": "clip:1.5"},
    "log_old_spelling": {"data.representation": "log"},
    "clip_count_2": {"data.clip_count": 2},
    "clip_count_1000_sum": {"data.clip_count": 1000, "data.pooling": "sum",
                            "data.representation": "counts"},
    "sum_pooling": {"data.pooling": "sum"},
    "overlap": {"data.stride_us": 10_000},
    "tall_crop": {"data.input_size": [20, 36], "data.policy": "crop"},
    "tall_pad_binary": {"data.input_size": [20, 36], "data.representation": "binary"},
}
RECORDINGS = {"IMU_translBoxes.aedat": (240, 180), "dvs.es": (320, 240)}


def train_cfg(tmp_path, option):
    return load_train_config(None, tiny_overrides(tmp_path, **{**BASE, **OPTIONS[option]}))


def runtime_frames(ckpt, sensor, ev, n):
    """The frames the runtime's pipeline makes of ``ev`` for the model in ``ckpt``."""
    cfg = load_run_config(None, [f"source.sensor_size={list(sensor)}"])
    cfg.window.timeout_s = None
    loaded = load_model(str(ckpt))
    pipe = Pipeline(cfg, source=None, loaded=loaded, sinks=[], recipe=run_recipe(cfg, loaded))
    prep = pipe._prep(0)
    out = []
    for chunk in np.array_split(ev, 17):
        out += prep.push(chunk, 0.0)
    out += prep.flush()
    assert len(out) >= n
    return torch.stack([f.frame for f in out[:n]])


@pytest.mark.parametrize("recording", sorted(RECORDINGS))
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_event_clip_item_equals_runtime_input(tmp_path, option, recording):
    cfg = train_cfg(tmp_path, option)
    sensor = RECORDINGS[recording]
    recipe = data_recipe(cfg.data)
    ev = expected_events(recording)
    t_first = int(ev["t"][0]) + 50_000
    span = (T - 1) * recipe.stride + recipe.window_us
    ev = ev[(ev["t"] >= t_first) & (ev["t"] <= t_first + span)]  # the centred clip starts at t_first
    ds = EventClipDataset([(lambda: (ev, sensor), 0)], ["a"], cfg.data, train=False)
    x_train = ds[0][0]
    ckpt = tmp_path / "m.pt"
    save_model(ckpt, build_model(cfg, 1), ["a"], cfg)
    x_run = runtime_frames(ckpt, sensor, ev, T)
    W, H = cfg.data.input_size
    assert x_train.shape == x_run.shape == (T, 2, H, W)
    assert x_train.dtype == x_run.dtype == torch.float32
    assert torch.equal(x_train, x_run)
    assert float(x_run.abs().sum()) > 0
    # and both are the recipe applied to the events
    assert torch.equal(x_run, apply(recipe, ev, sensor, t0=int(ev["t"][0]), n_windows=T))


@pytest.mark.parametrize("option", ["crop", "halves_crop_flip", "binary", "tall_pad_binary",
                                    "clip_count_2"])
def test_synthetic_clip_item_equals_the_recipe_on_its_events(tmp_path, option):
    """The cached clip route (sensor counts, mapped when read) gives what the event route,
    i.e. the runtime, gives from the clip's events."""
    from eventpipe.synthetic import CLASS_NAMES, clip_seed, make_clip

    cfg = train_cfg(tmp_path, option)
    d = dataclasses.replace(cfg.data, sensor_size=(56, 40), duration_us=4 * 40_000 + 40_000)
    ds = SyntheticFrames(d, "test")
    recipe = data_recipe(d)
    for i in (0, 5):
        ev = make_clip(CLASS_NAMES[int(ds.labels[i])], clip_seed(d.seed, "test", i),
                       sensor_size=(56, 40), duration_us=d.duration_us)
        n_all = ds.frames.shape[1] // recipe.bins_per_window
        s = max(0, (n_all - T) // 2)
        want = apply(recipe, ev, (56, 40), t0=s * recipe.stride, n_windows=T)
        assert torch.equal(ds[i][0], want)


@pytest.mark.parametrize("option", [
    {"data.policy": "crop", "data.flip_y": True, "data.representation": "binary"},
    {"data.channels": "halves", "data.stride_us": 0, "data.pooling": "sum",
     "data.representation": "counts"},
])
def test_stream_item_equals_runtime_input_non_square(tmp_path, option):
    from eventpipe.synthetic import CLASS_NAMES, SyntheticStream
    from eventpipe.training.stream_data import SyntheticStreamFrames, stream_seeds

    ov = {"data.dataset": "synthetic_stream", "data.sensor_size": [56, 40],
          "data.input_size": [20, 12], "data.n_streams": 1, "data.n_test_streams": 1,
          "data.stream_seconds": 2.0, "data.switch_every_s": 1.0, "data.run_windows": 6,
          "data.burn_in": 1, "data.window_us": 100_000, "data.stride_us": 50_000, **option}
    cfg = load_train_config(None, tiny_overrides(tmp_path, **ov))
    ds = SyntheticStreamFrames(cfg.data, "test")
    ckpt = tmp_path / "m.pt"
    save_model(ckpt, build_model(cfg, len(CLASS_NAMES)), list(CLASS_NAMES), cfg)
    run_cfg = load_run_config(None, ["source.sensor_size=[56, 40]"])
    run_cfg.window.timeout_s = None
    loaded = load_model(str(ckpt))
    pipe = Pipeline(run_cfg, None, loaded, [], recipe=run_recipe(run_cfg, loaded))
    prep = pipe._prep(0)
    frames, truth = [], []
    seed = stream_seeds(cfg.data, "test")[0]
    for pk in SyntheticStream(seed=seed, switch_every_s=1.0, sensor_size=(56, 40), duration_s=2.0):
        for f in prep.push(pk.events, 0.0, truth=pk.truth):
            frames.append(f.frame)
            truth.append(f.truth)
    R = cfg.data.run_windows
    assert len(frames) == len(ds.truth) >= 2 * R
    for k in range(2):
        x, y, _ = ds[k]
        assert x.shape == (R, 2, 12, 20)
        assert torch.equal(x, torch.stack(frames[k * R:(k + 1) * R]))
        assert (ds.truth[k * R:(k + 1) * R] == np.array(truth[k * R:(k + 1) * R])).all()


def test_loaded_model_without_a_checkpoint_recipe_uses_its_input_size():
    """A LoadedModel built by hand (no recipe) still runs: defaults with its (W, H)."""
    m = LoadedModel(model=torch.nn.Identity(), class_names=["a"], input_size=(48, 32), source="x")
    r = run_recipe(load_run_config(None, []), m)
    assert r.size == (48, 32) and r.normalisation == "counts" and r.window_us == 50_000
