"""Fixtures for the SNN tests: the official golden vector and small seeded models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("EVENTPIPE_SHARED", REPO.parent / "shared")) / "reference"
GOLDEN = REFERENCE / "metaspikeformer_golden_event_small.pt"
KEYS_15M = REFERENCE / "official_15M_state_dict_keys.txt"


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models run fastest (and steadiest on a shared 2-core box) on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def golden():
    if not GOLDEN.exists():
        pytest.skip(f"golden vector {GOLDEN} is missing (expected ../shared beside the repo)")
    return torch.load(GOLDEN, map_location="cpu", weights_only=True)


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms (so none is an identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return model


def small_model(seed: int = 0, **kw):
    from snn import MetaSpikeFormer

    torch.manual_seed(seed)
    cfg = dict(embed_dims=(16, 32, 48, 64), depths=(1, 1), in_channels=2, num_classes=5, T=3)
    cfg.update(kw)
    return randomize_bn(MetaSpikeFormer(**cfg), seed).eval()


def event_input(T=3, B=2, C=2, H=32, W=32, seed=0, rate=0.3):
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((T, B, C, H, W), rate), generator=g) * 2.0
