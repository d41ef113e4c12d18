"""The shipped model carries how it was made and its figures (docs/training.md, issue #16)."""

from pathlib import Path

import torch

from eventpipe.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "snn" / "weights" / "meta_spikeformer_tiny_synthetic.pt"


def test_shipped_extra_is_complete_and_names_the_stage5_config():
    extra = torch.load(SHIPPED, weights_only=True)["extra"]
    for key in ("decoder", "test_accuracy", "clip_test_accuracy", "made_by", "train_config"):
        assert key in extra, key
    assert 0.9 < extra["clip_test_accuracy"] <= 1.0 and 0.8 < extra["test_accuracy"] <= 1.0
    assert set(extra["decoder"]) >= {"ema", "hysteresis", "dwell"}
    cfg = load_train_config(str(ROOT / "configs" / "train_synthetic_halves_switchruns.toml"))
    assert extra["made_by"] == cfg.made_by
    assert "train_synthetic_halves_switch.toml" in extra["made_by"]      # stage 3, stage 4, stage 5
    assert "train_synthetic_halves_decoded.toml" in extra["made_by"]
    assert "train_synthetic_halves_switchruns.toml" in extra["made_by"]
    tc = extra["train_config"]
    # stage 5 started from a copy of stage 4's export (the config's init: the same weights)
    assert cfg.init == "runs/synthetic_halves_decoded/final.pt" and tc["init"] == "runs/stage4.pt"
    assert tc["data"]["switch_runs"] == cfg.data.switch_runs == 1.0
    assert tc["data"]["switch_run_lead"] == cfg.data.switch_run_lead == 6
    assert tc["optim"]["lr"] == cfg.optim.lr and tc["optim"]["epochs"] == cfg.optim.epochs == 2
    assert tc["data"]["switch_weight"] == cfg.data.switch_weight == 8.0
    assert tc["optim"]["consistency_settle"] == cfg.optim.consistency_settle == 6
    assert tc["optim"]["decoded_weight"] == cfg.optim.decoded_weight == 2.0
    assert tc["optim"]["decoded_ema"] == cfg.optim.decoded_ema == 0.6
    assert tc["data"]["augment"]["time_reverse"] == cfg.data.augment.time_reverse == 0.3
    assert torch.load(SHIPPED, weights_only=True)["recipe"]["channels"] == "halves"
