"""benchmarks/recorder_create.py: a tiny run times EventRecorder's creation against h5py's
high-level calls making the same file, and that anchor really makes the same file; bad
arguments are one argparse usage line (exit 2)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from tests.benchmark_script import load, usage_error


def _describe(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: v for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                plist = obj.id.get_create_plist()
                out[name] = (obj.dtype, obj.shape, obj.maxshape, obj.chunks,
                             [plist.get_filter(i)[:3] for i in range(plist.get_nfilters())],
                             sorted(attrs))
            else:
                out[name] = sorted(attrs)
        f.visititems(visit)
        out["/"] = sorted(f.attrs)
    return out


@pytest.mark.parametrize("compression", ["none", "lzf", "gzip:1"])
def test_the_anchor_makes_the_recorders_file(tmp_path, compression):
    bench = load("recorder_create")
    ours = tmp_path / "ours.h5"
    bench.ours(ours, compression).close()
    theirs = tmp_path / "theirs.h5"
    f = bench.high_level(theirs, bench.layout(ours, compression))
    assert f.swmr_mode
    f.close()
    assert _describe(theirs) == _describe(ours)
    with h5py.File(ours, "r") as a, h5py.File(theirs, "r") as b:
        np.testing.assert_array_equal(a["events"].attrs["sensor_size"],
                                      b["events"].attrs["sensor_size"])
        assert a["events"].attrs["compression"] == b["events"].attrs["compression"]


def test_quick_run_prints_each_compression_and_the_worst(capsys):
    assert load("recorder_create").main(["--quick", "--repeat", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("recorder_create benchmark") and "best of 2" in out[0]
    lines = [ln for ln in out if ln.startswith("create")]
    assert [ln.split()[1] for ln in lines] == ["none", "lzf"]
    ratios = {ln.split()[1]: float(re.search(r"ratio +([\d.]+)x", ln).group(1)) for ln in lines}
    assert all("21 datasets, 15 attributes" in ln for ln in lines)
    # the worst as printed (two may tie at two decimals: the benchmark compares them unrounded)
    low = min(ratios.values())
    assert any(out[-1].startswith(f"worst ratio {low:.2f}x ({name})")
               for name, r in ratios.items() if r == low), (out[-1], ratios)


@pytest.mark.parametrize("args,says", [
    (["--repeat", "0"], "argument --repeat: must be >= 1, got 0"),
    (["--events", "x"], "argument --events: invalid int value: 'x'")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("recorder_create", args) == f"recorder_create.py: error: {says}"
