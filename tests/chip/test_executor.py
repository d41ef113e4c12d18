"""The event-driven executor equals the dense int64 reference bit for bit."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn.backends.chip.executor import Executor
from snn.backends.chip.reference import reference_step

from .programs import random_program, random_state

pytestmark = pytest.mark.timeout(600)


def _same(program, frames, state, record=True, threads=1):
    ex = Executor(program, threads=threads)
    s_ref = s_ex = state
    sats = 0
    for f in frames:
        l1, s_ref, st1 = reference_step(program, f, s_ref, record=record)
        l2, s_ex, st2 = ex.step(f, s_ex, record=record)
        assert l1.dtype == l2.dtype == np.int64
        np.testing.assert_array_equal(l1, l2)
        assert set(s_ref) == set(s_ex)
        for k in s_ref:
            assert s_ref[k].dtype == s_ex[k].dtype
            np.testing.assert_array_equal(s_ref[k], s_ex[k], err_msg=k)
        for k in st1.record:
            np.testing.assert_array_equal(st1.record[k], st2.record[k], err_msg=k)
        np.testing.assert_array_equal(st1.counts, st2.counts)
        sats += st1.total["saturations"]
    return sats


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), weight_bits=st.integers(4, 8), membrane_bits=st.sampled_from([8, 12, 16]),
       accumulator_bits=st.sampled_from([16, 20, 32]), rounding=st.sampled_from(["floor", "half_up"]),
       attention=st.booleans(), depthwise=st.booleans(), big=st.booleans(), stride=st.sampled_from([1, 2]),
       batch=st.integers(1, 3), warm=st.booleans())
def test_random_programs(seed, weight_bits, membrane_bits, accumulator_bits, rounding, attention, depthwise, big,
                         stride, batch, warm):
    rng = np.random.default_rng(seed)
    prog = random_program(rng, weight_bits=weight_bits, membrane_bits=membrane_bits,
                          accumulator_bits=accumulator_bits, rounding=rounding, attention=attention,
                          depthwise=depthwise, big=big, stride=stride, hw=tuple(rng.integers(3, 8, 2)),
                          channels=int(rng.choice([2, 4, 6])), heads=int(rng.choice([1, 2])))
    clip = prog.ops[0].attrs["clip"]
    shape = (batch,) + prog.input_shape
    # counts beyond the clip and negative ones (clamped and counted), mostly zeros (events are sparse)
    frames = [np.where(rng.random(shape) < 0.4, rng.integers(-2, clip + 8, shape), 0) for _ in range(3)]
    state = random_state(rng, prog, batch) if warm else None
    _same(prog, frames, state)


def test_forced_saturation_is_counted_and_equal():
    rng = np.random.default_rng(7)
    prog = random_program(rng, membrane_bits=8, accumulator_bits=16, big=True)
    shape = (2,) + prog.input_shape
    frames = [rng.integers(0, 40, shape) for _ in range(3)]
    sats = _same(prog, frames, random_state(rng, prog, 2))
    assert sats > 0


def test_state_is_not_modified_in_place():
    rng = np.random.default_rng(3)
    prog = random_program(rng)
    state = random_state(rng, prog, 1)
    before = {k: v.copy() for k, v in state.items()}
    Executor(prog).step(rng.integers(0, 5, (1,) + prog.input_shape), state)
    for k in state:
        np.testing.assert_array_equal(state[k], before[k])


@pytest.mark.parametrize("threads", [1, 2])
def test_shipped_model_executor_equals_reference(shipped_program, stream_frames, threads):
    frames = [stream_frames[i:i + 2].astype(np.int64) for i in range(0, 8, 2)]
    _same(shipped_program, frames, None, threads=threads)


def test_stepper_runs_in_a_streaming_session(shipped_program, stream_frames):
    """The Stepper view plugs into the float model's streaming session: streams batch together,
    keep their own membranes, and each equals stepping it alone."""
    import torch

    from snn.streaming import StreamingSession

    ex = Executor(shipped_program)
    sess = StreamingSession(ex.stepper())
    frames = stream_frames[:6].astype(np.int64)
    got = {0: [], 1: []}
    for t in range(3):
        out = sess.step({0: torch.from_numpy(frames[t]).float(), 1: torch.from_numpy(frames[5 - t]).float()})
        for k in out:
            got[k].append(out[k].numpy())
    for sid, order in ((0, [0, 1, 2]), (1, [5, 4, 3])):
        state = None
        for t, i in enumerate(order):
            logits, state, _ = ex.step(frames[i][None], state)
            np.testing.assert_allclose(got[sid][t], logits[0] * shipped_program.logit_scale, rtol=1e-6)
    with pytest.raises(TypeError, match="integer event counts"):
        ex.stepper().step(torch.full((1, 2, 64, 64), 0.5), None)
