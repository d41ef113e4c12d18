"""Token mixers against their formulas, using the recorded Q/K/V spikes and a float64 LIF loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snn.models.attention import SpikeDrivenSelfAttention
from snn.state import StepContext
from snn.neurons import LIFNode

from .conftest import randomize_bn
from .test_neurons import reference_lif


def _attention(mode, dim=16, heads=4, seed=0):
    torch.manual_seed(seed)
    attn = SpikeDrivenSelfAttention(dim, heads, lambda attention=False: LIFNode(v_threshold=0.5 if attention else 1.0),
                                    mode=mode)
    for name, m in attn.named_modules():
        if isinstance(m, LIFNode):
            m.state_key = name
    return randomize_bn(attn, seed).eval()


@pytest.mark.parametrize("mode", ["sdsa1", "sdsa3"])
def test_attention_neuron_input_follows_formula(mode):
    attn = _attention(mode)
    T, B, C, H, W = 4, 2, 16, 3, 5
    x = torch.randn(T, B, C, H, W) * 3
    ctx = StepContext(record_spikes=True)
    with torch.no_grad():
        out = attn(x, ctx)
    q, k, v = (ctx.spikes[n].double() for n in ("q_lif", "k_lif", "v_lif"))
    if mode == "sdsa1":
        pre = (k * v).flatten(3).sum(-1, keepdim=True)  # [T, B, C, 1] column sums
    else:
        d = C // 4
        heads = lambda s: s.flatten(3).reshape(T, B, 4, d, H * W).transpose(-1, -2)  # [T, B, h, N, d]
        y = heads(q) @ (heads(k).transpose(-1, -2) @ heads(v)) * 0.125
        pre = y.transpose(-1, -2).reshape(T, B, C, H * W)
    s_ref, _ = reference_lif(pre.numpy(), tau=2.0, vth=0.5)
    np.testing.assert_array_equal(ctx.spikes["attn_lif"].numpy(), s_ref)
    mixed = q * torch.from_numpy(s_ref)[..., None] if mode == "sdsa1" else torch.from_numpy(s_ref).reshape(T, B, C, H, W)
    with torch.no_grad():
        expected = attn.proj_conv(mixed.float().flatten(0, 1)).reshape(T, B, C, H, W)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
