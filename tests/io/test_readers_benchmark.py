"""benchmarks/readers.py: a tiny run prints every format on its three shapes against its anchor
and reports the worst ratio; bad arguments are one argparse usage line (exit 2)."""

from __future__ import annotations

import re

import pytest

from tests.benchmark_script import load, usage_error

ANCHORS = {"aedat2": "tonic read_d", "aedat3": "tonic read_dvs_ibm",
           "atis_bin": "tonic read_mnist_file", "es": "faery", "csv": "np.loadtxt"}


def test_tiny_run_prints_each_shape_against_its_anchor_and_the_worst(capsys):
    pytest.importorskip("tonic")
    pytest.importorskip("faery")
    assert load("readers").main(["--events", "1000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("readers benchmark") and ">= 1,000 events per file" in out[0]
    worst_all = []
    for fmt, anchor in ANCHORS.items():
        lines = [ln for ln in out if ln.split()[0] == fmt]
        shapes, worst = lines[:-1], lines[-1]
        assert len(shapes) == 3, lines
        ratios = []
        for ln in shapes:
            assert anchor in ln, ln
            n = int(re.search(r"events +([\d,]+)", ln).group(1).replace(",", ""))
            assert n >= 1000, ln
            ratios.append(float(re.search(r"ratio +([\d.]+)x", ln).group(1)))
        got = float(re.search(r"worst ratio +([\d.]+)x", worst).group(1))
        assert got == min(ratios), (lines, ratios)
        worst_all.append(got)
    assert out[-1].startswith(f"worst over all: {min(worst_all):.2f}x")


@pytest.mark.parametrize("args,says", [
    (["--repeat", "0"], "argument --repeat: must be >= 1, got 0"),
    (["--events", "10"], "argument --events: must be >= 1000, got 10"),
    (["--events", "many"], "argument --events: invalid int value: 'many'"),
    (["--only", "evt9"], "argument --only: invalid choice: 'evt9'")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("readers", args).startswith(f"readers.py: error: {says}")


def test_tonic_remarks_in_docs_io():
    """docs/io.md: tonic 1.7's read_dvs_128 / read_dvs_ibm fail on their own header call (so the
    benchmark runs their arithmetic itself), and tonic's AEDAT readers keep every word where ours
    skip the APS and IMU words of the DAVIS sample."""
    tio = pytest.importorskip("tonic.io")
    from eventpipe.io import read_events
    from tests.conftest import sample_path

    path = str(sample_path("IMU_translBoxes.aedat"))
    for reader in (tio.read_dvs_128, tio.read_dvs_ibm):
        with pytest.raises(ValueError, match="too many values to unpack"):
            reader(path)
    bench, data = load("readers"), sample_path("IMU_translBoxes.aedat").read_bytes()
    n_tonic = bench.tonic_aedat(path, "davis")
    assert n_tonic == len(tio.read_davis_346(path)[2])  # the copy does what tonic's reader does
    assert n_tonic == (len(data) - bench.aedat2_header_end(data)) // 8  # every 8-byte word
    assert len(read_events(path)) == 162_771 < n_tonic
