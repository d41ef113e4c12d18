"""The torch twin of the chip (fake quantisation) computes the reference's integers exactly."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import snn
import snn.chip
from snn.backends.chip.simulate import EXACT, ChipSim, live_weights
from snn.backends.chip.lower import lower

from .programs import random_program, random_state, small_model, with_trained_batchnorms

pytestmark = pytest.mark.timeout(600)


def _compare(prog, frames, state=None):
    sim = ChipSim(prog)
    ref_state = state
    sim_state = None if state is None else {k: torch.from_numpy(v.astype(np.float64).transpose(0, 3, 1, 2))
                                            for k, v in state.items()}
    with torch.no_grad():
        for f in frames:
            lr, ref_state, _ = snn.chip.reference_step(prog, f, ref_state)
            ls, sim_state, _ = sim.step(torch.from_numpy(np.asarray(f, np.int64)), sim_state)
            assert np.array_equal(ls.numpy().astype(np.int64), lr)
            for k in ref_state:
                assert np.array_equal(sim_state[k].numpy().transpose(0, 2, 3, 1), ref_state[k].astype(np.float64)), k


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rounding=st.sampled_from(["floor", "half_up"]), big=st.booleans(),
       signed=st.booleans())
def test_twin_equals_reference_on_random_programs(seed, rounding, big, signed):
    """``signed``: weight exponents of both signs (left shifts: ``x * 2^-k``), membranes up to 32 bits."""
    rng = np.random.default_rng(seed)
    prog = random_program(rng, rounding=rounding, big=big, signed=signed,
                          membrane_bits=int(rng.integers(8, 33 if signed else 17)),
                          accumulator_bits=int(rng.choice([16, 24, 32])))
    c, h, w = prog.input_shape
    frames = rng.integers(-2, 40, (3, 2, c, h, w))        # beyond the clip and negative, as the executor's tests
    _compare(prog, frames, random_state(rng, prog, 2) if rng.random() < 0.5 else None)


@pytest.mark.parametrize("membrane_bits", [16, 32])
def test_twin_equals_reference_with_left_shifts(membrane_bits):
    """Weight exponents of both signs on every conv (left shifts up to 6), big weights, biases and
    thresholds (saturations after the left shifts), membranes of 16 and 32 bits."""
    rng = np.random.default_rng(21)
    prog = random_program(rng, signed=True, big=True, membrane_bits=membrane_bits, accumulator_bits=24)
    assert min(int(op.arrays["shift"].min()) for op in prog.ops if op.kind == "conv") < 0
    c, h, w = prog.input_shape
    frames = rng.integers(0, 40, (3, 2, c, h, w))
    _compare(prog, frames, random_state(rng, prog, 2))
    assert sum(snn.chip.reference_step(prog, f)[2].total["saturations"] for f in frames) > 0


def test_twin_catches_a_wrong_rounding():
    """The comparison can fail: the same program with the other rounding mode differs somewhere."""
    rng = np.random.default_rng(3)
    prog = random_program(rng, rounding="floor")
    c, h, w = prog.input_shape
    frames = rng.integers(0, 30, (4, 2, c, h, w))
    import dataclasses

    other = dataclasses.replace(prog.profile, numerics=dataclasses.replace(prog.profile.numerics, rounding="half_up"))
    sim = ChipSim(snn.chip.Program(prog.ops, prog.buffers, prog.output, 1.0, other, prog.meta))
    s1 = s2 = None
    differ = False
    with torch.no_grad():
        for f in frames:
            lr, s1, _ = snn.chip.reference_step(prog, f, s1)
            ls, s2, _ = sim.step(torch.from_numpy(f.astype(np.int64)), s2)
            differ |= not np.array_equal(ls.numpy().astype(np.int64), lr)
            differ |= any(not np.array_equal(s2[k].numpy().transpose(0, 2, 3, 1), s1[k]) for k in s1)
    assert differ


small = small_model


def _calibrated_small():
    model = with_trained_batchnorms(small())
    rng = np.random.default_rng(0)
    frames = rng.poisson(1.5, (2, 3, 2, 16, 16)).astype(np.int32)
    enc = {"norm": "log1p", "scale": 0.25, "clip": 255}
    prog = snn.chip.compile(model, input_size=(16, 16), encoding=enc, calibration=[frames])
    return model, prog, frames


def test_live_weights_quantise_to_the_program():
    """Quantised live from the float model's parameters, the twin's integers are the program's."""
    model, prog, frames = _calibrated_small()
    graph = lower(model, (16, 16))
    live = live_weights(model)
    convs = [op for op in graph.ops if op.kind == "conv"]
    assert sorted(live) == sorted(op.name for op in convs)
    for op in convs:
        w, b = live[op.name]()
        assert np.array_equal(w.detach().numpy(), op.arrays["weight"]), op.name
        assert np.array_equal(b.detach().numpy(), op.arrays["bias"]), op.name
    sim = ChipSim(prog, model)
    for op in prog.ops:
        if op.kind == "conv":
            wq, bq, k = sim.quantised(op)
            assert np.array_equal(wq.detach().numpy(), op.arrays["weight"]), op.name
            assert np.array_equal(bq.detach().numpy(), op.arrays["bias"]), op.name
    # and stepping with live weights is the reference, step by step
    s1 = s2 = None
    with torch.no_grad():
        for f in frames:
            lr, s1, _ = snn.chip.reference_step(prog, f, s1)
            ls, s2, _ = sim.step(torch.from_numpy(f.astype(np.int64)), s2)
            assert np.array_equal(ls.numpy().astype(np.int64), lr)


def test_gradients_reach_every_parameter_through_the_twin():
    model, prog, frames = _calibrated_small()
    sim = ChipSim(prog, model)
    logits, _ = sim.run(torch.from_numpy(frames.astype(np.int64)))
    (logits.sum(0).float() * prog.logit_scale).logsumexp(1).sum().backward()
    trained = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    # every conv / BN / head parameter upstream of a spike gets a gradient (the straight-through path)
    assert any(n.startswith("downsample1_1") for n in trained)
    assert any(n.startswith("block4") for n in trained)
    assert any(n.startswith("head") for n in trained)


def test_exact_switches_leave_roundings_out():
    """With every rounding left out the twin is the float model (labels and near-equal logits)."""
    model, prog, frames = _calibrated_small()
    sim = ChipSim(prog, model, exact=EXACT)
    from snn.backends.chip.compile import normalise

    with torch.no_grad():
        q, _ = sim.run(torch.from_numpy(frames.astype(np.int64)))
        f, _ = model.run(normalise(frames, prog.meta["encoding"]))
    np.testing.assert_allclose(q.numpy() * prog.logit_scale, f.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="unknown rounding"):
        ChipSim(prog, model, exact=("weight",))


def test_straight_through_roundings_by_hand():
    """The twin's roundings: forward the integer op, backward the identity of the unrounded map
    (straight-through): round(2.5) = 2 (half to even, as torch), gradient 1; ``x >> 2`` floors
    (-3 >> 2 = -1, 7 >> 2 = 1; half-up: (-3 + 2) >> 2 = -1, (7 + 2) >> 2 = 2) with gradient 1/4; saturation to 4 bits
    clamps to [-8, 7] and still passes the gradient."""
    import torch

    from snn.backends.chip.simulate import round_ste, saturate, shr

    x = torch.tensor([2.5, -1.4, 0.6], dtype=torch.float64, requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [2.0, -1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    v = torch.tensor([-3.0, 7.0], dtype=torch.float64, requires_grad=True)
    f = shr(v, torch.tensor(2), half_up=False)
    assert f.tolist() == [-1.0, 1.0]
    assert shr(v.detach(), torch.tensor(2), half_up=True).tolist() == [-1.0, 2.0]
    f.sum().backward()
    assert v.grad.tolist() == [0.25, 0.25]
    w = torch.tensor([-20.0, 3.0, 9.0], dtype=torch.float64, requires_grad=True)
    s = saturate(w, 4)
    assert s.tolist() == [-8.0, 3.0, 7.0]
    s.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0]
