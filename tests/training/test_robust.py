"""Training with perturbations (``optim.noise_*``, eventpipe.training.robust; issue #13)."""

import copy
import math

import pytest
import torch

import snn
from eventpipe.errors import ConfigError
from eventpipe.training.config import OptimConfig, load_train_config
from eventpipe.training.robust import Perturbation, noise_enabled, perturbation_kl
from eventpipe.training.trainer import train

from .conftest import tiny_overrides
from .test_stream_data import stream_overrides


def tiny_model(seed=0):
    """A tiny model whose neurons spike (20-30 % in most layers) and whose logits differ:
    its initial parameters shaken by 0.3 N(0, 1) (the initial head gives zero logits)."""
    torch.manual_seed(seed)
    m = snn.create_model("meta_spikeformer_tiny", num_classes=4, T=3, in_channels=2,
                         embed_dims=(8, 16, 16, 16), depths=(1, 1), num_heads=2, mlp_ratio=1,
                         conv_mlp_ratio=1, input_size=(16, 16), v_threshold=0.5, sep_kernel=3).eval()
    with torch.no_grad():
        for q in m.parameters():
            q.add_(0.3 * torch.randn(q.shape))
    return m


def tiny_input(seed=1):
    return torch.rand(3, 2, 2, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2


def test_noise_is_off_by_default():
    o = OptimConfig()
    assert (o.noise_lif_std, o.noise_weight_std, o.noise_consistency_weight) == (0.0, 0.0, 0.0)
    assert not noise_enabled(o)


def test_hooks_leave_the_clean_forward_bit_identical():
    """With the perturbation's hooks on, ``model(x)`` is the model's own forward bit for bit
    (the noise is drawn only inside a perturbed call), before and after a perturbed call."""
    m, x = tiny_model(), tiny_input()
    with torch.no_grad():
        ref = m(x, per_step=True)
        p = Perturbation(m, lif_std=0.5, weight_std=0.01, seed=0)
        assert len(p.handles) == len(m.state_keys())   # one hook per LIF neuron
        assert torch.equal(m(x, per_step=True), ref)
        p.perturbed(x, per_step=True)
        assert torch.equal(m(x, per_step=True), ref)
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), tiny_model().state_dict().values()))
        p.close()
        assert not p.handles


@pytest.mark.parametrize("lif, w", [(0.2, 0.0), (0.0, 0.01)])
def test_each_noise_perturbs_and_is_seeded(lif, w):
    """Each noise alone changes the logits; the same seed draws the same noise, another seed other noise."""
    m, x = tiny_model(), tiny_input()
    with torch.no_grad():
        clean = m(x, per_step=True)
        a1 = Perturbation(m, lif_std=lif, weight_std=w, seed=5)
        out1, out1b = a1(x, per_step=True), a1(x, per_step=True)   # fresh draws per call
        a1.close()
        a2 = Perturbation(m, lif_std=lif, weight_std=w, seed=5)
        out2 = a2(x, per_step=True)
        a2.close()
        b = Perturbation(m, lif_std=lif, weight_std=w, seed=6)
        out3 = b(x, per_step=True)
        b.close()
    assert not torch.equal(out1, clean)
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3)
    assert not torch.equal(out1, out1b)


def test_weight_noise_is_relative_gaussian_noise_on_every_parameter():
    """The perturbed forward equals the forward of a copy whose parameters were multiplied by
    ``1 + std * N(0, 1)`` drawn from the same seeded generator in parameter order."""
    m, x = tiny_model(), tiny_input()
    std = 0.003
    ref = copy.deepcopy(m)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for q in ref.parameters():
            q.mul_(1 + std * torch.randn(q.shape, generator=g))
        p = Perturbation(m, weight_std=std, seed=11)
        assert torch.allclose(p(x, per_step=True), ref(x, per_step=True), rtol=0, atol=1e-6)


def test_lif_noise_is_added_to_the_input_in_thresholds():
    """A lone LIF neuron (tau 2, threshold 0.5, from rest): the perturbed input is
    ``x + std * v_th * n``, so it spikes where ``(x + 0.05 n) / 2 >= 0.5``."""
    lif = snn.neurons.LIFNode(2.0, 0.5)
    x = torch.full((1, 1000), 0.98)   # 0.02 under the threshold input of 1.0
    g = torch.Generator().manual_seed(3)
    n = torch.randn(x.shape, generator=g)
    p = Perturbation(lif, lif_std=0.1, seed=3)
    s, _ = p(x)
    clean, _ = lif(x)
    assert clean.sum() == 0
    assert torch.equal(s, ((x + 0.05 * n) / 2 >= 0.5).float())
    assert 100 < s.sum() < 500   # P(n >= 0.4) = 0.34


def test_the_perturbed_pass_carries_the_gradient_to_the_clean_weights():
    m, x = tiny_model(), tiny_input()
    m.train()
    p = Perturbation(m, lif_std=0.05, weight_std=0.01, seed=0)
    perturbation_kl(m(x, per_step=True).flatten(0, 1), p(x, per_step=True).flatten(0, 1)).backward()
    grads = [q.grad for q in m.parameters()]
    assert all(gr is not None for gr in grads) and any(float(gr.abs().sum()) > 0 for gr in grads)


def test_kl_by_hand():
    a = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert float(perturbation_kl(a, a)) == 0.0
    # row 0: 0; row 1: p = (3/4, 1/4), q = (1/2, 1/2): 3/4 ln(3/2) + 1/4 ln(1/2)
    want = (0.75 * math.log(1.5) + 0.25 * math.log(0.5)) / 2
    assert float(perturbation_kl(a, b)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("key, value, words", [
    ("optim.noise_lif_std", -0.1, ">= 0"),
    ("optim.noise_weight_std", float("nan"), "finite"),
    ("optim.noise_weight_std", 1.5, "< 1"),
    ("optim.noise_consistency_weight", -1.0, ">= 0"),
    ("optim.noise_consistency_weight", 1.0, "needs a noise"),
])
def test_bad_noise_settings_name_the_key(tmp_path, key, value, words):
    ov = tiny_overrides(tmp_path) + [f"{key}={value}" if not math.isnan(value) else f"{key}=nan"]
    with pytest.raises(ConfigError) as e:
        load_train_config(None, ov)
    assert key in str(e.value) and words in str(e.value)


def test_a_string_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="noise_lif_std"):
        load_train_config(None, tiny_overrides(tmp_path) + ['optim.noise_lif_std="lots"'])


def _weights(summary):
    return torch.cat([q.detach().flatten() for q in summary["model"].parameters()])


def test_training_with_consistency_is_reproducible_and_differs_from_clean(tmp_path):
    """A stream fine-tune with the perturbed consistency pass: two runs from the same seed give
    bit-identical weights; the clean run (the defaults) gives other weights."""
    def run(name, **noise):
        ov = stream_overrides(tmp_path, **{"out_dir": str(tmp_path / name), "max_steps": 2,
                                           "optim.lr": 1e-2, **noise})
        return train(load_train_config(None, ov), log=lambda m: None)

    noise = {"optim.noise_lif_std": 0.05, "optim.noise_weight_std": 0.01,
             "optim.noise_consistency_weight": 5.0}
    a, b, clean = run("a", **noise), run("b", **noise), run("clean")
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.equal(_weights(a), _weights(clean))
    assert "perturbed training" in (tmp_path / "a" / "train.log").read_text()
    # the hooks are gone from the returned model: its forward is clean
    assert not any(m._forward_pre_hooks for m in a["model"].modules())


def test_noise_injection_changes_training(tmp_path):
    def run(name, **noise):
        ov = tiny_overrides(tmp_path, **{"out_dir": str(tmp_path / name), "max_steps": 2,
                                         "optim.lr": 1e-2, **noise})
        return train(load_train_config(None, ov), log=lambda m: None)

    inj, clean = run("inj", **{"optim.noise_lif_std": 0.1}), run("clean")
    assert not torch.equal(_weights(inj), _weights(clean))


def test_perturbed_training_is_refused_under_torchrun(tmp_path, monkeypatch):
    """Several processes are refused before any process group starts (the noise is drawn per process)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = load_train_config(None, tiny_overrides(tmp_path) + ["optim.noise_weight_std=0.001"])
    with pytest.raises(ValueError, match="optim.noise_"):
        train(cfg, log=lambda m: None)
