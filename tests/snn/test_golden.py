"""Fidelity against the official code's golden vector (../shared/reference)."""

from __future__ import annotations

import argparse

import pytest
import torch

import snn
from snn.backends import cpu
from snn.models import infer_config

ATOL = 1e-4


@pytest.fixture(scope="module")
def official(golden):
    return snn.load_official(golden["state_dict"], T=golden["config"]["T"])


def test_inferred_config_matches_golden(golden, official):
    cfg = golden["config"]
    inferred = infer_config(golden["state_dict"])
    assert list(inferred["embed_dims"]) == cfg["embed_dim"]
    assert inferred["depths"] == (cfg["depths_stage3"], cfg["depths_stage4"])
    assert inferred["in_channels"] == cfg["in_channels"]
    assert inferred["num_classes"] == cfg["num_classes"]
    assert inferred["kd"] == cfg["kd"]
    assert inferred["mlp_ratio"] == cfg["mlp_ratio"]
    assert not official.training


def test_forward_reproduces_logits(golden, official):
    with torch.no_grad():
        logits = official(golden["input"])
    torch.testing.assert_close(logits, golden["logits"], atol=ATOL, rtol=0)


def test_autograd_path_reproduces_logits(golden, official):
    # with autograd on, neurons run the differentiable tensor path instead of the fused kernel
    x = golden["input"].clone().requires_grad_(True)
    logits = official(x)
    torch.testing.assert_close(logits.detach(), golden["logits"], atol=ATOL, rtol=0)
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_sequence_reproduces_per_step_features_and_rates(golden, official):
    with torch.no_grad():
        out, ctx = official.run(golden["input"], record_spikes=True, record_features=True)
    torch.testing.assert_close(out, golden["logits_per_timestep"], atol=ATOL, rtol=0)
    for name, ref in golden["features"].items():
        got = ctx.features[name]
        torch.testing.assert_close(got.reshape(ref.shape), ref, atol=ATOL, rtol=0, msg=f"feature {name}")
    assert set(golden["firing_rates"]) == set(ctx.spikes)
    for name, rate in golden["firing_rates"].items():
        assert ctx.spikes[name].mean().item() == pytest.approx(rate, abs=1e-6), name


def test_stepping_reproduces_golden_and_sequence(golden, official):
    x = golden["input"]
    with torch.no_grad():
        seq, seq_ctx = official.run(x, record_spikes=True)
        state, outs = None, []
        for t in range(x.shape[0]):
            out_t, ctx = official.run(x[t : t + 1], state, record_spikes=True)
            state = ctx.new
            for name, s in ctx.spikes.items():
                assert torch.equal(s[0], seq_ctx.spikes[name][t]), f"spikes differ at {name}, t={t}"
            # the public step() API gives the same logits
            outs.append(out_t[0])
        state2, outs2 = None, []
        for t in range(x.shape[0]):
            o, state2 = official.step(x[t], state2)
            outs2.append(o)
    stepped = torch.stack(outs)
    torch.testing.assert_close(torch.stack(outs2), stepped, atol=1e-6, rtol=0)
    torch.testing.assert_close(stepped, seq, atol=1e-6, rtol=0)
    torch.testing.assert_close(stepped, golden["logits_per_timestep"], atol=ATOL, rtol=0)
    torch.testing.assert_close(stepped.mean(0), golden["logits"], atol=ATOL, rtol=0)
    for name in seq_ctx.new:
        torch.testing.assert_close(state[name].v, seq_ctx.new[name].v, atol=1e-6, rtol=0)


@pytest.mark.parametrize("repconv,spike_conv,fast", [("chain", True, True), ("chain", True, False),
                                                    ("chain", False, False), ("dense", False, False),
                                                    ("chain", None, None), ("dense", None, None)])
def test_folded_identical_spikes(golden, official, repconv, spike_conv, fast):
    from snn.backends.cpu import SpikeConv2d

    if fast is None:  # snn.compile's folding alone: plain torch modules
        folded = snn.fold_model(official, repconv=repconv)
    else:  # the CPU backend: folding + GEMM 1x1s (+ event-driven conv) (+ fast path)
        folded = cpu.build(official, repconv=repconv, spike_conv=spike_conv, fast=fast)
    for m in folded.modules():  # force the event-driven path wherever it is installed
        if isinstance(m, SpikeConv2d):
            m.max_density, m.min_out_channels, m.max_out_pixels = 1.0, 0, 1 << 30
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    if repconv == "dense":  # every RepConv chain became one 3x3 conv
        attn = folded.block3[0].attn
        assert isinstance(attn.proj_conv, torch.nn.Conv2d) and attn.proj_conv.kernel_size == (3, 3)
    x = golden["input"]
    with torch.no_grad():
        ref, ref_ctx = official.run(x, record_spikes=True)
        out, ctx = folded.run(x, record_spikes=True)
    for name, s in ref_ctx.spikes.items():
        assert torch.equal(ctx.spikes[name], s), f"folded spikes differ at {name}"
    torch.testing.assert_close(out, golden["logits_per_timestep"], atol=ATOL, rtol=0)
    with torch.no_grad():
        state, outs = None, []
        for t in range(x.shape[0]):
            o, state = folded.step(x[t], state)
            outs.append(o)
    torch.testing.assert_close(torch.stack(outs), golden["logits_per_timestep"], atol=ATOL, rtol=0)
    sparse_calls = sum(m.sparse_calls for m in folded.modules() if isinstance(m, SpikeConv2d))
    fast_calls = [r.calls for r in cpu.fast_runners(folded)]
    if fast:  # every downsampling, conv block and transformer block ran the event-driven fast path
        assert len(fast_calls) == 5 + 4 + sum(official.depths) and min(fast_calls) == 1 + x.shape[0]
        assert sparse_calls == 0
    else:
        assert not fast_calls
        assert (sparse_calls > 0) == bool(spike_conv)  # the event-driven conv was exercised


def test_folding_leaves_original_untouched(golden, official):
    before = {k: v.clone() for k, v in official.state_dict().items()}
    folded = snn.fold_model(official)
    assert folded.is_folded and not official.is_folded
    assert cpu.build(official).is_folded
    after = official.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(RuntimeError, match="folded"):
        folded.train()
    official.train()  # the unfolded model still trains
    official.eval()


def test_wrappers_prefixes_and_files(golden, tmp_path):
    sd = golden["state_dict"]
    x = golden["input"]
    wrapped = {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    m1 = snn.load_official(wrapped)
    path = tmp_path / "checkpoint-best.pth"
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 7,
                "args": argparse.Namespace(lr=1e-3, model="metaspikformer")}, path)
    m2 = snn.load_official(path)
    with torch.no_grad():
        for m in (m1, m2):
            torch.testing.assert_close(m(x), golden["logits"], atol=ATOL, rtol=0)


def test_strict_loading_rejects_incomplete(golden):
    sd = dict(golden["state_dict"])
    sd.pop("block3.0.attn.q_conv.1.weight")
    with pytest.raises(RuntimeError):
        snn.load_official(sd)
    with pytest.raises(ValueError, match="not a state dict"):
        snn.load_official({"model": "nope"})


def test_our_checkpoint_roundtrip(golden, official, tmp_path):
    path = tmp_path / "ours.pt"
    names = [f"class{i}" for i in range(official.num_classes)]
    snn.save_checkpoint(path, official, class_names=names, input_size=(64, 64))
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["class_names"] == names
    model, meta = snn.load_checkpoint(path)
    assert meta["input_size"] == [64, 64] and meta["T"] == official.T
    with torch.no_grad():
        torch.testing.assert_close(model(golden["input"]), golden["logits"], atol=ATOL, rtol=0)


def test_folded_models_are_not_saved(official, tmp_path):
    with pytest.raises(ValueError, match="unfolded"):
        snn.save_checkpoint(tmp_path / "x.pt", snn.fold_model(official))
    with pytest.raises(ValueError, match="not an eventpipe SNN checkpoint"):
        torch.save({"model": {}}, tmp_path / "y.pt")
        snn.load_checkpoint(tmp_path / "y.pt")


def _lif_reference(x_seq, v_th=1.0, tau=2.0):
    """spikingjelly MultiStepLIFNode(tau, detach_reset, decay_input, hard reset to 0), written out."""
    v = torch.zeros_like(x_seq[0])
    out = []
    for x in x_seq:
        h = v + (x - v) / tau
        s = (h >= v_th).to(x.dtype)
        v = h * (1 - s)
        out.append(s)
    return torch.stack(out)


def _with_kd_head(golden):
    g = torch.Generator().manual_seed(7)
    sd = dict(golden["state_dict"])
    sd["head_kd.weight"] = torch.randn(sd["head.weight"].shape, generator=g) * 0.5
    sd["head_kd.bias"] = torch.randn(sd["head.bias"].shape, generator=g) * 0.1
    return sd


@pytest.mark.parametrize("head_input", ["spikes", "features"])
def test_heads_from_golden_features(golden, head_input):
    """The head and the distillation head recomputed from the official code's final features
    (``golden["features"]["block4"]``), with a distillation head added to the golden weights:
    eval output = (head(.) + head_kd(LIF(token mean))) / 2, mean over T.  ``head_input="spikes"``
    feeds the head the LIF spikes (the golden vector's code); ``"features"`` the token mean before
    the LIF (BICLab's published ``x = self.head(x).mean(0)``)."""
    sd = _with_kd_head(golden)
    model = snn.load_official(sd, head_input=head_input)
    assert model.kd and model.head_input == head_input
    feat = golden["features"]["block4"].flatten(3).mean(3)  # [T, B, C]
    spikes = _lif_reference(feat)
    main = (spikes if head_input == "spikes" else feat) @ sd["head.weight"].t() + sd["head.bias"]
    kd = spikes @ sd["head_kd.weight"].t() + sd["head_kd.bias"]
    want = (main.mean(0) + kd.mean(0)) / 2
    x = golden["input"]
    with torch.no_grad():
        got = model(x)
        per_step = model(x, per_step=True)
        state, steps = None, []
        for t in range(x.shape[0]):
            o, state = model.step(x[t], state)
            steps.append(o)
        folded = cpu.build(model)(x)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    torch.testing.assert_close(per_step, (main + kd) / 2, atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.stack(steps), per_step, atol=1e-6, rtol=0)
    torch.testing.assert_close(folded, want, atol=ATOL, rtol=0)
    if head_input == "features":  # a different head: not the golden logits
        assert (got - golden["logits"]).abs().max() > 10 * ATOL
    model.train()
    with torch.no_grad():
        out, out_kd = model(x)  # training returns both heads, each averaged over T
    assert out.shape == out_kd.shape == golden["logits"].shape


def test_head_input_is_checked():
    with pytest.raises(ValueError, match="head_input"):
        snn.create_model("meta_spikeformer_tiny", head_input="tokens")


def test_time_steps_from_official_checkpoint_args(golden, tmp_path):
    sd = golden["state_dict"]
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": sd, "epoch": 1, "args": argparse.Namespace(time_steps=2, model="metaspikformer")}, path)
    assert snn.load_official(path).T == 2  # main_finetune.py: model.T = args.time_steps
    assert snn.load_official(path, T=3).T == 3  # an explicit T wins
    assert snn.load_official({"model": sd, "args": {"time_steps": 1}}).T == 1
    assert snn.load_official({"model": sd}).T == 4
    static = golden["input"][0]  # one frame as a static image: repeated T times
    with torch.no_grad():
        m = snn.load_official(path)
        torch.testing.assert_close(m(static), m(static.unsqueeze(0).repeat(2, 1, 1, 1, 1)), atol=0, rtol=0)
    with pytest.raises(ValueError, match="time_steps"):
        snn.load_official({"model": sd, "args": {"time_steps": 0}})
