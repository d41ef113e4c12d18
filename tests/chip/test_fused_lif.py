"""The LIF fused into the finish of the spike conv whose map only it reads (fusedlif): which ops
fuse, and every conv path that runs it equal to the dense reference - spikes, membranes, logits and
every counter, with saturations forced in both the conv and the LIF."""

import numpy as np
import pytest

from snn.backends.chip.executor import Executor
from snn.backends.chip.program import Op, Program, conv_out_hw
from snn.backends.chip.reference import reference_step

from .programs import conv, lif, profile, random_program, random_state

pytestmark = pytest.mark.timeout(600)


def _conv_lif_program(rng, co, ci, groups=1, stride=1, big=False, acc_bits=24, mem_bits=16, rounding="floor"):
    """frame -> codes -> stem -> LIF -> 3x3 spike conv (``co`` outputs, set) -> LIF -> 1x1 head: the
    conv's map is read by the LIF alone, so that LIF runs in the conv's finish."""
    H, W = 7, 9
    ho, wo = conv_out_hw(H, W, 3, stride, 1)
    w = rng.integers(-127, 128, (co, ci // groups, 3, 3))
    w[0] = 127                                       # large sums: int16 rows flushed, accumulator saturated
    bmax = 1 << (acc_bits - 2) if big else 60
    bias = rng.integers(-bmax, bmax + 1, co)
    shift = rng.integers(0, 3, co)
    if big:  # channel 0: all weights 127, a bias near the top - its sums pass the accumulator's range
        bias[0], shift[0] = (1 << (acc_bits - 1)) - 200, 0
    ops = [Op("input", "input", "frame", "input", {"clip": 3}, {"lut": np.arange(4, dtype=np.int32)}),
           conv("stem", "input", "s", rng.integers(1, 4, (ci, 1, 1, 1)), np.zeros(ci), mode="set", src_kind="graded"),
           lif("l", "s", rng.integers(1, 4, ci)),
           conv("c", "l", "c", w, bias, stride=stride, pad=1, groups=groups, shift=shift),
           lif("l2", "c", rng.integers(1, 1 << (mem_bits - 3), co), in_shift=int(rng.integers(0, 3))),
           conv("head", "l2", "logits", rng.integers(-127, 128, (5, co, 1, 1)), rng.integers(-9, 9, 5))]
    buffers = {"frame": (1, H, W), "input": (1, H, W), "s": (ci, H, W), "l": (ci, H, W), "c": (co, ho, wo),
               "l2": (co, ho, wo), "logits": (5, ho, wo)}
    prof = profile(accumulator_bits=acc_bits, membrane_bits=mem_bits, rounding=rounding)
    return Program(ops, buffers, "logits", 1.0, prof, {"class_names": None}).validate()


def _same(ex, prog, frames, state):
    """Steps ``ex`` and the reference; returns the saturations (conv, LIF) of the fused pair."""
    s_ref = s_ex = state
    sat = np.zeros(2, np.int64)
    for f in frames:
        l1, s_ref, st1 = reference_step(prog, f, s_ref, record=True)
        l2, s_ex, st2 = ex.step(f, s_ex, record=True)
        c, h, w = prog.buffers[prog.output]
        np.testing.assert_array_equal(l1, l2.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(l2.shape))
        for k in s_ref:
            np.testing.assert_array_equal(s_ref[k], s_ex[k], err_msg=k)
        for k in st1.record:
            np.testing.assert_array_equal(st1.record[k], st2.record[k], err_msg=k)
        np.testing.assert_array_equal(st1.counts, st2.counts)
        sat += [st1.layer("c")["saturations"], st1.layer("l2")["saturations"]]
    return sat


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", ["segs", "segs blocked", "taps", "taps blocked", "grouped"])
@pytest.mark.parametrize("co", [40, 300, 600])
def test_lif_fused_into_every_spike_conv_path_is_exact(co, path, threads, monkeypatch):
    """The conv of 40 (one block), 300 (8 blocks and a remainder) and 600 outputs (three register
    groups: with blocks outermost, each block's spikes are appended to the address lists after the
    last's) on each conv path - segments or tap by tap, output blocks innermost or outermost, grouped
    - runs its LIF in its finish; spikes, membranes, logits and counters equal the reference, with
    the conv's accumulator and the LIF's membrane saturated and counted."""
    monkeypatch.setattr(Executor, "BLOCK_OUTER_MIN_BYTES", 0 if "blocked" in path else 1 << 62)
    monkeypatch.setattr(Executor, "SEGMENTS_MAX_FAN_IN", 1 << 30 if path.startswith("segs") else 0)
    rng = np.random.default_rng(co + len(path))
    groups = 2 if path == "grouped" else 1
    prog = _conv_lif_program(rng, co, 8, groups=groups, big=True, acc_bits=16, mem_bits=12,
                             rounding=("floor", "half_up")[co % 2])
    ex = Executor(prog, threads=threads, parallel_min=0, tune=False)
    assert ex.fused_lifs() == 1 and ex._prep[3]["lif"] == 4
    assert ex._prep[3].get("segs", False) == (path.startswith("segs") and groups == 1)
    frames = [np.where(rng.random((2,) + prog.input_shape) < 0.6, 3, 0) for _ in range(3)]
    sat = _same(ex, prog, frames, random_state(rng, prog, 2))
    assert (sat > 0).all()                           # both the conv's and the LIF's saturations counted


def test_which_lifs_fuse():
    """A LIF fuses into the conv right before it only where that conv is a spike conv (not
    depthwise) in set mode whose map nothing else reads or writes and which is not the output; with
    FUSE_LIF off, none does."""
    rng = np.random.default_rng(3)
    prog = random_program(rng, attention=True, depthwise=True)
    fused = [op.name for op, p in zip(prog.ops, Executor(prog)._prep) if p.get("fused")]
    assert fused == ["l2", "ql"]                     # c1 -> l2 and qkv -> ql; not hl (after a residual add)

    class Unfused(Executor):
        FUSE_LIF = False

    assert Unfused(prog).fused_lifs() == 0
    reader = Op("lif", "l9", "c1", "l9", {"state": "l9", "in_shift": 0}, {"theta": np.ones(8, np.int32)})
    ops = prog.ops[:5] + [reader] + prog.ops[5:]    # a second reader of c1's map: no fusion there
    buffers = dict(prog.buffers, l9=prog.buffers["c1"])
    two = Program(ops, buffers, prog.output, 1.0, prog.profile, prog.meta).validate()
    assert [op.name for op, p in zip(two.ops, Executor(two)._prep) if p.get("fused")] == ["ql"]
