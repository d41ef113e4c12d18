"""benchmarks/emulator.py: a tiny run prints one line per workload with its anchors, its
NumPy anchor model gives the emulator's events exactly (so the ratio compares like with
like), and bad arguments are one argparse usage line."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.benchmark_script import usage_error
from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "emulator.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_emulator", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_prints_every_workload_against_its_anchors(capsys):
    assert _bench().main(["--quick", "--frames", "4", "--sizes", "16x12", "20x10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "load average" in out[0]
    rows = [line for line in out[1:] if "frames/s" in line and "numpy" in line]
    assert len(rows) == 6  # 2 sizes x (moving, moving + extras, static)
    assert all(" rt " in r and "ratio" in r for r in rows)
    assert sum("same events: True" in r for r in rows) == 4  # the plain workloads agree
    assert all("0.00 M events/s" in r for r in rows if "static" in r)


def test_numpy_anchor_equals_the_emulator_on_a_moving_texture():
    bench = _bench()
    frames = bench.scrolling_frames((24, 16), 6)
    _, n_emu, emu = bench.run_emulator(frames, (24, 16), None)
    _, n_np, anchor = bench.run_numpy(frames, (24, 16))
    assert n_emu > 100 and n_emu == n_np
    for a, b in zip(emu, anchor):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args,says", [
    (["--repeat", "0"], "argument --repeat: must be >= 1, got 0"),
    (["--frames", "1"], "argument --frames: must be >= 2, got 1"),
    (["--sizes", "12by3"], "argument --sizes: expected WxH, e.g. 128x128, got '12by3'"),
    (["--sizes", "0x5"], "argument --sizes: width and height must be >= 1, got '0x5'")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("emulator", args) == f"emulator.py: error: {says}"
