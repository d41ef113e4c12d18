"""The executor's vector loops and its thread plan: worked by hand or against NumPy int64, and
against the dense reference."""

import numba
import numpy as np
import pytest

from snn.backends.chip.executor import Executor
from snn.backends.chip.reference import reference_step

from .programs import random_program, random_state

pytestmark = pytest.mark.timeout(600)


def test_chunks_split_segments_at_the_flush_bound_by_hand():
    """Segments (e0, e1, tap offset) of 5 and 3 rows, flush 3: chunks of 3, 3 and 2 rows, a segment
    cut where a chunk ends, the tap offset carried to both halves."""
    from snn.backends.chip.segconv import _chunks

    seg = np.array([0, 5, 100, 10, 13, 200], np.int64)
    cseg = np.full(3 * 8, -1, np.int64)
    cend = np.full(8, -1, np.int64)
    nc = _chunks(seg, 2, 3, cseg, cend)
    assert nc == 3
    assert cend[:3].tolist() == [1, 3, 4]
    assert cseg[:12].reshape(4, 3).tolist() == [[0, 3, 100], [3, 5, 100], [10, 11, 200], [11, 13, 200]]
    assert _chunks(seg, 2, 1 << 62, cseg, cend) == 1 and cend[0] == 2   # never flushed: one chunk


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("cop", [16, 48, 128, 144, 272])
def test_mac_store_and_mac_add_equal_numpy(dtype, cop):
    """The explicit 512-bit multiply-adds: rows of int32 weights times values (negative, and up to
    2^20 where the sums are int64), 1 to 17 blocks (more than the 8 held in registers per pass)."""
    from snn.backends.chip.vecmac import mac_add, mac_store

    @numba.njit
    def store(acc, w, offs, vals, n, cop):
        mac_store(acc, w, offs, vals, n, cop)

    @numba.njit
    def add(acc, ao, w, wo, v, nvec):
        mac_add(acc, ao, w, wo, v, nvec)

    rng = np.random.default_rng(cop)
    rows = 7
    w = rng.integers(-128, 128, rows * cop + 5).astype(np.int32)
    big = 1 << 20 if dtype == np.int64 else 1 << 10
    offs = rng.integers(0, rows, 11) * cop
    vals = rng.integers(-big, big, 11).astype(dtype)
    acc = np.full(cop + 16, 7, dtype)
    store(acc, w, offs, vals, 11, cop)
    want = sum(vals[r].astype(np.int64) * w[offs[r]:offs[r] + cop].astype(np.int64) for r in range(11))
    np.testing.assert_array_equal(acc[:cop], want)
    assert (acc[cop:] == 7).all()                       # nothing written past the row
    store(acc, w, offs, vals, 0, cop)                   # no rows: zeros
    assert (acc[:cop] == 0).all()
    acc = rng.integers(-1000, 1000, cop + 32).astype(dtype)
    before = acc.copy()
    lanes = 512 // (8 * acc.itemsize)
    add(acc, 16, w, 2 * cop, dtype(-big + 1), cop // lanes)
    want = before.astype(np.int64)
    want[16:16 + cop] += (-big + 1) * w[2 * cop:3 * cop].astype(np.int64)
    np.testing.assert_array_equal(acc, want)


def _steps(ex, prog, frames, state):
    s_ref = s_ex = state
    for f in frames:
        l1, s_ref, st1 = reference_step(prog, f, s_ref)
        l2, s_ex, st2 = ex.step(f, s_ex)
        c, h, w = prog.buffers[prog.output]
        np.testing.assert_array_equal(l1, l2.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(l2.shape))
        for k in s_ref:
            np.testing.assert_array_equal(s_ref[k], s_ex[k], err_msg=k)
        np.testing.assert_array_equal(st1.counts, st2.counts)


@pytest.mark.parametrize("gain,split", [(1e9, "all"), (0.0, "none"), (0.9, "some")])
def test_thread_plan_is_measured_then_fixed_and_exact(gain, split, monkeypatch):
    """With two threads, the ops that may split run split and unsplit over the first TUNE_STEPS
    steps (after a warm-up step), then each keeps the faster; results equal the reference on every
    step, during and after.  A split that must win by any factor (gain 1e9) keeps all split, one
    that must take no time (0) keeps none; tune=False keeps all split without measuring."""
    monkeypatch.setattr(Executor, "TUNE_GAIN", gain)
    rng = np.random.default_rng(11)
    prog = random_program(rng, hw=(6, 7), channels=4)
    ex = Executor(prog, threads=2, parallel_min=0)
    cands = ex.thread_plan()["candidates"]
    assert cands > 0 and ex.thread_plan() == {"split": -1, "candidates": cands, "tuning": Executor.TUNE_STEPS + 1}
    frames = [np.where(rng.random((2,) + prog.input_shape) < 0.4, rng.integers(0, 9, (2,) + prog.input_shape), 0)
              for _ in range(Executor.TUNE_STEPS + 3)]
    _steps(ex, prog, frames, random_state(rng, prog, 2))
    plan = ex.thread_plan()
    assert plan["tuning"] == 0
    if split == "all":
        assert plan["split"] == cands
    elif split == "none":
        assert plan["split"] == 0
        # nothing runs split: the steps take the one-thread path, numba's thread count untouched
        monkeypatch.setattr(ex, "_threads_on", lambda: pytest.fail("switched threads for an unsplit plan"))
        _steps(ex, prog, frames[:2], random_state(rng, prog, 2))
    else:
        assert 0 <= plan["split"] <= cands
    fixed = Executor(prog, threads=2, parallel_min=0, tune=False)
    assert fixed.thread_plan() == {"split": cands, "candidates": cands, "tuning": 0}
    assert Executor(prog).thread_plan() == {"split": 0, "candidates": 0, "tuning": 0}


def test_add8_adds_eight_int32_lanes_at_flat_offsets():
    """The depthwise conv's kernel-row add: 8 lanes at any offset, nothing else touched."""
    from snn.backends.chip.vecmac import add8

    @numba.njit
    def run(acc, ao, w, wo):
        add8(acc, ao, w, wo)

    acc = np.arange(30, dtype=np.int32)
    w = np.arange(-20, 0, dtype=np.int32)
    run(acc, 5, w, 3)
    want = np.arange(30)
    want[5:13] += np.arange(-17, -9)
    np.testing.assert_array_equal(acc, want)


def test_pair_weights_interleave_two_channels_per_output_by_hand():
    """[Co=2, Ci=3, 1, 1] -> pairs (c0, c1) and (c2, 0), outputs padded to 16, two weights per output."""
    from snn.backends.chip.pairconv import pair_weights

    w = np.array([[1, 2, 3], [-4, -5, -6]], np.int8)[:, :, None, None]
    wp = pair_weights(w)
    assert wp.shape == (2, 16, 2) and wp.dtype == np.int16
    assert wp[0, :2].tolist() == [[1, 2], [-4, -5]] and wp[1, :2].tolist() == [[3, 0], [-6, 0]]
    assert not wp[:, 2:].any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("wide", [False, True, "left"])
def test_pointwise_conv_on_int16_bounded_depthwise_maps_takes_pairs_and_is_exact(seed, threads, wide):
    """Random programs with a depthwise -> pointwise pair: where the depthwise map's static bound
    (sum |w| >> shift + 1 + |bias|) fits int16, the pointwise conv multiplies two channels per
    instruction (pairconv); with depthwise biases of +-40000 (``wide``), or weight exponents of -8
    (``left``: the bound is sum |w| << 8), it does not fit and the graded path runs.  All equal the
    reference, on one and two threads."""
    rng = np.random.default_rng(500 + seed)
    prog = random_program(rng, depthwise=True, attention=False, hw=(6, 7), channels=int(rng.choice([2, 4, 6])),
                          accumulator_bits=32)
    dw = next(op for op in prog.ops if op.name == "dw")
    if wide is True:
        dw.arrays["bias"] = np.where(rng.random(dw.arrays["bias"].shape) < 0.5, -40000, 40000).astype(np.int32)
    elif wide == "left":
        dw.arrays["shift"] = np.full_like(dw.arrays["shift"], -8)
        assert int(np.abs(dw.arrays["weight"].astype(np.int64)).sum((1, 2, 3)).max()) << 8 > 32767
    ex = Executor(prog, threads=threads, parallel_min=0, tune=False)
    pairs = [op.name for op, p in zip(prog.ops, ex._prep) if "pairs" in p]
    assert pairs == ([] if wide else ["pw"])
    frames = [np.where(rng.random((2,) + prog.input_shape) < 0.5, rng.integers(0, 9, (2,) + prog.input_shape), 0)
              for _ in range(3)]
    _steps(ex, prog, frames, random_state(rng, prog, 2))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["set", "add"])
def test_depthwise_conv_finishes_channel_rows_exactly(mode, threads):
    """The depthwise spike conv (7x7 and 3x3, stride 1) finishes its channel-major scratch a channel's
    row at a time - set, or added into a residual map (``add``), with a bias near the top of the
    accumulator so that sums saturate: equal to the reference, saturations counted."""
    from snn.backends.chip.program import Op, Program

    from .programs import conv, lif, profile

    rng = np.random.default_rng(31 if mode == "set" else 32)
    C, H, W = 12, 9, 11
    bias = rng.integers(-500, 500, C)
    bias[0] = (1 << 15) - 300                        # channel 0 passes the 16-bit accumulator
    w7 = rng.integers(-127, 128, (C, 1, 7, 7))
    w7[0] = 127
    shift = rng.integers(0, 3, C)
    shift[0] = 0
    ops = [Op("input", "input", "frame", "input", {"clip": 3}, {"lut": np.arange(4, dtype=np.int32)}),
           conv("stem", "input", "s", rng.integers(1, 60, (C, 2, 1, 1)), np.zeros(C), mode="set", src_kind="graded"),
           lif("l", "s", rng.integers(1, 30, C)),
           conv("dw7", "l", "s" if mode == "add" else "d", w7, bias, pad=3, groups=C, mode=mode, shift=shift),
           lif("l2", "s" if mode == "add" else "d", rng.integers(1, 30, C)),
           conv("dw3", "l2", "d3", rng.integers(-127, 128, (C, 1, 3, 3)), rng.integers(-9, 9, C), pad=1, groups=C),
           lif("l3", "d3", rng.integers(1, 30, C)),
           conv("head", "l3", "logits", rng.integers(-127, 128, (4, C, 1, 1)), np.zeros(4))]
    buffers = {"frame": (2, H, W), "input": (2, H, W), "s": (C, H, W), "d": (C, H, W), "l": (C, H, W),
               "l2": (C, H, W), "d3": (C, H, W), "l3": (C, H, W), "logits": (4, H, W)}
    prog = Program(ops, buffers, "logits", 1.0, profile(accumulator_bits=16), {"class_names": None}).validate()
    ex = Executor(prog, threads=threads, parallel_min=0, tune=False)
    assert "dw" in ex._prep[3] and "dw" in ex._prep[5]
    frames = [np.where(rng.random((2, 2, H, W)) < 0.5, rng.integers(1, 4, (2, 2, H, W)), 0) for _ in range(3)]
    _steps(ex, prog, frames, random_state(rng, prog, 2))
    _, _, st = reference_step(prog, frames[0], None)
    assert st.layer("dw7")["saturations"] > 0
