"""Quantisation-aware fine-tuning raises chip/float agreement (a tiny seeded case, seconds)."""

import copy
import functools

import numpy as np
import pytest
import torch

import snn
import snn.chip
from snn.backends.chip.agreement import Agreement
from snn.backends.chip.compile import normalise

from .programs import profile

pytestmark = pytest.mark.timeout(600)

ENC = {"norm": "log1p", "scale": 1.0, "clip": 15}


def _case():
    """A tiny model trained for 40 float steps on 4 classes told apart by where the events are
    (trained once per session; each call returns fresh copies)."""
    model, data = _trained_case()
    return copy.deepcopy(model), copy.deepcopy(data)


@functools.lru_cache(maxsize=1)
def _trained_case():
    from snn.backends.chip.finetune import FinetuneData

    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1), num_classes=4,
                             in_channels=2, T=4, v_threshold=0.5).eval()
    rng = np.random.default_rng(0)
    y = np.arange(32) % 4
    x = rng.poisson(1.0, (4, 32, 2, 16, 16)).astype(np.int32)
    x[:, y == 1, 0] *= 3
    x[:, y == 2, :, :8] = 0
    x[:, y == 3, :, :, :8] = 0
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = normalise(x, ENC), torch.from_numpy(y)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, FinetuneData(x, y, calibration=x[:, :4])


class _Reference:
    def __init__(self, program):
        self.program = program

    def step(self, counts, state=None, record=True):
        return snn.chip.reference_step(self.program, counts, state, record=record)


def _chip_agreement(model, data, prof):
    prog = snn.chip.compile(model, profile=prof, input_size=(16, 16), encoding=ENC, calibration=[data.calibration])
    a = Agreement(prog, model, executor=_Reference(prog))
    a.clips([data.clips])
    return a.top1


def _accuracy(model, data):
    with torch.no_grad():
        return float((model(normalise(data.clips, ENC)).argmax(1).numpy() == data.labels).mean())


def test_finetune_raises_agreement_on_a_coarse_chip(tmp_path):
    """3-bit weights and a 2-bit input table: the chip and the float model disagree on half the
    clips; 30 steps of fine-tuning with the chip in the loop make them agree (measured on the
    reference chip, not only the twin), the float model no less accurate; the input model is
    untouched and the result saves and loads as a checkpoint."""
    from snn.backends.chip.finetune import finetune, save_finetuned

    prev_threads = torch.get_num_threads()
    model, data = _case()
    prof = profile(weight_bits=3, input_bits=2, accumulator_bits=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    agree0, acc0 = _chip_agreement(model, data, prof), _accuracy(model, data)
    tuned, hist = finetune(model, data, profile=prof, steps=30, lr=3e-3, batch=8, recompile_every=10,
                           compile_kw=dict(input_size=(16, 16), encoding=ENC))
    assert torch.get_num_threads() == prev_threads
    assert len(hist["loss"]) == 30 and [s for s, _ in hist["agree"]] == [0, 10, 20, 30]
    assert hist["agree"][0][1] == agree0                      # the twin's count is the chip's
    agree1 = _chip_agreement(tuned, data, prof)
    assert agree0 <= 0.75 and agree1 >= agree0 + 0.25, (agree0, agree1)
    assert _accuracy(tuned, data) >= acc0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    path = tmp_path / "tuned.pt"
    save_finetuned(path, tuned, {"class_names": list("abcd"), "input_size": (16, 16), "extra": {"x": 1}}, hist,
                   {"steps": 30})
    again, meta = snn.load_checkpoint(path)
    assert meta["extra"]["x"] == 1 and meta["extra"]["chip_finetune"]["settings"] == {"steps": 30}
    assert all(torch.equal(again.state_dict()[k], v) for k, v in tuned.state_dict().items())


def test_distillation_needs_no_labels_and_leaves_the_teacher_alone():
    """hard=0, distill=1: the frozen input model is the teacher of both forms and the labels are
    never read - wrong labels give the very same weights; the distillation term does change them
    (against consistency alone); the input model is not modified."""
    from snn.backends.chip.finetune import finetune

    model, data = _case()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prof = profile(weight_bits=3, input_bits=2, accumulator_bits=32)
    kw = dict(profile=prof, steps=3, lr=3e-3, batch=8, recompile_every=3, hard=0.0,
              compile_kw=dict(input_size=(16, 16), encoding=ENC))
    a, _ = finetune(model, data, distill=1.0, **kw)
    wrong = copy.deepcopy(data)
    wrong.labels = (wrong.labels + 1) % 4
    b, _ = finetune(model, wrong, distill=1.0, **kw)
    c, _ = finetune(model, data, distill=0.0, **kw)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_kl_to_the_teacher_by_hand():
    """KL(p || q) of two hand-made distributions; zero for equal logits, none into the teacher."""
    from snn.backends.chip.finetune import _kl_to

    t = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)).requires_grad_(True)
    s = torch.log(torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64)).requires_grad_(True)
    kl = _kl_to(t, s)
    assert abs(float(kl) - (0.5 * np.log(2.0) + 0.25 * np.log(0.5))) < 1e-12
    kl.backward()
    assert t.grad is None and s.grad is not None
    assert abs(float(_kl_to(s, s))) < 1e-12
