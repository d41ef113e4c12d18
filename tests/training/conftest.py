"""Tiny configs shared by the training tests (kept small: the suite runs on 2 loaded cores)."""

import numpy as np
import pytest
import torch

from eventpipe.events import make_events
from eventpipe.training.config import TrainConfig, load_train_config

torch.set_num_threads(1)  # several threads on 2 loaded cores are 10x slower, not faster


def tiny_events(n=2000, W=64, H=48, t_end=600_000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_end, n))
    return make_events(rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, 2, n))


def tiny_overrides(tmp_path, **extra):
    ov = {
        "out_dir": str(tmp_path / "run"),
        "progress": False,
        "log_every": 1,
        "data.cache_dir": str(tmp_path / "cache"),
        "data.n_per_class": 1,
        "data.n_test_per_class": 1,
        "data.sensor_size": [32, 32],
        "data.duration_us": 300_000,
        "data.T": 2,
        "data.window_us": 100_000,
        "data.input_size": [16, 16],
        "model.embed_dims": [8, 16, 16, 16],
        "model.depths": [1, 1],
        "model.num_heads": 2,
        "model.mlp_ratio": 1,
        "model.conv_mlp_ratio": 1,
        "model.extra": {"v_threshold": 0.5, "sep_kernel": 3},
        "optim.batch_size": 6,
        "optim.epochs": 1,
        "optim.warmup_epochs": 0.0,
    }
    ov.update(extra)
    import json

    out = []
    for k, v in ov.items():
        if isinstance(v, dict):
            inner = ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items())
            out.append(f"{k}={{ {inner} }}")
        else:
            out.append(f"{k}={json.dumps(v)}")
    return out


@pytest.fixture
def tiny_cfg(tmp_path) -> TrainConfig:
    torch.manual_seed(0)
    return load_train_config(None, tiny_overrides(tmp_path))
