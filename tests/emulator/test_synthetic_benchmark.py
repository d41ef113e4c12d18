"""benchmarks/synthetic.py: a tiny run prints the three workloads against real time, and bad
arguments are one argparse usage line."""

from __future__ import annotations

import importlib.util

import pytest

from tests.benchmark_script import usage_error
from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "synthetic.py"


def test_tiny_run_prints_each_workload_against_real_time(capsys):
    spec = importlib.util.spec_from_file_location("bench_synthetic", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--size", "24", "--clip-ms", "30", "--stream-s", "0.05"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "load average" in out[0] and "4 classes" in out[0] and "anchor: real time" in out[0]
    assert out[1].startswith("render_clip") and out[2].startswith("make_clip")
    assert out[3].startswith("SyntheticStream") and "0.05 s in" in out[3]
    assert all(" rt " in line for line in out[1:4])


@pytest.mark.parametrize("args,says", [
    (["--stream-s", "0"], "argument --stream-s: must be > 0, got 0"),
    (["--stream-s", "x"], "argument --stream-s: invalid number: 'x'"),
    (["--stream-s", "inf"], "argument --stream-s: must be a finite number, got inf"),
    (["--size", "0"], "--size and --clip-ms must be >= 1")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("synthetic", args) == f"synthetic.py: error: {says}"
