"""`eventpipe eval CKPT` rebuilds its dataset from the checkpoint's training config.  Files
written before input recipes (``meta["recipe"] is None``) stored ``data.input_size`` as (H, W);
today it is (W, H).  A non-square old checkpoint must get its clips at the size it was trained
at, not transposed."""

from __future__ import annotations

import pytest
import torch

from eventpipe.cli import ExitStatus
from snn import create_model, save_checkpoint
from tests.cli.conftest import run_cli


def _checkpoint(path, input_size, recipe):
    torch.manual_seed(0)
    model = create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 32, 48), num_classes=3, T=2)
    train_config = {"data": {"dataset": "synthetic", "input_size": list(input_size),
                             "n_per_class": 2, "n_test_per_class": 1}}
    save_checkpoint(path, model, extra={"train_config": train_config}, recipe=recipe)
    return path


@pytest.fixture
def seen(monkeypatch):
    import eventpipe.training.datasets as datasets

    got = {}

    def capture(data_cfg, split, train=False):
        got["input_size"] = tuple(data_cfg.input_size)
        raise KeyboardInterrupt  # stop here: the config is the point

    monkeypatch.setattr(datasets, "build_dataset", capture)
    return got


def test_old_non_square_checkpoint_gets_its_size_back_as_w_h(tmp_path, seen):
    """Trained at W=80, H=48 before recipes: its config says [48, 80] (H, W)."""
    ckpt = _checkpoint(tmp_path / "old.pt", (48, 80), recipe=None)
    res = run_cli(["eval", ckpt, "--split", "test"])
    assert res.rc == ExitStatus.INTERRUPTED, res
    assert seen["input_size"] == (80, 48)
    res = run_cli(["eval", ckpt, "--split", "test", "--set", "data.input_size=[32, 16]"])
    assert seen["input_size"] == (32, 16)  # an override on the command line is (W, H) as given


def test_checkpoint_with_a_recipe_keeps_its_config_as_written(tmp_path, seen):
    ckpt = _checkpoint(tmp_path / "new.pt", (80, 48),
                       recipe={"recipe_version": 1, "size": [80, 48], "window_us": 100_000})
    res = run_cli(["eval", ckpt, "--split", "test"])
    assert res.rc == ExitStatus.INTERRUPTED, res
    assert seen["input_size"] == (80, 48)
