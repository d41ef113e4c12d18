"""The dense reference, checked against arithmetic and counts worked out by hand."""

import numpy as np
import pytest

from snn.backends.chip.executor import Executor
from snn.backends.chip.program import Op, Program
from snn.backends.chip.reference import reference_step, shr

from .programs import conv, lif, profile


def _small(rounding="floor", theta=1):
    """frame (1, 4, 4) -> identity table -> 3x3 conv (all-ones, 2 outputs, pad 1) -> LIF -> 1x1 conv (3)."""
    lut = np.arange(8, dtype=np.int32)
    ops = [
        Op("input", "input", "frame", "input", {"clip": 7}, {"lut": lut}),
        conv("c0", "input", "s", np.ones((2, 1, 3, 3)), [0, 0], 1, 1, 1, "set", "graded"),
        lif("l0", "s", [theta, theta]),
        conv("c1", "l0", "out", np.ones((3, 2, 1, 1)), [0, 0, 0], 1, 0, 1, "set", "spike"),
    ]
    bufs = {"frame": (1, 4, 4), "input": (1, 4, 4), "s": (2, 4, 4), "l0": (2, 4, 4), "out": (3, 4, 4)}
    return Program(ops, bufs, "out", 1.0, profile(rounding=rounding), {}).validate()


def test_counts_by_hand():
    prog = _small()
    frame = np.zeros((1, 1, 4, 4), np.int64)
    frame[0, 0, 0, 0] = 2   # a corner: its 3x3 footprint covers 4 outputs
    frame[0, 0, 1, 1] = 1   # inside: 9 outputs
    frame[0, 0, 3, 3] = 9   # above the clip (7): clamped, counted; a corner, 4 outputs
    logits, state, stats = reference_step(prog, frame, None, record=True)
    # conv c0: MACs = (4 + 9 + 4) taps x 2 output channels; one weight byte each
    assert stats.layer("c0")["mac"] == 34
    assert stats.layer("c0")["ac"] == 0
    assert stats.layer("c0")["weight_bytes"] == 34
    assert stats.layer("input")["saturations"] == 1
    # currents (both channels): 2 around (0,0), 1 around (1,1), 7 around (3,3)
    x = np.array([[3, 3, 1, 0],
                  [3, 3, 1, 0],
                  [1, 1, 8, 7],
                  [0, 0, 7, 7]])
    h = x >> 1   # v = 0: h = x >> 1, theta = 1
    spikes = h >= 1
    assert stats.layer("l0")["neuron_updates"] == 32
    assert stats.layer("l0")["spikes"] == 2 * spikes.sum() == 16
    np.testing.assert_array_equal(stats.record["l0"][0, 0], spikes)
    np.testing.assert_array_equal(state["l0"][0, :, :, 0], np.where(spikes, 0, h))
    # c1: each of the 16 spikes adds one row of 3 weights
    assert stats.layer("c1")["ac"] == 48
    assert stats.layer("c1")["weight_bytes"] == 48
    np.testing.assert_array_equal(logits.reshape(3, 4, 4)[0], 2 * spikes)
    assert stats.total["saturations"] == 1
    # the executor counts the same
    _, _, st2 = Executor(prog).step(frame, None)
    np.testing.assert_array_equal(stats.counts, st2.counts)


@pytest.mark.parametrize("rounding, expect", [("floor", [-2, -1, 1, 2]), ("half_up", [-1, 0, 2, 2])])
def test_lif_rounding_of_odd_sums(rounding, expect):
    # h = (v + x) >> 1 for v + x in (-3, -1, 3, 4): floor rounds down, half_up rounds half up
    prog = _small(rounding, theta=100)
    state = {"l0": np.array([-3, -1, 3, 4], np.int16).reshape(1, 1, 4, 1).repeat(4, 0).reshape(1, 4, 4, 1)
             .repeat(2, 3)}
    _, new, _ = reference_step(prog, np.zeros((1, 1, 4, 4), np.int64), state)
    np.testing.assert_array_equal(new["l0"][0, 0, :, 0], expect)


def test_membrane_saturates_and_counts():
    prog = _small()
    prog.profile = profile(membrane_bits=8)
    state = {"l0": np.full((1, 4, 4, 2), 127, np.int16)}
    prog.ops[2].arrays["theta"] = np.array([127, 127], np.int32)
    frame = np.full((1, 1, 4, 4), 7, np.int64)   # x = 63 in the middle: (127 + 63) >> 1 = 95, no
    _, new, stats = reference_step(prog, frame, state)
    assert stats.layer("l0")["saturations"] == 0
    prog.ops[1].arrays["weight"] = np.full((2, 1, 3, 3), 100, np.int8)  # x up to 6300: h saturates at 127
    _, new, stats = reference_step(prog, frame, state)
    assert stats.layer("l0")["saturations"] == 32
    assert stats.layer("l0")["spikes"] == 32   # 127 >= theta 127
    assert stats.layer("c0")["saturations"] == 0   # the 24-bit accumulator holds 6300


def test_shr_rounds_like_integer_division():
    x = np.array([-5, -4, -3, -1, 0, 1, 3, 5])
    np.testing.assert_array_equal(shr(x, 1, False), np.floor(x / 2))
    np.testing.assert_array_equal(shr(x, 1, True), np.floor(x / 2 + 0.5))
    np.testing.assert_array_equal(shr(x, 0, True), x)


def _one_conv(w, bias, shift, accumulator_bits=24, rounding="floor"):
    """frame (1, 3, 3) -> identity codes -> LIF (theta 1: a count of 2 spikes, 0 does not) -> one 3x3
    spike conv, no padding, ``w [Co, 1, 3, 3]`` -> output ``(Co, 1, 1)``."""
    co = len(bias)
    ops = [Op("input", "input", "frame", "input", {"clip": 3}, {"lut": np.arange(4, dtype=np.int32)}),
           conv("stem", "input", "s", np.ones((1, 1, 1, 1)), [0], src_kind="graded"),
           lif("l", "s", [1]),
           conv("c", "l", "out", w, bias, shift=shift)]
    bufs = {"frame": (1, 3, 3), "input": (1, 3, 3), "s": (1, 3, 3), "l": (1, 3, 3), "out": (co, 1, 1)}
    return Program(ops, bufs, "out", 1.0, profile(accumulator_bits=accumulator_bits, rounding=rounding), {}).validate()


@pytest.mark.parametrize("rounding, ch1", [("floor", 10 - 3), ("half_up", 10 - 2)])
def test_signed_weight_exponents_by_hand(rounding, ch1):
    """Spikes at (0, 0), (1, 1), (2, 1).  Channel 0, k = -2: its weights there sum to 1 + 5 + 8 = 14,
    shifted left: 14 * 4 = 56, + bias 3 = 59.  Channel 1, k = +1: 3 - 2 - 6 = -5, shifted right:
    floor(-5 / 2) = -3 (half up: (-5 + 1) >> 1 = -2), + bias 10.  Channel 2, k = -12 on a 16-bit
    accumulator: 14 << 12 = 57344 saturates at 32767 (counted).  Reference and executor alike."""
    w = np.zeros((3, 1, 3, 3), np.int64)
    w[0, 0] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    w[1, 0] = [[3, 0, 0], [9, -2, 9], [9, -6, 9]]
    w[2, 0] = w[0, 0]
    prog = _one_conv(w, [3, 10, 0], [-2, 1, -12], accumulator_bits=16, rounding=rounding)
    frame = np.zeros((1, 1, 3, 3), np.int64)
    frame[0, 0, 0, 0] = frame[0, 0, 1, 1] = frame[0, 0, 2, 1] = 2
    ex = Executor(prog)
    assert ex._prep[3]["shift"].tolist() == [[0, 1, 0], [2, 0, 12]]  # right over left shifts
    for step in (reference_step, ex.step):
        logits, _, stats = step(prog, frame, None) if step is reference_step else step(frame, None)
        assert logits.tolist() == [[59, ch1, 32767]]
        assert stats.layer("c")["saturations"] == 1
        assert stats.layer("c")["ac"] == 3 * 3


def test_shr_with_a_negative_exponent_shifts_left_exactly():
    x = np.array([-5, -1, 0, 3, 1 << 40])
    np.testing.assert_array_equal(shr(x, -3, False), x * 8)
    np.testing.assert_array_equal(shr(x, -3, True), x * 8)     # nothing to round
    np.testing.assert_array_equal(shr(x, np.array([-1, 0, 1, 2, -2]), False), [-10, -1, 0, 0, 1 << 42])
    big = shr(np.array([1 << 40, -(1 << 40)]), -30, False)     # passes int64: Python integers
    assert big.tolist() == [1 << 70, -(1 << 70)]


def test_32_bit_membranes_saturate_at_the_int32_limits():
    """membrane_bits = 32: h = (v + (x << 2)) >> 1 with v = 2^31 - 1 and x = 2^30 + c is ~2^32 -
    it saturates at 2^31 - 1 (and spikes: theta 2^31 - 1); with x = -2^31 + 64 + c, h ~ -1.5 * 2^31
    saturates at -2^31 (no spike).
    Every neuron counted; the executor stores the same int32 membranes."""
    prog = _small()
    prog.profile = profile(membrane_bits=32, accumulator_bits=32)
    assert prog.membrane_dtype == np.int32
    prog.ops[2].attrs["in_shift"] = 2
    lim = (1 << 31) - 1
    prog.ops[2].arrays["theta"] = np.array([lim, lim], np.int32)
    prog.ops[1].arrays["bias"] = np.array([1 << 30, -(1 << 31) + 64], np.int32)
    frame = np.full((1, 1, 4, 4), 3, np.int64)
    state = {"l0": np.full((1, 4, 4, 2), lim, np.int32)}
    for step in (reference_step, Executor(prog.validate()).step):
        _, new, stats = step(prog, frame, state) if step is reference_step else step(frame, state)
        assert new["l0"].dtype == np.int32
        assert (new["l0"][..., 0] == 0).all()                   # saturated at 2^31 - 1: spiked, reset
        assert (new["l0"][..., 1] == -lim - 1).all()
        assert stats.layer("l0")["saturations"] == 32
        assert stats.layer("l0")["spikes"] == 16


def test_weigh_in_python_and_in_the_kernels_is_the_exact_shift():
    """``exponent.weigh`` (was a NotImplementedError stub outside numba): ``(a >> r) << l`` in exact
    integers, held to +-2^62 before the left shift for a 64-bit accumulator; the compiled overload
    the kernels use gives the same."""
    import numba

    from snn.backends.chip.exponent import weigh

    @numba.njit
    def jitted(a, r, lft, wide):
        return weigh(a, r, lft, wide)

    rng = np.random.default_rng(5)
    for a in rng.integers(-2 ** 31, 2 ** 31, 50):
        for r, lft in ((0, 0), (3, 0), (0, 12), (0, 30)):
            want = (int(a) >> r) << lft  # Python integers: the exact value
            assert weigh(a, r, lft, np.int32(0)) == want == jitted(np.int64(a), r, lft, np.int32(0))
    big = np.int64(2 ** 61 + 12345)
    assert weigh(big, 0, 4, np.int64(0)) == jitted(big, 0, 4, np.int64(0)) == (1 << 58) << 4  # held
    assert weigh(-big, 0, 4, np.int64(0)) == -(1 << 58) << 4
