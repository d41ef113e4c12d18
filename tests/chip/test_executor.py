"""The event-driven executor equals the dense int64 reference bit for bit."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn.backends.chip.executor import Executor
from snn.backends.chip.reference import reference_step

from .programs import random_program, random_state

pytestmark = pytest.mark.timeout(600)


def _same(program, frames, state, record=True, threads=1, parallel_min=None):
    ex = Executor(program, threads=threads, parallel_min=parallel_min)
    s_ref = s_ex = state
    sats = 0
    for f in frames:
        l1, s_ref, st1 = reference_step(program, f, s_ref, record=record)
        l2, s_ex, st2 = ex.step(f, s_ex, record=record)
        assert l1.dtype == l2.dtype == np.int64
        c, h, w = program.buffers[program.output]  # a map output: the executor holds it [B, H, W, C]
        np.testing.assert_array_equal(l1, l2.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(l2.shape))
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
@given(seed=st.integers(0, 2**32 - 1), weight_bits=st.integers(4, 8),
       membrane_bits=st.sampled_from([8, 12, 16, 24, 32]), accumulator_bits=st.sampled_from([16, 20, 32]),
       rounding=st.sampled_from(["floor", "half_up"]), attention=st.booleans(), depthwise=st.booleans(),
       big=st.booleans(), stride=st.sampled_from([1, 2]), batch=st.integers(1, 3), warm=st.booleans(),
       threads=st.sampled_from([1, 2]), signed=st.booleans())
def test_random_programs(seed, weight_bits, membrane_bits, accumulator_bits, rounding, attention, depthwise, big,
                         stride, batch, warm, threads, signed):
    """Random programs (``signed``: weight exponents of both signs, left shifts on every conv path;
    membranes up to 32 bits; ``big``: saturations forced, after left shifts too)."""
    rng = np.random.default_rng(seed)
    prog = random_program(rng, weight_bits=weight_bits, membrane_bits=membrane_bits,
                          accumulator_bits=accumulator_bits, rounding=rounding, attention=attention,
                          depthwise=depthwise, big=big, stride=stride, hw=tuple(rng.integers(3, 8, 2)),
                          channels=int(rng.choice([2, 4, 6])), heads=int(rng.choice([1, 2])), signed=signed)
    clip = prog.ops[0].attrs["clip"]
    shape = (batch,) + prog.input_shape
    # counts beyond the clip and negative ones (clamped and counted), mostly zeros (events are sparse)
    frames = [np.where(rng.random(shape) < 0.4, rng.integers(-2, clip + 8, shape), 0) for _ in range(3)]
    state = random_state(rng, prog, batch) if warm else None
    # threads=2 with parallel_min=0: every conv and neuron op takes its threaded path
    _same(prog, frames, state, threads=threads, parallel_min=0)


def test_forced_saturation_is_counted_and_equal():
    rng = np.random.default_rng(7)
    prog = random_program(rng, membrane_bits=8, accumulator_bits=16, big=True)
    shape = (2,) + prog.input_shape
    frames = [rng.integers(0, 40, shape) for _ in range(3)]
    sats = _same(prog, frames, random_state(rng, prog, 2))
    assert sats > 0


@pytest.mark.parametrize("membrane_bits", [16, 32])
def test_forced_saturation_after_left_shifts_is_counted_and_equal(membrane_bits):
    """Every conv with weight exponents of both signs (left shifts up to 6), big weights and biases
    on a 16-bit accumulator: sums shifted left pass it and saturate; counted, equal to the reference."""
    rng = np.random.default_rng(11)
    prog = random_program(rng, membrane_bits=membrane_bits, accumulator_bits=16, big=True, signed=True)
    assert min(int(op.arrays["shift"].min()) for op in prog.ops if op.kind == "conv") < 0
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


def _wide_conv_program(w, ci, hw=(6, 7), stride=1):
    """frame -> input codes -> LIF (every position spikes on every channel it can) -> 3x3 spike conv."""
    from snn.backends.chip.program import Op, Program, conv_out_hw

    from .programs import conv, lif, profile

    H, W = hw
    co = w.shape[0]
    lut = np.arange(4, dtype=np.int32)
    ops = [Op("input", "input", "frame", "input", {"clip": 3}, {"lut": lut}),
           conv("stem", "input", "s", np.ones((ci, 1, 1, 1), np.int8), np.zeros(ci), mode="set", src_kind="graded"),
           lif("l", "s", np.ones(ci)),
           conv("c", "l", "out", w, np.arange(co) - co // 2, pad=1, stride=stride, shift=np.arange(co) % 3)]
    buffers = {"frame": (1, H, W), "input": (1, H, W), "s": (ci, H, W), "l": (ci, H, W),
               "out": (co,) + conv_out_hw(H, W, 3, stride, 1)}
    return Program(ops, buffers, "out", 1.0, profile(accumulator_bits=32), {"class_names": None}).validate()


def test_int16_flush_bound_by_hand():
    """The int16 row is flushed only where the static bound (largest sum of |w| over an output
    channel's fan-in) passes 32767, then every 32767 // max|w| rows."""
    from snn.backends.chip.executor import int16_flush
    from snn.backends.chip.kernels import FLUSH_NEVER

    w = np.zeros((2, 64, 3, 3), np.int64)
    w[0] = 56                                       # 576 * 56 = 32256 <= 32767: never
    assert int16_flush(w) == FLUSH_NEVER
    w[1, 0, 0, 0] = -57                             # channel 0 still 32256, channel 1 57
    assert int16_flush(w) == FLUSH_NEVER
    w[0, 0, 0, 0] = 57 + 56                         # channel 0: 32313 ... still fits
    assert int16_flush(w) == FLUSH_NEVER
    w[0] = 57                                       # 576 * 57 = 32832 > 32767: flush every 32767 // 57 rows
    assert int16_flush(w) == 32767 // 57 == 574
    w[1, 5, 1, 1] = -127
    assert int16_flush(w) == 32767 // 127 == 258


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("sign", ["same", "mixed"])
def test_wide_spike_conv_flushes_the_int16_row_and_stays_exact(threads, sign):
    """576 rows (64 channels x 9 taps, every input spiking) of +-127 per output: sums up to 73152,
    beyond int16 - the row is flushed every 258 rows; results equal the reference, on 1 or 2 threads."""
    from snn.backends.chip.executor import int16_flush

    rng = np.random.default_rng(11)
    ci, co = 64, 40
    w = np.full((co, ci, 3, 3), 127, np.int8)
    if sign == "mixed":
        w = (w * rng.choice([-1, 1], w.shape)).astype(np.int8)
    w[1] = -127                                     # one channel at the negative extreme
    prog = _wide_conv_program(w, ci)
    assert int16_flush(prog.ops[-1].arrays["weight"]) == 258
    frame = np.full((2,) + prog.input_shape, 3)    # every LIF neuron spikes
    frame[1, 0, 0, :3] = 0                          # a few silent positions in row 1
    logits, _, st = reference_step(prog, frame)
    if sign == "same":
        assert logits.max() > 2 * 32767 and logits.min() < -32768
    _same(prog, [frame, frame], None, threads=threads, parallel_min=0)


@pytest.mark.parametrize("shift", [[0, 5, 9], [0, -30, -3]])
def test_graded_conv_takes_int64_sums_where_the_inputs_are_large(shift):
    """A graded conv whose inputs reach 2^29 accumulates in int64 (this step's largest input times
    the weight bound passes 2^31) and equals the reference; with small inputs it takes int32 sums.
    Weight exponents -30 and -3: the int64 sums (up to ~2^38) shifted left pass int64 itself - the
    executor holds them to +-2^62 first, the reference shifts Python integers; both saturate alike."""
    from snn.backends.chip import kernels as K
    from snn.backends.chip.program import Op, Program

    from .programs import conv, lif, profile

    rng = np.random.default_rng(5)
    C, H, W = 4, 5, 6
    ops = [Op("input", "input", "frame", "input", {"clip": 3}, {"lut": np.arange(4, dtype=np.int32)}),
           conv("stem", "input", "s", np.ones((C, 1, 1, 1), np.int8), np.zeros(C), mode="set", src_kind="graded"),
           lif("l", "s", np.ones(C)),
           conv("dw", "l", "dw", rng.integers(-127, 128, (C, 1, 3, 3)), np.full(C, 1 << 29), pad=1, groups=C),
           conv("pw", "dw", "out", rng.integers(-127, 128, (3, C, 1, 1)), np.zeros(3), mode="set", src_kind="graded",
                shift=shift)]
    buffers = {"frame": (1, H, W), "input": (1, H, W), "s": (C, H, W), "l": (C, H, W), "dw": (C, H, W),
               "out": (3, H, W)}
    prog = Program(ops, buffers, "out", 1.0, profile(accumulator_bits=32), {"class_names": None}).validate()
    frames = [rng.integers(0, 4, (2, 1, H, W)) for _ in range(2)]
    _same(prog, frames, None)
    if min(shift) < 0:  # channel 1 (k = -30): every non-zero sum saturates the 32-bit accumulator
        out = reference_step(prog, frames[0])[0].reshape(2, 3, H, W)[:, 1]
        assert np.isin(out, [-(1 << 31), (1 << 31) - 1]).mean() > 0.9
    _same(prog, frames, None, threads=2, parallel_min=0)
    ex = Executor(prog)
    ex.step(frames[0])
    assert ex._prep[4]["acc"].dtype == np.int64                                  # the static bound: int64
    assert ex._prep[4]["wsum"] * int(K.absmax(ex._buffers(2)["dw"])) >= 1 << 31  # and this step needs it


def test_threads_split_large_ops_only():
    """With threads > 1, ops below the thresholds stay on the calling thread; parallel_min=0 splits all
    (a LIF fused into its conv runs on that conv's threads)."""
    rng = np.random.default_rng(2)
    prog = random_program(rng)
    assert not any(p.get("par") for p in Executor(prog, threads=2)._prep)
    par = [p.get("par") for op, p in zip(prog.ops, Executor(prog, threads=2, parallel_min=0)._prep)
           if op.kind in ("conv", "lif") and np.prod(prog.buffers[op.dst][1:]) > 1 and not p.get("fused")]
    assert par and all(par)
    assert not any(p.get("par") for p in Executor(prog, threads=1, parallel_min=0)._prep)
    with pytest.raises(ValueError, match="threads"):
        Executor(prog, threads=0)


def test_threaded_step_leaves_numbas_thread_count_as_it_was():
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    rng = np.random.default_rng(4)
    prog = random_program(rng)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        Executor(prog, threads=2, parallel_min=0).step(rng.integers(0, 5, (1,) + prog.input_shape))
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("segs", [False, True])
@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("co,ci,stride,rate", [(1, 3, 1, 0.5), (33, 20, 2, 0.3), (300, 24, 1, 0.6), (520, 9, 1, 0.9),
                                               (600, 64, 1, 0.95)])
def test_spike_conv_register_blocks_and_int16_rows_are_exact(threads, co, ci, stride, rate, blocked, segs,
                                                             monkeypatch):
    """Dense spike convs whose rows span one lane (padded to a 16-lane block), a block and a 16-lane
    one (33 -> 48), 8 blocks plus a remainder (300 -> 304 lanes: 256 in registers, then 32 + 16) and
    more than two register groups (520 -> 528: the third a 16-lane block alone; 600), weights at
    both 8-bit extremes, random spikes, stride 1 and 2, and rows beyond the int16 flush bound (600:
    576 rows per position): equal to the reference on 1 and 2 threads - per tap, or (``blocked``)
    with the output blocks outermost and all taps of a position in one pass; ``segs``: all taps of
    a position in one register pass from its segments (segconv; 600: chunks of ``flush`` rows), else
    tap by tap (spikeconv)."""
    monkeypatch.setattr(Executor, "BLOCK_OUTER_MIN_BYTES", 0 if blocked else 1 << 62)
    monkeypatch.setattr(Executor, "SEGMENTS_MAX_FAN_IN", 1 << 30 if segs else 0)
    rng = np.random.default_rng(co * 7 + ci)
    w = rng.integers(-127, 128, (co, ci, 3, 3))
    w[0, 0] = -127
    w[-1, -1] = 127
    if co == 600:
        w[:300] = 127                               # sums up to 73152: the int16 rows must be flushed
    prog = _wide_conv_program(w.astype(np.int8), ci, hw=(7, 9), stride=stride)
    ex = Executor(prog, threads=threads, parallel_min=0)
    assert ex._prep[-1]["wt"].dtype == np.int8 and ex._prep[-1]["wt"].shape[-1] == -(-co // 16) * 16
    assert ex._prep[-1]["blocked"] == blocked and ex._prep[-1]["segs"] == segs
    frames = [np.where(rng.random((2,) + prog.input_shape) < rate, 3, 0) for _ in range(2)]
    _same(prog, frames, None, threads=threads, parallel_min=0)


@pytest.mark.parametrize("segs", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_random_programs_with_output_blocks_outermost(seed, segs, monkeypatch):
    """Every dense spike conv of random programs takes the blocked path, by segments (segconv) or
    tap by tap (spikeconv): equal to the reference."""
    monkeypatch.setattr(Executor, "BLOCK_OUTER_MIN_BYTES", 0)
    monkeypatch.setattr(Executor, "SEGMENTS_MAX_FAN_IN", 1 << 30 if segs else 0)
    rng = np.random.default_rng(1000 + seed)
    prog = random_program(rng, big=bool(seed % 2), stride=1 + seed % 2, rounding=("floor", "half_up")[seed % 2],
                          hw=tuple(rng.integers(3, 8, 2)), channels=int(rng.choice([2, 4, 6])))
    frames = [np.where(rng.random((2,) + prog.input_shape) < 0.4, rng.integers(0, 9, (2,) + prog.input_shape), 0)
              for _ in range(3)]
    _same(prog, frames, random_state(rng, prog, 2), threads=1 + seed % 2, parallel_min=0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("stride,k", [(1, 3), (2, 5), (3, 7)])
def test_first_layer_scatter_is_exact_in_int32_and_int64(threads, stride, k):
    """The first layer scatters each non-zero code into the outputs it reaches (input-stationary):
    strides 1-3, kernels 3-7 with padding, outputs not a multiple of 16; codes up to 2^30 make the
    sums pass 32 bits (int64 accumulator map, saturated to the accumulator width and counted), small
    codes keep int32 sums.  Equal to the reference (MACs counted the same)."""
    from snn.backends.chip.program import Op, Program, conv_out_hw

    from .programs import conv, lif, profile

    rng = np.random.default_rng(stride * 10 + k)
    H, W, co = 11, 13, 21
    lut = np.array([0, 1, 3, 1 << 20, 1 << 30], np.int32)
    w = rng.integers(-127, 128, (co, 2, k, k))
    w[0] = 127
    ho, wo = conv_out_hw(H, W, k, stride, k // 2)
    ops = [Op("input", "input", "frame", "input", {"clip": 4}, {"lut": lut}),
           conv("stem", "input", "s", w, rng.integers(-50, 50, co), stride=stride, pad=k // 2, src_kind="graded",
                shift=rng.integers(0, 4, co)),
           lif("l", "s", np.full(co, 20))]
    buffers = {"frame": (2, H, W), "input": (2, H, W), "s": (co, ho, wo), "l": (co, ho, wo)}
    prog = Program(ops, buffers, "s", 1.0, profile(accumulator_bits=32), {"class_names": None}).validate()
    ex = Executor(prog)
    assert "scatter" in ex._prep[1] and ex._prep[1]["acc"].dtype == np.int64
    small = [np.where(rng.random((2, 2, H, W)) < 0.2, rng.integers(1, 3, (2, 2, H, W)), 0) for _ in range(2)]
    large = [np.where(rng.random((2, 2, H, W)) < 0.3, rng.integers(0, 5, (2, 2, H, W)), 0) for _ in range(2)]
    _same(prog, small, None, threads=threads, parallel_min=0)
    assert _same(prog, large, None, threads=threads, parallel_min=0) > 0   # sums beyond int32 saturate


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
@pytest.mark.parametrize("C", [1, 5, 31, 32, 33, 100])
def test_compress32_lists_the_set_flags(dtype, C):
    """The LIF's address lists: compress32 writes the channels of the set flags among (up to) 32,
    increasing, at the given slot, nothing past them, and returns how many."""
    import numba

    from snn.backends.chip.compress import LANES, compress32

    @numba.njit
    def lists(flag, C, out):
        k = 0
        for c0 in range(0, C, LANES):
            k += compress32(out, 3 + k, flag, c0, min(LANES, C - c0))
        return k

    rng = np.random.default_rng(C)
    for rate in (0.0, 0.1, 0.5, 1.0):
        flag = np.zeros(C + LANES, np.uint8)
        flag[:C] = rng.random(C) < rate
        flag[C:] = 1                                # flags past C are read but never listed
        out = np.full(C + 8, -1, dtype)
        k = lists(flag, C, out)
        want = np.nonzero(flag[:C])[0]
        assert k == want.size
        np.testing.assert_array_equal(out[3:3 + k], want)
        assert (out[:3] == -1).all() and (out[3 + k:] == -1).all()


def test_kernels_are_marked_for_512_bit_vectors():
    """wide_vectors() marks the LLVM function it is called in (and only that one) with the
    prefer-vector-width attribute; a function that does not call it keeps LLVM's default."""
    import numba

    from snn.backends.chip.wide import PREFER_WIDTH, wide_vectors

    @numba.njit
    def marked(x):
        wide_vectors()
        return x + 1

    @numba.njit
    def plain(x):
        return x + 1

    assert marked(1) == plain(1) == 2
    assert PREFER_WIDTH in "".join(marked.inspect_llvm().values())
    assert PREFER_WIDTH not in "".join(plain.inspect_llvm().values())
