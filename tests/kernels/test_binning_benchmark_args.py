"""benchmarks/binning.py refuses a --repeat below 1 with one argparse line (it crashed in min()
of no runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("bad,says", [("0", "must be >= 1, got 0"), ("-1", "must be >= 1, got -1"),
                                      ("abc", "invalid int value: 'abc'")])
def test_repeat_below_one_is_one_usage_line(bad, says):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "binning.py"), "--repeat", bad,
                           "--workloads"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"binning.py: error: argument --repeat: {says}"
