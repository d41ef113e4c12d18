"""Registry names, the official parameter counts and the official 15M key layout."""

from __future__ import annotations

import pytest
import torch

import snn
from snn.models import register_model

from .conftest import KEYS_15M

# counts of the official code for the same configurations (from the issue)
OFFICIAL_COUNTS = {
    ("meta_spikeformer_15m", False): 15_112_208,
    ("meta_spikeformer_31m", False): 31_333_864,
    ("meta_spikeformer_55m", False): 55_350_248,
    ("meta_spikeformer_55m", True): 55_991_248,
    ("meta_spikeformer_hardvs_18m", False): 18_262_980,
}


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,kd", sorted(OFFICIAL_COUNTS))
def test_official_parameter_counts(name, kd):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = snn.create_model(name, kd=kd)
    assert n_params(model) == OFFICIAL_COUNTS[(name, kd)]


def test_hardvs_and_tiny_layout():
    with torch.device("meta"):
        h = snn.create_model("meta_spikeformer_hardvs_18m")
        t = snn.create_model("meta_spikeformer_tiny")
    assert h.embed_dims == (80, 160, 320, 400) and h.depths == (4, 2)
    assert h.in_channels == 2 and h.num_classes == 300
    assert t.in_channels == 2 and 1_000_000 <= n_params(t) <= 3_000_000


def test_15m_keys_and_shapes_match_official():
    if not KEYS_15M.exists():
        pytest.skip(f"{KEYS_15M} missing")
    ref = {}
    for line in KEYS_15M.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            ref[key] = shape.strip()
    assert len(ref) == 825
    with torch.device("meta"):
        sd = snn.create_model("meta_spikeformer_15m").state_dict()
    assert set(sd) == set(ref)
    for k, v in sd.items():
        assert str(tuple(v.shape)) == ref[k], k


def test_state_dict_holds_no_membranes():
    m = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1))
    keys = set(m.state_dict())
    m.eval()
    with torch.no_grad():
        m.step(torch.zeros(1, 2, 32, 32))
    assert set(m.state_dict()) == keys
    assert not any("lif" in k for k in keys)


def test_list_and_unknown_names():
    names = snn.list_models()
    for n in ("meta_spikeformer_15m", "meta_spikeformer_31m", "meta_spikeformer_55m",
              "meta_spikeformer_hardvs_18m", "meta_spikeformer_tiny"):
        assert n in names
    with pytest.raises(KeyError, match="meta_spikeformer_15m"):
        snn.create_model("meta_spikformer_15m")


def test_overrides_and_bad_override():
    m = snn.create_model("meta_spikeformer_tiny", num_classes=11, T=4, embed_dims=(8, 16, 16, 16))
    assert m.num_classes == 11 and m.T == 4
    assert m.recipe["name"] == "meta_spikeformer_tiny"
    with pytest.raises(TypeError, match="create_model"):
        snn.create_model("meta_spikeformer_tiny", no_such_option=1)


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_model("meta_spikeformer_15m", lambda **kw: None)
