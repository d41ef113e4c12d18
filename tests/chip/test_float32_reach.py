"""Float32's reach on the exact grid: a worst-case bound on every integer sum of a program
(``snn.backends.chip.reach``), shown per layer by ``Program.report()`` and warned about, naming the
layer, by a compile on a ``pow2`` profile when it passes 2^24 units.

Truth: the dense integer reference (``reference_step``) - no input takes a sum past its bound, and the
largest input reaches it - and, for the warning, float32 itself: a conv sum past 2^24 is not exact."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch

import snn
import snn.chip
from snn.backends.chip.errors import Float32ReachWarning
from snn.backends.chip.program import Op, Program
from snn.backends.chip.reach import FLOAT32_EXACT, float32_reach, past_float32, value_bounds
from snn.backends.chip.reference import reference_step
from tests.chip.conftest import SHIPPED
from tests.chip.programs import conv, profile, random_program

SUMMING = ("conv", "attn", "pool")


def _up_to(program: Program, i: int) -> Program:
    """The program's first ``i + 1`` ops, its output the buffer op ``i`` writes."""
    return Program(program.ops[:i + 1], program.buffers, program.ops[i].dst, 1.0, program.profile, {})


@pytest.mark.parametrize("seed", range(6))
def test_no_input_takes_a_sum_past_its_bound(seed):
    """Random programs (every op kind, signed exponents), random frames and membranes: every value
    the reference computes lies within its op's bound, channel by channel (a saturated value only less so)."""
    rng = np.random.default_rng(seed)
    prog = random_program(rng, accumulator_bits=32, signed=True)
    bounds = value_bounds(prog)
    clip = int(prog.ops[0].attrs["clip"])
    frames = rng.integers(0, clip + 1, (3, 4) + prog.input_shape)
    for i, op in enumerate(prog.ops):
        if op.kind not in SUMMING:
            continue
        sub, state = _up_to(prog, i), None
        for f in frames:
            out, state, _ = reference_step(sub, f, state)
            c = prog.buffers[op.dst][0]
            got = np.abs(out.reshape(len(f), c, -1)).max((0, 2))
            assert (got <= bounds[op.name]).all(), (seed, op.name, got, bounds[op.name])


def test_the_largest_input_reaches_the_bound():
    """Input codes at their largest (the table's 200 at clip 3) through a 3x3 conv of +127 weights with
    a bias of 5 and a left shift of 2: the centre of the map is (127 * 9 * 2 * 200) << 2, + 5, worked
    by hand; the residual add of a second writer (-100 weights, 1x1, on the same codes) adds its own."""
    lut = np.array([0, 10, 50, 200], np.int32)
    ops = [Op("input", "input", "frame", "input", {"clip": 3}, {"lut": lut}),
           conv("a", "input", "s", np.full((1, 2, 3, 3), 127), [5], pad=1, src_kind="graded", shift=[-2]),
           conv("b", "input", "s", np.full((1, 2, 1, 1), -100), [-7], mode="add", src_kind="graded")]
    bufs = {"frame": (2, 5, 5), "input": (2, 5, 5), "s": (1, 5, 5)}
    prog = Program(ops, bufs, "s", 1.0, profile(accumulator_bits=32, scale_grid="pow2"), {}).validate()
    a = (127 * 9 * 2 * 200) * 4 + 5
    assert float32_reach(prog) == {"a": a, "b": a + 100 * 2 * 200 + 7}
    # the reference at the largest input: a's value at the centre, then a's minus b's
    frame = np.full((1, 2, 5, 5), 3)
    assert reference_step(_up_to(prog, 1), frame)[0].reshape(5, 5)[2, 2] == a
    assert reference_step(prog, frame)[0].reshape(5, 5)[2, 2] == a - 100 * 2 * 200 - 7


def test_a_sum_past_two_to_the_24_is_not_exact_in_float32():
    """Why 2^24: torch's float32 conv (the float model's own op) of integers sums exactly up to 2^24
    units and loses one past it."""
    w = torch.ones(1, 2, 1, 1)
    for x, exact in [(2 ** 24 - 1, True), (2 ** 24, False)]:
        inp = torch.tensor([float(x), 1.0]).reshape(1, 2, 1, 1)
        y = torch.nn.functional.conv2d(inp, w)
        assert (int(y.item()) == x + 1) is exact, (x, y.item())


def _crafted_checkpoint(tmp_path):
    """The shipped model with ConvBlock1_1.0.conv2's weights 4096 times larger: the residual stream it
    writes takes its finest writer's scale, so this writer's sums shift left by 12 more bits."""
    model, meta = snn.load_checkpoint(SHIPPED)
    with torch.no_grad():
        dict(model.named_parameters())["ConvBlock1_1.0.conv2.weight"].mul_(4096.0)
    path = tmp_path / "crafted.pt"
    snn.save_checkpoint(path, model, class_names=meta["class_names"], input_size=meta["input_size"],
                        extra=meta["extra"], recipe=meta["recipe"])
    return path


def test_the_shipped_model_stays_within_float32():
    """The shipped model on its exact grid (the pins it was snapped on): every sum's bound within 2^24
    (largest 2^23.79, in ConvBlock2_2.0.conv2's residual stream), no warning, and the report says so."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32ReachWarning)
        prog = snn.chip.compile(SHIPPED, profile="exact")
    reach = float32_reach(prog)
    top = max(reach, key=reach.get)
    assert prog.meta["pinned"] is True and not past_float32(prog)
    assert top == "ConvBlock2_2.0.conv2" and round(math.log2(reach[top]), 2) == 23.79
    text = prog.report().to_text()
    assert ("float32 reach: every sum within 2^24 units (largest 2^23.79, ConvBlock2_2.0.conv2)" in text)
    header, rows = text.splitlines()[0].split(), {ln.split()[0]: ln.split() for ln in text.splitlines()[1:]}
    col = header.index("sum_log2")
    assert rows[top][col] == "23.79" and rows["ConvBlock2_2.0.lif2"][col] == "-"
    rep = prog.report().to_dict()
    assert rep["past_float32"] == [] and {r["layer"]: r["sum_bound"] for r in rep["layers"]}[top] == reach[top]


def test_a_crafted_model_past_float32_is_warned_about_naming_the_layer(tmp_path):
    """``eventpipe chip compile --profile exact`` of the crafted checkpoint: one warning line naming the
    layer, the report lists it; the program is still written (the chip's own sums stay exact)."""
    from eventpipe.cli import main

    ckpt = _crafted_checkpoint(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    rc = main(["chip", "compile", str(ckpt), "--profile", "exact", "--calibration", "0",
               "-o", str(tmp_path / "p.npz")], out=out, err=err)
    assert rc == 0 and "wrote" in out.getvalue(), err.getvalue()
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eventpipe: warning: profile exact: the worst-case sum of "
                                                   "ConvBlock1_1.0.conv2 (2^32.46 units)"), lines
    assert "passes float32's 2^24" in lines[0]
    prog = Program.load(tmp_path / "p.npz")
    assert list(past_float32(prog)) == ["ConvBlock1_1.0.conv2"]
    assert float32_reach(prog)["ConvBlock1_1.0.conv2"] > FLOAT32_EXACT
    text = prog.report().to_text()
    assert "float32 reach: 1 layer(s) can pass 2^24 units" in text and text.count("ConvBlock1_1.0.conv2") == 2
    # the generic (fitted) grid makes no such promise: no warning there
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32ReachWarning)
        snn.chip.compile(str(ckpt), profile="generic")
