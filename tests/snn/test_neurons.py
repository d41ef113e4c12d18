"""LIF neuron semantics against hand-computed values and an independent float64 loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snn import LIFNode, LIFState, MultiSpikeNode, lif_step


def reference_lif(x, tau=2.0, vth=1.0, soft=False, decay_input=True):
    """Straightforward numpy float64 LIF (spikingjelly semantics, v_reset = 0)."""
    x = np.asarray(x, dtype=np.float64)
    v = np.zeros(x.shape[1:])
    spikes = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau if decay_input else v - v / tau + x[t]
        s = (h >= vth).astype(np.float64)
        v = h - s * vth if soft else h * (1 - s)
        spikes.append(s)
    return np.stack(spikes), v


def test_hand_computed_sequence():
    # H1 = 0.75 (no spike), H2 = 0.75 + 0.375 = 1.125 (spike, reset to 0), H3 = 0.1
    x = torch.tensor([[1.5], [1.5], [0.2]])
    s, st = LIFNode()(x)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0]
    assert st.v.item() == pytest.approx(0.1)


def test_attention_threshold_half():
    s, _ = LIFNode(v_threshold=0.5)(torch.tensor([[1.0], [0.0]]))
    assert s.flatten().tolist() == [1.0, 0.0]  # H = 0.5 >= 0.5


@pytest.mark.parametrize("soft,decay_input,tau,vth", [(False, True, 2.0, 1.0), (True, True, 3.0, 0.7),
                                                      (False, False, 2.0, 1.0), (True, False, 1.5, 0.5)])
def test_matches_reference_loop(soft, decay_input, tau, vth):
    torch.manual_seed(0)
    x = torch.randn(7, 3, 5, dtype=torch.float64) * 1.5
    s, st = LIFNode(tau, vth, soft_reset=soft, decay_input=decay_input)(x)
    rs, rv = reference_lif(x.numpy(), tau, vth, soft, decay_input)
    np.testing.assert_array_equal(s.numpy(), rs)
    np.testing.assert_allclose(st.v.numpy(), rv, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 6), n=st.integers(1, 8), seed=st.integers(0, 1000))
def test_multistep_equals_stepping(T, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, 2, n, generator=g) * 2
    node = LIFNode()
    s_seq, st_seq = node(x)
    st = None
    for t in range(T):
        s_t, st = node.single_step(x[t], st)
        assert torch.equal(s_t, s_seq[t])
    assert torch.equal(st.v, st_seq.v)


def test_state_none_is_rest_and_split_runs_continue():
    x = torch.randn(6, 4) * 2
    node = LIFNode()
    s_all, st_all = node(x)
    s_a, st_a = node(x[:2], LIFState(torch.zeros(4)))
    s_b, st_b = node(x[2:], st_a)
    assert torch.equal(torch.cat([s_a, s_b]), s_all)
    assert torch.equal(st_b.v, st_all.v)


def test_surrogate_gradient_sigmoid_alpha4():
    # d spike / d x at H == V_th: alpha * sig(0) * (1 - sig(0)) / tau = 4 * 0.25 / 2
    x = torch.tensor([2.0], requires_grad=True)
    s, _ = lif_step(x, None)
    s.sum().backward()
    assert s.item() == 1.0
    assert x.grad.item() == pytest.approx(0.5)


def test_reset_is_detached():
    # a spike at t=0 resets V; with the reset detached no gradient flows from S[1] back to X[0]
    x = torch.tensor([[3.0], [1.0]], requires_grad=True)
    s, _ = LIFNode()(x)
    s[1].sum().backward()
    assert x.grad[0].item() == 0.0
    x2 = torch.tensor([[3.0], [1.0]], requires_grad=True)
    s2, _ = LIFNode(detach_reset=False)(x2)
    s2[1].sum().backward()
    assert x2.grad[0].item() != 0.0


def test_state_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match="state shape"):
        LIFNode()(torch.zeros(2, 3, 4), LIFState(torch.zeros(5, 4)))


def test_multispike_round_clamp_ste():
    x = torch.tensor([[-1.0, 0.4, 0.6, 2.5, 9.0]], requires_grad=True)
    s, st = MultiSpikeNode(max_spikes=4)(x)
    assert st is None
    assert s.tolist() == [[0.0, 0.0, 1.0, 2.0, 4.0]]
    s.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("soft,decay_input,tau,vth", [(False, True, 2.0, 1.0), (True, True, 3.0, 0.7),
                                                      (False, False, 1.7, 0.5)])
def test_fused_inference_kernel_is_bit_identical(dtype, soft, decay_input, tau, vth):
    from snn.neurons.lif import lif_multistep

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(5, 4, 33, generator=g) * 1.5).to(dtype)
    v0 = (torch.randn(4, 33, generator=g)).to(dtype)
    kw = dict(tau=tau, v_threshold=vth, soft_reset=soft, decay_input=decay_input)
    for v in (None, v0):
        with torch.no_grad():
            s_f, v_f = lif_multistep(x, v, fused=True, **kw)
            s_t, v_t = lif_multistep(x, v, fused=False, **kw)
        assert s_f.dtype == dtype and v_f.dtype == dtype
        assert torch.equal(s_f, s_t)
        assert torch.equal(v_f, v_t)
