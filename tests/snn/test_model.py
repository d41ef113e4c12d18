"""Stepping, streams, static input, heads, token mixers, errors and training (small widths)."""

from __future__ import annotations

import pytest
import torch

import snn
from snn import clone_state, merge_rows, reset_rows, select_rows
from snn.backends import cpu

from .conftest import event_input, small_model


def step_all(model, x, state=None):
    outs = []
    for t in range(x.shape[0]):
        o, state = model.step(x[t], state)
        outs.append(o)
    return torch.stack(outs), state


@pytest.mark.parametrize("kw", [{}, {"attn_mode": "sdsa1"}, {"attn_mode": "sdsa2"}, {"neuron": "multispike"},
                                {"soft_reset": True, "tau": 3.0}, {"kd": True}])
def test_stepping_equals_sequence(kw):
    model = small_model(**kw)
    x = event_input(T=4)
    with torch.no_grad():
        seq, st_seq = model.forward_sequence(x)
        stepped, st = step_all(model, x)
        folded_seq, _ = snn.fold_model(model).forward_sequence(x)
        fast_seq, _ = cpu.build(model).forward_sequence(x)
    torch.testing.assert_close(stepped, seq, atol=1e-6, rtol=0)
    torch.testing.assert_close(model(x), seq.mean(0), atol=1e-6, rtol=0)
    assert st.keys() == st_seq.keys()
    torch.testing.assert_close(folded_seq, seq, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast_seq, seq, atol=1e-4, rtol=0)


def test_rows_are_independent_streams():
    model = small_model()
    x = event_input(T=3, B=3, seed=1)
    with torch.no_grad():
        both, _ = step_all(model, x)
        for b in range(3):
            alone, _ = step_all(model, x[:, b : b + 1])
            torch.testing.assert_close(alone[:, 0], both[:, b], atol=1e-5, rtol=0)


def test_reset_one_row_and_snapshot_restore():
    model = small_model()
    x = event_input(T=5, B=2, seed=2)
    with torch.no_grad():
        _, st = step_all(model, x[:3])
        snap = clone_state(st)
        st_r = reset_rows(st, [1])
        o_r, _ = model.step(x[3], st_r)
        o_fresh, _ = model.step(x[3, 1:2], None)   # row 1 restarted from rest
        o_cont, st_after = model.step(x[3], st)
        torch.testing.assert_close(o_r[1:], o_fresh, atol=1e-5, rtol=0)
        torch.testing.assert_close(o_r[0], o_cont[0], atol=0, rtol=0)  # row 0 untouched
        # stepping does not mutate the state passed in; restoring the snapshot replays exactly
        for k in st:
            assert torch.equal(st[k].v, snap[k].v)
        o_again, _ = model.step(x[3], snap)
        assert torch.equal(o_again, o_cont)
        # a row can be moved out and written back
        sub = select_rows(st_after, [1])
        merged = merge_rows(reset_rows(st_after, [1]), [1], sub)
        for k in st_after:
            assert torch.equal(merged[k].v, st_after[k].v)
        mask = torch.tensor([True, False])
        st_m = reset_rows(st, mask)
        assert all((v.v[0] == 0).all() for v in st_m.values())


def test_static_images_are_repeated_T_times():
    model = small_model(in_channels=3, T=3)
    img = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = model(img)
        b = model(img.unsqueeze(0).repeat(3, 1, 1, 1, 1))
        c = model(img, T=2)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)


def test_distillation_head_averaged_at_eval():
    model = small_model(kd=True)
    x = event_input()
    with torch.no_grad():
        avg = model(x)
        model.train()
        model.apply(lambda m: m.eval() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) else None)
        main, kd = model(x)
    torch.testing.assert_close(avg, (main + kd) / 2, atol=1e-6, rtol=0)


def test_load_official_other_configurations():
    # static input + distillation head + other widths/classes/depths: structure inferred from keys
    src = small_model(in_channels=3, num_classes=7, kd=True, embed_dims=(16, 32, 40, 48), depths=(2, 3))
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    model = snn.load_official({"model": sd}, T=2)
    assert model.kd and model.depths == (2, 3) and model.embed_dims == (16, 32, 40, 48)
    img = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(img), src(img, T=2), atol=0, rtol=0)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(2, 32, 32), "expected static images"),
    (torch.zeros(1, 2, 3, 32, 32, 1), "expected static images"),
    (torch.zeros(3, 1, 5, 32, 32), "channels"),
    (torch.zeros(0, 1, 2, 32, 32), "empty"),
])
def test_clear_input_errors(bad, match):
    model = small_model()
    with pytest.raises(ValueError, match=match):
        model(bad)


def test_step_and_T_errors():
    model = small_model()
    with pytest.raises(ValueError, match="one frame"):
        model.step(torch.zeros(1, 1, 2, 32, 32))
    with pytest.raises(ValueError, match="T must be a positive int"):
        model(torch.zeros(1, 2, 32, 32), T=0)
    with pytest.raises(ValueError, match="T=3 frames but T=2"):
        model(torch.zeros(3, 1, 2, 32, 32), T=2)
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(3, 1, 2, 32, 32, dtype=torch.int64))
    with torch.no_grad():
        _, st = model.step(torch.zeros(2, 2, 32, 32))
        with pytest.raises(ValueError, match="state shape"):
            model.step(torch.zeros(3, 2, 32, 32), st)
        other = small_model(depths=(2, 1))
        with pytest.raises(ValueError, match="does not belong"):
            other.step(torch.zeros(2, 2, 32, 32), st)


def test_surrogate_gradients_through_stepping_and_sequence():
    model = small_model()
    model.train()
    x = event_input(T=3, B=2)
    out, _ = model.forward_sequence(x)
    out.sum().backward()
    g_seq = model.downsample1_1.encode_conv.weight.grad.clone()
    assert g_seq.abs().sum() > 0
    model.zero_grad()
    state, total = None, 0
    for t in range(3):
        o, state = model.step(x[t], state)
        total = total + o.sum()
    total.backward()
    assert model.downsample1_1.encode_conv.weight.grad.abs().sum() > 0


def test_batchnorm_statistics_over_T_times_B():
    model = small_model()
    model.train()
    bn = model.downsample1_1.encode_bn
    bn.reset_running_stats()
    bn.momentum = 1.0  # running_mean := batch mean
    x = event_input(T=3, B=2)
    model(x)
    conv = model.downsample1_1.encode_conv
    with torch.no_grad():
        y = conv(x.flatten(0, 1))
    torch.testing.assert_close(bn.running_mean, y.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)


def test_few_optimizer_steps_fit_a_tiny_batch():
    torch.manual_seed(0)
    model = snn.MetaSpikeFormer(embed_dims=(16, 32, 32, 32), depths=(1, 1), in_channels=2, num_classes=3, T=2)
    g = torch.Generator().manual_seed(0)
    rates = torch.tensor([0.1, 0.3, 0.6]).view(1, 3, 1, 1, 1)  # one event density per class
    x = (torch.rand(1, 3, 2, 16, 16, generator=g) < rates).float().repeat(2, 1, 1, 1, 1)
    y = torch.tensor([0, 1, 2])
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_forward_features_and_head_compose_to_run():
    model = small_model(seed=6)
    x = event_input(T=2, B=2, seed=6)
    with torch.no_grad():
        ref, ctx_ref = model.run(x)
        ctx = snn.StepContext()
        feat = model.forward_features(x, ctx)
        assert feat.shape == (2, 2, 64, 2, 2)  # 32x32 input, stride 16, C3 = 64
        out = model.forward_head(feat, ctx)
    assert torch.equal(out, ref)
    assert ctx.new.keys() == ctx_ref.new.keys()
    assert [name for name, _ in model.stages()] == list(snn.models.STAGES)
    assert isinstance(model.block3[0].attn, snn.models.SpikeDrivenSelfAttention)  # the token mixer
