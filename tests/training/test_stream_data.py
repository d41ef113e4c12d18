"""Stream training data: runtime-identical windows, per-window targets, fine-tuning from weights."""

import numpy as np
import pytest
import torch

import snn
from eventpipe.represent import InputRecipe
from eventpipe.runtime.preprocess import StreamPrep
from eventpipe.synthetic import CLASS_NAMES, SyntheticStream
from eventpipe.training.config import load_train_config
from eventpipe.training.stream_data import (
    IGNORE,
    SyntheticStreamFrames,
    step_targets,
    step_weights,
    stream_seeds,
)
from eventpipe.training.trainer import build_model, train

from .conftest import tiny_overrides


def stream_overrides(tmp_path, **extra):
    ov = dict({
        "data.dataset": "synthetic_stream",
        "data.sensor_size": [32, 32],
        "data.input_size": [16, 16],
        "data.n_streams": 2,
        "data.n_test_streams": 1,
        "data.stream_seconds": 4.0,
        "data.switch_every_s": 1.0,
        "data.run_windows": 12,
        "data.burn_in": 3,
        "data.clips_per_stream": 3,
        "data.window_us": 100_000,
        "data.stride_us": 50_000,
    }, **extra)
    return tiny_overrides(tmp_path, **ov)


@pytest.fixture
def stream_cfg(tmp_path):
    return load_train_config(None, stream_overrides(tmp_path))


def test_stream_windows_are_the_runtimes(stream_cfg):
    """Test windows (unaugmented) equal the frames the runtime's StreamPrep makes from the same
    live stream with the recipe a checkpoint of this config carries (log1p of area-mapped counts)."""
    d = stream_cfg.data
    ds = SyntheticStreamFrames(d, "test")
    seed = stream_seeds(d, "test")[0]
    recipe = InputRecipe(size=(16, 16), window_us=100_000, stride_us=50_000, channels="polarity",
                         normalisation="log1p", pooling="mean", clip_count=255)
    prep = StreamPrep(0, (32, 32), recipe=recipe)
    frames, truth = [], []
    for pk in SyntheticStream(seed=seed, switch_every_s=1.0, sensor_size=(32, 32), duration_s=4.0):
        for f in prep.push(pk.events, 0.0, truth=pk.truth):
            frames.append(f.frame)
            truth.append(f.truth)
    assert len(frames) == len(ds.truth) > 2 * d.run_windows
    x0, y0, w0 = ds[0]
    x1, _, _ = ds[1]
    R = d.run_windows
    assert x0.shape == (R, 2, 16, 16) and x0.dtype == torch.float32
    torch.testing.assert_close(x0, torch.stack(frames[:R]), rtol=0, atol=1e-6)
    torch.testing.assert_close(x1, torch.stack(frames[R:2 * R]), rtol=0, atol=1e-6)
    assert float(x0.sum()) > 0
    # targets: the window's truth after the burn-in, the switch grace period ignored
    y0 = y0.numpy()
    assert (y0[:d.burn_in] == IGNORE).all()
    kept = y0 >= 0
    assert kept.sum() >= R - d.burn_in - 2
    assert (y0[kept] == np.array(truth[:R])[kept]).all()
    assert (w0 == 1).all()  # switch_weight 1 by default
    # every action switch of the stream is in the data, one second apart
    assert len(set(truth)) >= 3


def test_step_targets_burn_in_and_grace():
    truth = np.array([3, 3, 3, 3, 3, 5, 5, 5, 5, 5])
    t_end = np.arange(1, 11) * 50_000 + 50_000          # windows end every 50 ms from 100 ms
    # switch at 300 ms: windows ending at 300 ms hold the old action; 350, 400 are in the grace
    y = step_targets(truth, t_end, switch_us=300_000, burn_in=2, grace_us=100_000)
    assert y.tolist() == [IGNORE, IGNORE, 3, 3, 3, IGNORE, IGNORE, 5, 5, 5]
    y = step_targets(truth, t_end, switch_us=300_000, burn_in=0, grace_us=0)
    assert y.tolist() == truth.tolist()
    y = step_targets(np.array([-1, 2]), np.array([100_000, 150_000]), 3_000_000, 0, 0)
    assert y.tolist() == [IGNORE, 2]
    # weights: the windows ending within 200 ms after the switch (not the first segment's)
    w = step_weights(t_end, switch_us=300_000, focus_us=200_000, weight=4.0)
    assert w.tolist() == [1, 1, 1, 1, 1, 4, 4, 4, 4, 1]


def test_training_runs_random_offsets_and_flipped_targets(stream_cfg):
    """Train items: a random run of each stream per (seed, epoch, index), mirrored with the
    left/right names swapped (hflip=1), or left as is when a target has no mirror class."""
    d = stream_cfg.data
    d.augment.hflip = 1.0
    d.augment.event_drop = 0.0
    ds = SyntheticStreamFrames(d, "train")
    assert len(ds) == d.n_streams * d.clips_per_stream
    n_flipped = 0
    fresh = SyntheticStreamFrames(d, "train")  # items depend on (seed, epoch, index) only
    for i in range(len(ds)):
        x, y, _ = ds[i]
        torch.testing.assert_close(fresh[i][0], x)
        s, _ = ds.index[i]
        rng = np.random.default_rng([d.seed, 0, i])
        off = int(rng.integers(0, int(ds.lengths[s]) - d.run_windows + 1))
        a = int(ds.starts[s]) + off
        raw = torch.log1p(torch.from_numpy(ds.frames[a:a + d.run_windows].astype(np.float32)) * ds.scale)
        truth = step_targets(ds.truth[a:a + d.run_windows], ds.t_end[a:a + d.run_windows],
                             ds.switch_us, d.burn_in, d.switch_grace_us)
        valid = truth >= 0
        if np.all(ds.hmap[truth[valid]] >= 0):
            n_flipped += 1
            torch.testing.assert_close(x, torch.flip(raw, dims=(-1,)))
            names = [CLASS_NAMES[v] for v in y.numpy()[valid]]
            originals = [CLASS_NAMES[v] for v in truth[valid]]
            for n, o in zip(names, originals):
                assert n == o.replace("left", "#").replace("right", "left").replace("#", "right") \
                    .replace("anticlockwise", "#").replace("clockwise", "anticlockwise").replace("#", "clockwise")
        else:
            torch.testing.assert_close(x, raw)
            assert (y.numpy() == truth).all()
    assert n_flipped > 0
    first = ds[0][0]
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], first)            # new offsets each epoch


def test_finetune_from_weights_with_per_window_loss(tmp_path):
    base = load_train_config(None, stream_overrides(tmp_path / "a"))
    model = build_model(base, len(CLASS_NAMES))
    init = tmp_path / "init.pt"
    snn.save_checkpoint(init, model, class_names=list(CLASS_NAMES), input_size=(16, 16))
    cfg = load_train_config(None, stream_overrides(tmp_path / "b", **{
        "init": str(init), "optim.freeze_bn": True, "optim.lr": 1e-3, "max_steps": 1}))
    summary = train(cfg, log=lambda m: None)
    hist = summary["history"][-1]
    assert hist["test_acc"] is not None and 0.0 <= hist["test_acc"] <= 1.0
    # frozen BatchNorm: running statistics untouched by the training step
    trained = summary["model"]
    for (k, v), (k2, v2) in zip(model.state_dict().items(), trained.state_dict().items()):
        assert k == k2
        if "running_" in k:
            torch.testing.assert_close(v, v2)
    changed = [k for k, v in model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, trained.state_dict()[k])]
    assert changed, "one optimizer step from the init weights changed nothing"
    # the exported recipe carries the stream stride for the runtime
    _, meta = snn.load_checkpoint(tmp_path / "b" / "run" / "final.pt")
    assert meta["recipe"]["stride_us"] == 50_000 and meta["recipe"]["window_us"] == 100_000
    assert meta["T"] == base.data.T


def test_init_with_other_architecture_is_a_clear_error(tmp_path):
    other = load_train_config(None, stream_overrides(tmp_path / "a", **{"model.embed_dims": [8, 16, 16, 32]}))
    init = tmp_path / "init.pt"
    snn.save_checkpoint(init, build_model(other, len(CLASS_NAMES)), class_names=list(CLASS_NAMES),
                        input_size=(16, 16))
    cfg = load_train_config(None, stream_overrides(tmp_path / "b", init=str(init), max_steps=1))
    with pytest.raises(ValueError, match="init=.*do not fit"):
        train(cfg, log=lambda m: None)


def test_aux_clip_batches_join_the_loss(tmp_path):
    """aux_data (the clip set) adds one batch per step to the stream loss, weighted by aux_weight."""
    aux = ["aux_data={ dataset = \"synthetic\", n_per_class = 1, n_test_per_class = 1, "
           "sensor_size = [32, 32], duration_us = 300000, T = 2, window_us = 100000, "
           f"input_size = [16, 16], cache_dir = \"{tmp_path / 'clips'}\" }}",
           "optim.aux_batch_size=4", "max_steps=1", "eval_every=0"]
    params = {}
    for w in (0.0, 1.0):
        cfg = load_train_config(None, stream_overrides(tmp_path / f"w{w}") + aux + [f"optim.aux_weight={w}"])
        assert cfg.aux_data is not None and cfg.aux_data.dataset == "synthetic"
        torch.manual_seed(0)
        params[w] = train(cfg, log=lambda m: None)["model"].state_dict()
    diff = [k for k in params[0.0] if params[0.0][k].dtype.is_floating_point
            and not torch.equal(params[0.0][k], params[1.0][k])]
    assert diff, "the aux batch did not change the update"


def test_a_stream_finetunes_export_carries_its_clip_test_accuracy_and_how_it_was_made(tmp_path):
    """The export of a stream fine-tune with a clip aux set holds extra["clip_test_accuracy"]
    (what eval_clips measures on the aux set's held-out clips), the validation window accuracy
    (test_accuracy) and made_by: the shipped file is written by the command alone."""
    import snn
    from eventpipe.training.datasets import build_dataset
    from eventpipe.training.evaluate import eval_clips

    aux = ["aux_data={ dataset = \"synthetic\", n_per_class = 1, n_test_per_class = 2, "
           "sensor_size = [32, 32], duration_us = 300000, T = 2, window_us = 100000, "
           f"input_size = [16, 16], cache_dir = \"{tmp_path / 'clips'}\" }}",
           "optim.aux_batch_size=4", "max_steps=1", "eval_every=1",
           f"export=\"{tmp_path / 'shipped.pt'}\"", "made_by=\"eventpipe train --config x.toml\""]
    cfg = load_train_config(None, stream_overrides(tmp_path / "run") + aux)
    out = train(cfg, log=lambda m: None)
    model, meta = snn.load_checkpoint(out["export"])
    extra = meta["extra"]
    assert extra["made_by"] == "eventpipe train --config x.toml"
    assert extra["test_accuracy"] == pytest.approx(out["final_acc"])
    want = eval_clips((model.float().eval(), meta), build_dataset(cfg.aux_data, "test", train=False))
    assert want["n"] == 24 and extra["clip_test_accuracy"] == pytest.approx(want["accuracy"], abs=1e-4)
