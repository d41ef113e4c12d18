"""LIF and multi-spike neurons at their boundaries, hand-worked (spikingjelly semantics:
H = V + (X - V) / tau, S = H >= V_th, V = H (1 - S) hard / H - S V_th soft)."""

from __future__ import annotations

import pytest
import torch

from snn import LIFNode, MultiSpikeNode, lif_step
from snn.neurons.lif import lif_multistep, spike_fn


@pytest.mark.parametrize("fused", [True, False])
def test_membrane_exactly_at_threshold_spikes_and_just_below_does_not(fused):
    x = torch.tensor([[2.0, 1.99, 4.0]])          # H = 1.0, 0.995, 2.0 (tau 2)
    s, v = lif_multistep(x, None, fused=fused, tau=2.0, v_threshold=1.0)
    assert s.shape == (1, 3) and v.shape == (3,)
    assert s.flatten().tolist() == [1.0, 0.0, 1.0]
    assert v.tolist() == pytest.approx([0.0, 0.995, 0.0])


def test_lif_step_from_a_given_membrane():
    s, v = lif_step(torch.tensor([0.5]), torch.tensor([0.8]), tau=2.0)   # H = 0.8 + (-0.3)/2
    assert s.tolist() == [0.0] and v.tolist() == pytest.approx([0.65])
    s, v = lif_step(torch.tensor([0.5]), torch.tensor([0.8]), tau=2.0, decay_input=False)
    assert s.tolist() == [0.0] and v.tolist() == pytest.approx([0.9])   # 0.8 - 0.4 + 0.5


def test_decay_input_false_by_hand():
    s, v = lif_step(torch.tensor([0.5]), torch.tensor([0.8]), tau=2.0, decay_input=False,
                    v_threshold=0.9)
    assert s.tolist() == [1.0] and v.tolist() == [0.0]                   # H = 0.9 >= 0.9
    s, v = lif_step(torch.tensor([0.5]), torch.tensor([0.8]), tau=4.0, decay_input=False,
                    v_threshold=2.0)
    assert s.tolist() == [0.0] and v.tolist() == pytest.approx([1.1])    # 0.8 - 0.2 + 0.5


def test_soft_reset_subtracts_the_threshold():
    s, v = lif_step(torch.tensor([3.0]), None, tau=2.0, v_threshold=1.0, soft_reset=True)
    assert s.tolist() == [1.0] and v.tolist() == [0.5]                   # H = 1.5, 1.5 - 1


@pytest.mark.parametrize("tau,ok", [(1.0, False), (0.5, False), (1.000001, True), (2.0, True)])
def test_tau_must_exceed_one(tau, ok):
    if ok:
        assert LIFNode(tau=tau).tau == tau
    else:
        with pytest.raises(ValueError, match="tau"):
            LIFNode(tau=tau)


def test_spike_fn_is_heaviside_at_zero_and_its_surrogate_peaks_at_alpha_over_4():
    x = torch.tensor([-1e-6, 0.0, 1e-6], requires_grad=True)
    s = spike_fn(x, 4.0)
    assert s.tolist() == [0.0, 1.0, 1.0]
    s.sum().backward()
    assert x.grad[1].item() == pytest.approx(1.0)       # 4 * 0.5 * 0.5
    x = torch.tensor([0.0], requires_grad=True)
    spike_fn(x, 8.0).sum().backward()
    assert x.grad.item() == pytest.approx(2.0)


def test_detach_reset_changes_the_gradient():
    x = torch.tensor([3.0, 3.0], requires_grad=True)
    outs = []
    for detach in (True, False):
        xi = x.clone().detach().requires_grad_(True)
        s, v = lif_step(xi, None, tau=2.0, detach_reset=detach)
        v.sum().backward()
        outs.append(xi.grad.clone())
    # V = H (1 - S): detached, dV/dX = (1 - S) / tau = 0; attached adds -H dS/dX
    assert outs[0].tolist() == [0.0, 0.0]
    assert outs[1][0].item() < 0.0


def test_node_state_shape_and_single_step():
    n = LIFNode()
    s, st = n.single_step(torch.tensor([2.0, 0.5]))
    assert s.tolist() == [1.0, 0.0] and st.v.tolist() == [0.0, 0.25]
    s, st = n.single_step(torch.tensor([2.0, 2.0]), st)      # H = 1.0, 0.25 + 0.875
    assert s.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("x,want", [(-1.0, 0.0), (0.49, 0.0), (0.5, 0.0), (0.51, 1.0),
                                    (2.6, 3.0), (4.0, 4.0), (9.0, 4.0)])
def test_multispike_rounds_and_clamps_to_max_spikes(x, want):
    s, st = MultiSpikeNode(max_spikes=4)(torch.tensor([[x]]))
    assert s.item() == want and st is None


def test_multispike_threshold_scales_and_limits():
    s, _ = MultiSpikeNode(max_spikes=2, v_threshold=0.5)(torch.tensor([[0.4, 5.0]]))
    assert s.flatten().tolist() == [1.0, 2.0]                 # 0.8 -> 1 (not 0.4 -> 0), 10 -> 2
    assert MultiSpikeNode(max_spikes=1).max_spikes == 1
    with pytest.raises(ValueError):
        MultiSpikeNode(max_spikes=0)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("T", [1, 2, 3])
def test_multistep_keeps_the_time_axis_first(fused, T):
    x = torch.full((T, 2, 3), 2.0)
    s, v = lif_multistep(x, None, fused=fused)
    assert s.shape == (T, 2, 3) and v.shape == (2, 3)
    s, st = LIFNode()(x)
    assert s.shape == (T, 2, 3) and st.v.shape == (2, 3)
