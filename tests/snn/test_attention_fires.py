"""The SDSA token mixers against their formulas, on inputs that make the attention neuron fire.

With random inputs and BatchNorm at its defaults the attention neuron of this small
module stays silent, and a silent neuron cannot tell a column sum from a column mean or
Q from V.  Here K and V are biased to fire often (so ``sum_tokens(K * V)`` crosses the
0.5 threshold) while Q keeps a different pattern, and the test first checks that the
attention neuron fires on some entries and not on others.

The formulas (module docstring of ``snn.models.attention``; Spike-driven Transformer V1/V2):
``sdsa1``: ``Q * SN_0.5(sum_tokens(K * V))`` per channel; ``sdsa3``:
``SN_0.5(Q @ (K^T @ V) * 0.125)`` per head.  ``SN``: LIF with tau 2, hard reset to 0,
computed here in float64 by a loop written from those equations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snn.models.attention import SpikeDrivenSelfAttention
from snn.state import StepContext
from snn.neurons import LIFNode

T, B, C, H, W, HEADS = 4, 2, 16, 3, 5, 4


def lif_ref(x, vth, tau=2.0):
    """H = V + (X - V) / tau; S = H >= vth; V = H (1 - S).  ``x``: [T, ...] float64."""
    v = np.zeros(x.shape[1:])
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = (h >= vth).astype(np.float64)
        out[t] = s
        v = h * (1.0 - s)
    return out


def build(mode, seed=0):
    torch.manual_seed(seed)
    attn = SpikeDrivenSelfAttention(
        C, HEADS, lambda attention=False: LIFNode(v_threshold=0.5 if attention else 1.0),
        mode=mode)
    for name, m in attn.named_modules():
        if isinstance(m, LIFNode):
            m.state_key = name
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv, shift in ((attn.q_conv, 1.0), (attn.k_conv, 2.5), (attn.v_conv, 2.5)):
            bn = conv[1]
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.copy_(torch.rand(C, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(C, generator=g) + shift)
    return attn.eval()


def run(attn, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, C, H, W, generator=g) * 3
    ctx = StepContext(record_spikes=True)
    with torch.no_grad():
        out = attn(x, ctx)
    return out, {k: v.double() for k, v in ctx.spikes.items()}


def expected(attn, mode, s):
    q, k, v = s["q_lif"], s["k_lif"], s["v_lif"]
    if mode == "sdsa1":
        pre = (k * v).flatten(3).sum(-1)                           # [T, B, C] column sums
        a = torch.from_numpy(lif_ref(pre.numpy(), 0.5))
        mixed = q * a[..., None, None]
    else:
        d = C // HEADS
        heads = lambda z: z.flatten(3).reshape(T, B, HEADS, d, H * W).transpose(-1, -2)
        y = heads(q) @ (heads(k).transpose(-1, -2) @ heads(v)) * 0.125
        pre = y.transpose(-1, -2).reshape(T, B, C, H * W)
        a = torch.from_numpy(lif_ref(pre.numpy(), 0.5))
        mixed = a.reshape(T, B, C, H, W)
    with torch.no_grad():
        out = attn.proj_conv(mixed.float().flatten(0, 1)).reshape(T, B, C, H, W)
    return a, out


@pytest.mark.parametrize("mode", ["sdsa1", "sdsa3"])
def test_attention_neuron_fires_and_output_follows_the_formula(mode):
    attn = build(mode)
    out, s = run(attn)
    a, want = expected(attn, mode, s)
    fired = float(a.mean())
    assert 0.05 < fired < 0.95, f"attention neuron fires on {fired:.0%}: not a discriminating input"
    assert not torch.equal(s["q_lif"], s["v_lif"])
    np.testing.assert_array_equal(s["attn_lif"].reshape(a.shape).numpy(), a.numpy())
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_sdsa1_gates_q_and_sums_columns():
    """Where the channel's attention spike is 1 the mixed output is Q's spikes, and the
    column *sum* (not the mean, at most 1, never reaching 2 * 0.5 on its first step) is
    what fires the neuron."""
    attn = build("sdsa1")
    _, s = run(attn)
    q, k, v = s["q_lif"], s["k_lif"], s["v_lif"]
    col_sum = (k * v).flatten(3).sum(-1)
    assert float(col_sum[0].max()) >= 2.0   # fires at t=0: H = X / 2 >= 0.5 needs X >= 1
    assert float((k * v).flatten(3).mean(-1)[0].max()) <= 1.0
    a = s["attn_lif"].reshape(T, B, C)
    on = a.bool()
    # the channels that fired at t=0 are exactly those whose column sum reached 1
    assert torch.equal(on[0], col_sum[0] >= 1.0)
    # gating Q, not V: on fired channels, Q and V differ somewhere
    qv_differ = (q != v).flatten(3).any(-1) & on
    assert bool(qv_differ.any())


def test_sdsa2_has_no_output_neuron():
    attn = build("sdsa2")
    out, s = run(attn)
    assert "attn_lif" not in s
    q, k, v = s["q_lif"], s["k_lif"], s["v_lif"]
    d = C // HEADS
    heads = lambda z: z.flatten(3).reshape(T, B, HEADS, d, H * W).transpose(-1, -2)
    y = (heads(q) @ (heads(k).transpose(-1, -2) @ heads(v)) * 0.125)
    mixed = y.transpose(-1, -2).reshape(T, B, C, H, W)
    with torch.no_grad():
        want = attn.proj_conv(mixed.float().flatten(0, 1)).reshape(T, B, C, H, W)
    torch.testing.assert_close(out, want, atol=1e-4, rtol=1e-4)
