"""Optimisation, checkpoints with their recipe, resume, evaluation, the CLI entry points."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import snn
from eventpipe.training.config import load_train_config
from eventpipe.training.datasets import build_dataset
from eventpipe.training.evaluate import eval_clips
from eventpipe.training.optim import Lamb, lr_at, make_optimizer
from eventpipe.training.trainer import build_model, load_train_state, save_model, train

from .conftest import tiny_overrides


def _batch(n=6, T=2, size=16, seed=0):
    """Class k lights up its own third of the frame (a learnable tiny batch)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, n, 2, size, size, generator=g) < 0.05).float()
    y = torch.arange(n) % 3
    w = size // 3
    for i in range(n):
        k = int(y[i])
        x[:, i, :, :, k * w:(k + 1) * w] += 1.0
    return x, y


@pytest.mark.parametrize("opt,lr", [("adamw", 1e-2), ("lamb", 1e-1)])  # LAMB steps are relative to |w|
def test_few_steps_reduce_loss(tiny_cfg, opt, lr):
    torch.manual_seed(0)
    tiny_cfg.optim.optimizer = opt
    tiny_cfg.optim.lr = lr
    model = build_model(tiny_cfg, 3)
    o = make_optimizer(model, tiny_cfg.optim)
    assert isinstance(o, Lamb) == (opt == "lamb")
    x, y = _batch()
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        o.zero_grad()
        loss.backward()
        o.step()
        losses.append(float(loss.detach()))
    assert min(losses[-10:]) < losses[0] - 0.05, losses


def test_lr_schedule():
    assert lr_at(0, 100, 10, 1.0, 0.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    mids = [lr_at(s, 100, 10, 1.0, 0.0) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(mids, mids[1:]))


def test_checkpoint_round_trip_with_recipe(tiny_cfg, tmp_path):
    model = build_model(tiny_cfg, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    names = ["clap", "push", "wave"]
    path = tmp_path / "m.pt"
    save_model(path, model, names, tiny_cfg, epoch=3)
    raw = torch.load(path, weights_only=True)
    assert raw["model_name"] == "meta_spikeformer_tiny" and raw["T"] == 2
    assert raw["class_names"] == names and list(raw["input_size"]) == [16, 16]
    assert raw["recipe"] == {"recipe_version": 2, "size": [16, 16], "window_us": 100_000,
                             "stride_us": None, "channels": "polarity", "policy": "pad",
                             "roi": None, "flip_x": False, "flip_y": False, "clip_count": 255,
                             "pooling": "mean", "normalisation": "log1p"}
    assert raw["extra"]["train_config"]["data"]["T"] == 2
    loaded, meta = snn.load_checkpoint(path)
    sd0, sd1 = model.state_dict(), loaded.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    x, _ = _batch()
    model.eval()
    assert torch.equal(model(x), loaded(x))
    # fp16 export loads back (into fp32) and stays close
    save_model(tmp_path / "h.pt", model, names, tiny_cfg, fp16=True)
    half, meta_h = snn.load_checkpoint(tmp_path / "h.pt")
    assert meta_h["extra"]["fp16"] is True
    assert next(iter(torch.load(tmp_path / "h.pt", weights_only=True)["state_dict"].values())).dtype == torch.float16


def test_train_resume_eval_and_outputs(tmp_path):
    ov = tiny_overrides(tmp_path, **{"optim.epochs": 1, "export": str(tmp_path / "w" / "exp.pt")})
    cfg = load_train_config(None, ov)
    s1 = train(cfg, log=lambda m: None)
    run = tmp_path / "run"
    n1 = s1["step"]
    assert n1 == 2  # 12 clips / batch 6
    for f in ("last.pt", "best.pt", "final.pt", "curves.png", "history.json", "train.log", "confusion.json"):
        assert (run / f).is_file(), f
    assert (tmp_path / "w" / "exp.pt").is_file()
    st = load_train_state(run / "last.pt")
    assert st["step"] == n1 and st["epoch"] == 1 and len(st["history"]) == 1
    # resume continues the step count and the history
    cfg2 = load_train_config(None, ov + ["optim.epochs=2", "resume='auto'"])
    s2 = train(cfg2, log=lambda m: None)
    assert s2["step"] == 2 * n1
    st2 = load_train_state(run / "last.pt")
    assert st2["epoch"] == 2 and [h["epoch"] for h in st2["history"]] == [1, 2]
    assert "resumed" in (run / "train.log").read_text()
    # evaluation of the exported checkpoint
    ds = build_dataset(cfg.data, "test", train=False)
    res = eval_clips(run / "final.pt", ds, png=str(tmp_path / "cm.png"))
    assert res["n"] == 12 and res["confusion"].shape == (12, 12) and res["confusion"].sum() == 12
    assert 0.0 <= res["accuracy"] <= 1.0 and (tmp_path / "cm.png").stat().st_size > 1000
    # the confusion matrix counts each clip's argmax of the model's own clip logits
    model, _ = snn.load_checkpoint(run / "final.pt")
    model.float().eval()
    want = np.zeros((12, 12), np.int64)
    with torch.no_grad():
        for i in range(len(ds)):
            x, y = ds[i][0], int(ds[i][1])
            want[y, int(model(x[:, None]).argmax(1))] += 1
    np.testing.assert_array_equal(res["confusion"], want)
    assert res["accuracy"] == pytest.approx(np.trace(want) / 12)


def test_cli_print_config_and_strict_overrides(tmp_path, capsys):
    from eventpipe.training import train_main

    assert train_main(["--config", "configs/train_synthetic.toml", "--print-config",
                       "--set", "optim.epochs=3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optim"]["epochs"] == 3 and out["model"]["name"] == "meta_spikeformer_tiny"
    # through the one CLI door: a config error is one line and the CONFIG exit status
    from eventpipe.errors import ExitStatus
    assert train_main(["--config", "configs/train_synthetic.toml", "--print-config",
                       "--set", "optim.epoch=3"]) == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert "optim.epoch" in err and "did you mean 'epochs'" in err and len(err.splitlines()) == 1


def test_per_step_loss_trains_every_timestep(tmp_path):
    """The TET option runs through the real loop and yields finite, logged losses."""
    ov = tiny_overrides(tmp_path, **{"optim.epochs": 1, "optim.per_step_loss": True})
    s = train(load_train_config(None, ov), log=lambda m: None)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert s["step"] == 2 and torch.isfinite(torch.tensor(hist[-1]["train_loss"]))
