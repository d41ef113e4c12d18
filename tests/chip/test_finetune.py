"""Quantisation-aware fine-tuning raises chip/float agreement (a tiny seeded case, seconds)."""

import numpy as np
import pytest
import torch

import snn

from .programs import profile

pytestmark = pytest.mark.timeout(600)


def _case():
    from snn.backends.chip.finetune import FinetuneData

    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1), num_classes=4,
                             in_channels=2, T=4, v_threshold=0.5).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_var.fill_(0.05)
    rng = np.random.default_rng(0)
    y = np.arange(32) % 4
    x = rng.poisson(1.0, (4, 32, 2, 16, 16)).astype(np.int32)   # 4 classes told apart by where events are
    x[:, y == 1, 0] *= 3
    x[:, y == 2, :, :8] = 0
    x[:, y == 3, :, :, :8] = 0
    return model, FinetuneData(x, y, calibration=x[:, :4])


def test_finetune_raises_twin_agreement_on_a_coarse_chip(tmp_path):
    """3-bit weights and a 3-bit input table: the chip and the float model disagree; 30 steps of
    fine-tuning with the chip in the loop raise the agreement on the clips (twin = reference,
    test_simulate.py), and the result saves and loads as a checkpoint."""
    from snn.backends.chip.finetune import finetune, save_finetuned

    model, data = _case()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned, hist = finetune(model, data, profile=profile(weight_bits=3, input_bits=3, accumulator_bits=32),
                           steps=30, lr=3e-3, batch=8, recompile_every=10,
                           compile_kw=dict(input_size=(16, 16), encoding={"norm": "log1p", "scale": 1.0, "clip": 15}))
    assert len(hist["loss"]) == 30 and [s for s, _ in hist["agree"]] == [0, 10, 20, 30]
    assert hist["agree"][-1][1] > hist["agree"][0][1] + 0.2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())      # the input is untouched
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    path = tmp_path / "tuned.pt"
    save_finetuned(path, tuned, {"class_names": list("abcd"), "input_size": (16, 16), "extra": {"x": 1}}, hist,
                   {"steps": 30})
    again, meta = snn.load_checkpoint(path)
    assert meta["extra"]["x"] == 1 and meta["extra"]["chip_finetune"]["settings"] == {"steps": 30}
    assert all(torch.equal(again.state_dict()[k], v) for k, v in tuned.state_dict().items())
