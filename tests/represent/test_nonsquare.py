"""A non-square model, (W, H) = (48, 32) on a 64x40 sensor: trains a couple of steps, then
`eventpipe run` (in-process) feeds it from a non-square synthetic source."""

import io
import json

import torch

import snn
from eventpipe.cli import main
from eventpipe.synthetic import CLASS_NAMES
from eventpipe.training.config import load_train_config
from eventpipe.training.trainer import train
from tests.training.conftest import tiny_overrides


def test_non_square_model_trains_and_runs(tmp_path):
    ov = tiny_overrides(tmp_path, **{"data.sensor_size": [64, 40], "data.input_size": [48, 32],
                                      "data.window_us": 40_000, "data.duration_us": 200_000,
                                      "data.policy": "crop", "max_steps": 2, "eval_every": 0})
    cfg = load_train_config(None, ov)
    summary = train(cfg, log=lambda m: None)
    assert summary["step"] == 2
    ckpt = tmp_path / "run" / "final.pt"
    model, meta = snn.load_checkpoint(ckpt)
    assert meta["input_size"] == [48, 32]
    assert meta["recipe"]["size"] == [48, 32] and meta["recipe"]["policy"] == "crop"
    # the model takes [T, B, C, H, W] = 32 high, 48 wide
    assert model(torch.zeros(2, 1, 2, 32, 48)).shape == (1, len(CLASS_NAMES))

    out = tmp_path / "labels.jsonl"
    err = io.StringIO()
    rc = main(["run", "--source", "synthetic:seed=3,duration_s=1.0,size=96x64", "--model", str(ckpt),
               "--max-speed", "--jsonl", str(out), "--quiet", "--set", "decoder.emit_every=1",
               "--set", "model.threads=1"], out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    assert "window 40000 us, input 48x32" in err.getvalue()
    labels = [m for m in map(json.loads, out.read_text().splitlines()) if m.get("type") != "metrics"]
    assert len(labels) == 25                          # 1 s of 40 ms windows
    assert {m["label"] for m in labels} <= set(CLASS_NAMES)
