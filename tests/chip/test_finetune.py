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
    assert abs(float(kl.detach()) - (0.5 * np.log(2.0) + 0.25 * np.log(0.5))) < 1e-12
    kl.backward()
    assert t.grad is None and s.grad is not None
    assert abs(float(_kl_to(s, s).detach())) < 1e-12


def test_near_threshold_by_hand():
    """Membranes 0, 0.02 and 0.10 V_th from their threshold (unit 0.01 V_th per membrane unit),
    width 0.05: terms 1, 0.6, 0 -> mean 1.6 / 3; the gradient pushes the near membrane away from
    its threshold (up, for one above it; down, for one below) and leaves the far one alone."""
    from snn.backends.chip.simulate import near_threshold

    h = torch.tensor([10.0, 12.0, 20.0, 8.0], dtype=torch.float64, requires_grad=True)
    theta = torch.full((4,), 10.0, dtype=torch.float64)
    v = near_threshold(h, theta, torch.tensor(0.01, dtype=torch.float64), 0.05)
    assert abs(float(v.detach()) - (1.0 + 0.6 + 0.0 + 0.6) / 4) < 1e-12
    v.backward()
    g = h.grad.numpy()
    assert abs(g[1] - (-0.01 / 0.05 / 4)) < 1e-12 and abs(g[3] - (0.01 / 0.05 / 4)) < 1e-12
    assert g[2] == 0.0


def test_margin_terms_leave_the_twin_unchanged_and_count_every_lif():
    """``margin=(width, terms)``: the logits are the same as without it; one term per LIF op and
    step, each in [0, 1], some above 0; a wider band catches at least as many membranes."""
    from snn.backends.chip.simulate import ChipSim

    model, data = _case()
    prof = profile(weight_bits=3, input_bits=2, accumulator_bits=32)
    prog = snn.chip.compile(model, profile=prof, input_size=(16, 16), encoding=ENC, calibration=[data.calibration])
    sim = ChipSim(prog, model)
    x = torch.from_numpy(data.clips[:, :4].astype(np.int64))
    terms, wide = [], []
    with torch.no_grad():
        a, _ = sim.run(x, margin=(0.05, terms))
        b, _ = sim.run(x)
        sim.run(x, margin=(0.5, wide))
    assert torch.equal(a, b)
    n_lif = sum(op.kind == "lif" for op in prog.ops)
    assert len(terms) == n_lif * x.shape[0]
    assert all(0.0 <= float(t) <= 1.0 for t in terms) and any(float(t) > 0 for t in terms)
    assert float(torch.stack(wide).mean()) > float(torch.stack(terms).mean())


def test_margin_loss_moves_membranes_away_from_thresholds():
    """The margin term alone (no consistency, distillation or labels): after 15 steps the chip's
    membranes sit near their thresholds less often than before, on the training clips."""
    from snn.backends.chip.finetune import finetune
    from snn.backends.chip.simulate import ChipSim

    model, data = _case()
    prof = profile(weight_bits=8, input_bits=8, accumulator_bits=32)
    ckw = dict(input_size=(16, 16), encoding=ENC)

    def near(m):
        prog = snn.chip.compile(m, profile=prof, calibration=[data.calibration], **ckw)
        terms = []
        with torch.no_grad():
            ChipSim(prog, m).run(torch.from_numpy(data.clips.astype(np.int64)), margin=(0.1, terms))
        return float(torch.stack(terms).mean())

    tuned, hist = finetune(model, data, profile=prof, steps=15, lr=3e-3, batch=8, recompile_every=5, hard=0.0,
                           consistency=0.0, margin=1.0, margin_width=0.1, compile_kw=ckw)
    assert len(hist["near"]) == 15
    before, after = near(model), near(tuned)
    assert after < 0.7 * before, (before, after)


def test_save_finetuned_carries_the_source_metadata_over(tmp_path):
    """The written checkpoint keeps the source's recipe, class names, input size and every extra
    entry (decoder, accuracies, sensor size) and adds what fine-tuning did: source, settings, run
    time, the twin's agreement history, the mean losses of the first and last ten steps (worked
    out here); a source fine-tuned before keeps its record under ``previous``."""
    from snn.backends.chip.finetune import save_finetuned

    model, _ = _case()
    recipe = {"size": [16, 16], "channels": "halves", "window_us": 100000, "stride_us": 50000}
    extra = {"decoder": {"ema": 0.7, "hysteresis": 0.3, "dwell": 1}, "clip_test_accuracy": 0.9667,
             "test_accuracy": 0.8549, "sensor_size": [32, 32], "chip_finetune": {"settings": {"steps": 1}}}
    meta = {"class_names": list("abcd"), "input_size": (16, 16), "recipe": recipe, "extra": extra, "source": "a.pt"}
    hist = {"agree": [(0, 0.5), (10, 0.75)], "loss": list(range(20)), "kl": [1.0] * 20, "near": []}
    path = tmp_path / "tuned.pt"
    save_finetuned(path, model, meta, hist, {"steps": 20, "margin": 0.0}, seconds=12.345)
    _, got = snn.load_checkpoint(path)
    assert got["recipe"] == recipe and got["class_names"] == list("abcd") and tuple(got["input_size"]) == (16, 16)
    for k in ("decoder", "clip_test_accuracy", "test_accuracy", "sensor_size"):
        assert got["extra"][k] == extra[k]
    rec = got["extra"]["chip_finetune"]
    assert rec["source"] == "a.pt" and rec["settings"] == {"steps": 20, "margin": 0.0} and rec["seconds"] == 12.3
    assert rec["twin_clip_agreement"] == [[0, 0.5], [10, 0.75]]
    assert rec["loss"] == [4.5, 14.5] and rec["kl"] == [1.0, 1.0] and "near" not in rec
    assert rec["previous"] == {"settings": {"steps": 1}}


def test_synthetic_data_cuts_runs_of_the_asked_length_half_overlapping():
    """A 2 s stream cut by the runtime's windower (100 ms every 50 ms) has (2000 - 100) / 50 = 38
    windows: runs of 12 start at 0, 6, ..., 24 (five of them, the next would end at 42); a run of
    all 38 is one run; 39 windows do not fit - no runs."""
    from snn.backends.chip.finetune import synthetic_data

    kw = dict(input_size=(16, 16), sensor_size=(32, 32), channels="halves")
    d = synthetic_data(1, 1, 2.0, 12, **kw)
    assert d.runs.shape == (12, 5, 2, 16, 16) and d.run_targets.shape == (12, 5)
    np.testing.assert_array_equal(d.runs[6:, 0], d.runs[:6, 1])   # half-overlapping
    assert synthetic_data(1, 1, 2.0, 38, **kw).runs.shape[:2] == (38, 1)
    d = synthetic_data(1, 1, 2.0, 39, **kw)
    assert d.runs is None and d.run_targets is None and d.clips.shape == (8, 1, 2, 16, 16)
