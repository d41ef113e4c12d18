"""The CPU backend's event-driven fast path (snn/backends/cpu) against the ordinary folded path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snn.backends import cpu
from snn.backends.cpu import dense_kernels, kernels, layout
from snn.backends.cpu import runners as rn

from .conftest import event_input, small_model


def _fast_calls(model):
    return sum(r.calls for r in cpu.fast_runners(model))


def _runners(model):
    return cpu.fast_runners(model)


def _spikes_from(x, cs):
    """Active lists of a 0/1 map x [T, B, P, C] via the LIF kernel (v = 0, tau 2, threshold 1)."""
    T, B, P, C = x.shape
    nb = -(-C // cs)
    idx = np.empty((T, B, P, C), np.int16)
    off = np.empty((T, B, P, nb + 1), np.int32)
    v = np.zeros((B, P, C), np.float32)
    kernels.lif_csr(np.ascontiguousarray(2 * x[:1]), v, np.empty_like(v), np.float32(2), np.float32(1), False,
                    True, cs, idx[:1], off[:1], layout.no_f32(), False, 2)
    for t in range(1, T):  # frames are independent here: run each from rest
        kernels.lif_csr(np.ascontiguousarray(2 * x[t:t + 1]), v, np.empty_like(v), np.float32(2), np.float32(1),
                        False, True, cs, idx[t:t + 1], off[t:t + 1], layout.no_f32(), False, 2)
    return idx, off


@pytest.mark.parametrize("co", [20, 32])  # stride 1: the "flat" kernel (taps reversed, Cp == Co, aligned or not)
@pytest.mark.parametrize("k,stride,pad,block", [(3, 1, 1, 1 << 30), (3, 2, 1, 1 << 30), (7, 2, 3, 1 << 30),
                                                 (1, 1, 0, 1 << 30), (3, 1, 1, 2000), (5, 1, 1, 1 << 30)])
def test_gather_conv_equals_conv2d(k, stride, pad, block, co, monkeypatch):
    monkeypatch.setattr(layout, "WEIGHT_BLOCK_BYTES", block)  # small: several input-channel blocks
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(11, co, k, stride, pad)
    T, B, H, W = 2, 2, 9, 7
    x = (torch.rand(T, B, H, W, 11) < 0.3).float()
    g = layout.Gather(conv, stride, pad)
    assert (g.nb > 1) == (block == 2000)
    cp = co if stride == 1 else 32  # stride 1: flat, unpadded; else taps padded to 16 floats
    assert g.w3.shape == (k * 11 + 1, k, cp) and not g.w3[-1].any()  # last row: zeros
    assert g.w3.ctypes.data % 64 == 0
    idx, off = _spikes_from(x.reshape(T, B, H * W, 11).numpy(), g.cs)
    for nth in (1, 2):  # serial and parallel kernels
        out, _ = rn.run_gather(g, layout.Spikes(idx, off, H, W, g.cs), T, B, nth=nth)
        with torch.no_grad():
            ref = conv(x.flatten(0, 1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        torch.testing.assert_close(torch.from_numpy(out).view(ref.shape), ref, atol=1e-5, rtol=1e-5)



@pytest.mark.parametrize("C,cs", [(37, 37), (37, 8), (40, 12), (5, 5), (64, 24)])
def test_lif_active_lists_equal_numpy(C, cs):
    # the word-at-a-time compaction: every active channel, ascending, split at blocks of cs channels
    rng = np.random.default_rng(C * 100 + cs)
    T, B, P = 2, 2, 13
    x = rng.normal(0.8, 1.2, (T, B, P, C)).astype(np.float32)
    x[0, 0, 0] = 5.0  # a pixel with every channel on, and one with none
    x[0, 0, 1] = -5.0
    v = np.zeros((B, P, C), np.float32)
    nb = -(-C // cs)
    idx = np.full((T, B, P, C), -1, np.int16)
    off = np.empty((T, B, P, nb + 1), np.int32)
    spk = np.empty((T, B, P, C), np.float32)
    kernels.lif_csr(x, v, np.empty_like(v), np.float32(2), np.float32(1), False, True, cs, idx, off, spk, True, 1)
    assert spk[0, 0, 0].all() and not spk[0, 0, 1].any()
    for t in range(T):
        for b in range(B):
            for p in range(P):
                on = np.flatnonzero(spk[t, b, p])
                assert idx[t, b, p, :off[t, b, p, nb]].tolist() == on.tolist()
                for k in range(nb + 1):
                    assert off[t, b, p, k] == np.count_nonzero(on < k * cs)


def test_sdsa3_kernel_equals_formula():
    # LIF q/k/v -> SN_0.5(Q (K^T V) * scale) per head, T = 3 steps, batch 2, membranes carried
    # (scale 0.25 and high input rates so that the attention neuron fires about half the time)
    rng = np.random.default_rng(7)
    T, B, H, W, C, heads = 3, 2, 3, 4, 24, 4
    P, d = H * W, C // heads
    q, k, v = (rng.normal(1.8, 1.0, (T, B, P, C)).astype(np.float32) for _ in range(3))
    v0 = [rng.normal(0, 0.3, (B, P, C)).astype(np.float32) for _ in range(4)]
    outs = [np.empty((B, P, C), np.float32) for _ in range(4)]
    lif = (np.float32(2.0), np.float32(1.0), False, True)
    att = (np.float32(2.0), np.float32(0.5), False, True)
    cs = 10
    idx = np.empty((T, B, P, C), np.int16)
    off = np.empty((T, B, P, 4), np.int32)
    rec = [np.empty((T, B, P, C), np.float32) for _ in range(4)]
    dense_kernels.sdsa3_lif(q, k, v, v0[0], outs[0], v0[1], outs[1], v0[2], outs[2], lif, lif, lif, heads,
                            np.float32(0.25), v0[3], outs[3], att, cs, idx, off, True, *rec)

    def lif_seq(x, v, vth):  # float32, decay_input, hard reset
        s = np.empty_like(x)
        for t in range(T):
            h = v + (x[t] - v) / np.float32(2.0)
            s[t] = h >= vth
            v = np.where(h >= vth, np.float32(0), h).astype(np.float32)
        return s, v

    sq, vq = lif_seq(q, v0[0], 1.0)
    sk, vk = lif_seq(k, v0[1], 1.0)
    sv, vv = lif_seq(v, v0[2], 1.0)
    qh, kh, vh = (torch.from_numpy(a).view(T * B, P, heads, d).transpose(1, 2) for a in (sq, sk, sv))
    y = (qh @ (kh.transpose(-2, -1) @ vh) * 0.25).transpose(1, 2).reshape(T, B, P, C).numpy()
    sa, va = lif_seq(y, v0[3], 0.5)
    for got, want in zip(rec, (sq, sk, sv, sa)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(outs, (vq, vk, vv, va)):
        np.testing.assert_array_equal(got, want)
    assert 0.05 < sa.mean() < 0.95  # the check is not vacuous
    for t in range(T):
        for b in range(B):
            for p in range(P):
                assert idx[t, b, p, :off[t, b, p, -1]].tolist() == np.flatnonzero(sa[t, b, p]).tolist()

def test_bf16_weight_bits_round_to_nearest_even():
    x = torch.randn(1000) * 10
    x[:4] = torch.tensor([1.0, -2.5, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8])  # ties: to even
    ref = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(layout.to_bf16_bits(x.numpy()), ref)
    # widening back (the kernels' weight load): torch's bf16 -> float32 values
    back = x.to(torch.bfloat16).float().numpy()
    assert all(kernels._ld(ref, i) == back[i] for i in range(0, 1000, 37))
    assert kernels._ld(back, 3) == back[3] and isinstance(kernels._ld(back, 3), np.float32)


def test_depthwise_and_value_conv_equal_torch():
    torch.manual_seed(1)
    x = (torch.rand(2, 10, 9, 6) < 0.3).float()  # [N, H, W, C]
    for k in (3, 5, 7):
        w = torch.randn(6, 1, k, k)
        out = np.empty((2, 10, 9, 7), np.float32)
        dense_kernels.depthwise(x.numpy(), w[:, 0].permute(1, 2, 0).contiguous().numpy(), out, True)
        ref = F.conv2d(x.permute(0, 3, 1, 2), w, padding=k // 2, groups=6).permute(0, 2, 3, 1)
        torch.testing.assert_close(torch.from_numpy(out[..., :6]), ref, atol=1e-5, rtol=1e-5)
        assert (out[..., 6] == 1).all()
    ev = torch.poisson(torch.full((3, 13, 12, 2), 0.2))  # counts > 1 included
    for co, stride, pad, shape in ((8, 2, 3, (3, 7, 6, 8)), (16, 1, 3, (3, 13, 12, 16))):  # 16: taps reversed
        conv = torch.nn.Conv2d(2, co, 7, stride, pad)
        g = layout.Gather(conv, stride, pad)
        out = np.empty(shape, np.float32)
        kernels.dense_input_conv(ev.numpy(), g.w3, g.bias, 7, stride, pad, out)
        with torch.no_grad():
            ref = conv(ev.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        torch.testing.assert_close(torch.from_numpy(out), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"soft_reset": True, "tau": 3.0}, {"decay_input": False}, {"kd": True},
                                {"library_dw": True}])
def test_fast_path_equals_folded_path(kw, monkeypatch):
    threads = None
    if kw.pop("library_dw", False):  # the SepConv depthwise through the library conv at every map size
        monkeypatch.setattr(rn, "DW_LIBRARY_PIXELS", 1)
        threads = 1  # (used single-threaded only)
    model = small_model(**kw)
    fast, slow = cpu.build(model, threads=threads), cpu.build(model, fast=False)
    assert len(_runners(fast)) == 5 + 4 + 2 and not _runners(slow)
    x = event_input(T=3, B=2)
    with torch.no_grad():
        ref, ref_ctx = slow.run(x, record_spikes=True, record_features=True)
        out, ctx = fast.run(x, record_spikes=True, record_features=True)
    assert _fast_calls(fast) == 11
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    assert ctx.spikes.keys() == ref_ctx.spikes.keys()
    flips = sum((ctx.spikes[k] != s).sum().item() for k, s in ref_ctx.spikes.items())
    total = sum(s.numel() for s in ref_ctx.spikes.values())
    assert flips <= 1e-4 * total  # summation order only; in practice 0
    for k, f in ref_ctx.features.items():
        assert ctx.features[k].shape == f.shape
        torch.testing.assert_close(ctx.features[k], f, atol=1e-4, rtol=0)
    for k, st in ref_ctx.new.items():
        assert ctx.new[k].v.shape == st.v.shape
        torch.testing.assert_close(ctx.new[k].v, st.v, atol=1e-4, rtol=0)


def test_fast_stepping_equals_sequence_and_states_interchange():
    model = small_model(seed=3)
    fast, slow = cpu.build(model), cpu.build(model, fast=False)
    x = event_input(T=4, B=2, seed=5)
    with torch.no_grad():
        seq, st_seq = fast.forward_sequence(x)
        outs, st = [], None
        for t in range(4):
            o, st = fast.step(x[t], st)
            outs.append(o)
        torch.testing.assert_close(torch.stack(outs), seq, atol=1e-5, rtol=0)
        for k in st_seq:
            torch.testing.assert_close(st[k].v, st_seq[k].v, atol=1e-5, rtol=0)
        # a state written by the fast path (channels-last memory) continues on the ordinary path
        # and the other way round
        _, st_f = fast.forward_sequence(x[:2])
        _, st_s = slow.forward_sequence(x[:2])
        a, _ = slow.forward_sequence(x[2:], st_f)
        b, _ = fast.forward_sequence(x[2:], st_s)
        ref, _ = slow.forward_sequence(x)
        torch.testing.assert_close(a, ref[2:], atol=1e-4, rtol=0)
        torch.testing.assert_close(b, ref[2:], atol=1e-4, rtol=0)
        # the state passed in is not modified
        before = {k: v.v.clone() for k, v in st_f.items()}
        fast.step(x[2], st_f)
        assert all(torch.equal(before[k], st_f[k].v) for k in before)


def test_fallbacks_and_errors():
    x = event_input(T=2, B=1)
    # sdsa1 blocks take the ordinary path; the convolution stages stay fast
    m = small_model(attn_mode="sdsa1")
    fast = cpu.build(m)
    assert len(_runners(fast)) == 5 + 4
    with torch.no_grad():
        torch.testing.assert_close(fast.forward_sequence(x)[0], m.forward_sequence(x)[0], atol=1e-4, rtol=0)
    # integer neurons, dense RepConv folding: no fast path
    assert not _runners(cpu.build(small_model(neuron="multispike")))
    assert not _runners(cpu.build(small_model(), repconv="dense"))
    # float64 input: the ordinary folded path
    m = small_model()
    fast = cpu.build(m).double()
    with torch.no_grad():
        fast.step(x[0].double(), None)
    assert _fast_calls(fast) == 0
    # a state of the wrong shape is refused as on the ordinary path
    fast = cpu.build(m)
    with torch.no_grad():
        _, st = fast.step(x[0], None)
        with pytest.raises(ValueError, match="state shape"):
            fast.step(torch.cat([x[0], x[0]]), st)


def test_static_images_take_the_dense_stem():
    model = small_model()
    fast = cpu.build(model)
    img = torch.rand(2, 2, 32, 32)  # dense input: the library conv for the first layer
    with torch.no_grad():
        torch.testing.assert_close(fast(img), model(img), atol=1e-4, rtol=0)
    assert _fast_calls(fast) == 11


def test_bf16_weights_option():
    model = small_model(seed=2)
    x = event_input(T=3, B=2)
    exact, bf16 = cpu.build(model), cpu.build(model, weights="bf16")
    assert all(r.g.w3.dtype == np.uint16 for r in _runners(bf16) if hasattr(r, "g"))
    with torch.no_grad():
        a, ca = exact.run(x, record_spikes=True)
        b, cb = bf16.run(x, record_spikes=True)
    agree = sum((ca.spikes[k] == s).sum().item() for k, s in cb.spikes.items())
    total = sum(s.numel() for s in cb.spikes.values())
    assert agree >= 0.9 * total  # reduced precision: close, not exact
    # the network is mostly silent: the spikes themselves must agree, not only the silence
    fired = sum(ca.spikes[k].sum().item() for k in cb.spikes)
    both = sum((ca.spikes[k] * s).sum().item() for k, s in cb.spikes.items())
    assert fired > 0 and both >= 0.9 * fired
    scale = float(a.abs().max())  # logits are ~0.1 here: a tolerance relative to them
    assert scale > 0
    torch.testing.assert_close(b, a, atol=0.1 * scale, rtol=0)
    assert torch.equal(b.argmax(-1), a.argmax(-1))
    with pytest.raises(ValueError, match="weights"):
        cpu.build(model, weights="int8")
