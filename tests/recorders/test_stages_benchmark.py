"""benchmarks/recorder_stages.py: a tiny run prints each stage per shape against the np.copy
anchor and the worst shape per stage; the direct-chunk stage writes a file plain h5py reads
back as the events; bad arguments are one argparse usage line (exit 2)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from tests.benchmark_script import load, usage_error


def test_tiny_run_prints_the_stages_and_the_worst_shape(capsys):
    assert load("recorder_stages").main(["--events", "40000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("recorder_stages benchmark") and "40,000 events" in out[0]
    got = {}
    for ln in out[1:3]:
        shape = ln.split()[1]
        got[shape] = {k: float(v) for k, v in re.findall(
            r"(encoder|checksum|index|direct chunks|whole) +([\d.]+) ns/ev", ln)}
        got[shape]["create+close"] = float(re.search(r"create\+close ([\d.]+) ms", ln).group(1))
        assert "anchor np.copy" in ln and len(got[shape]) == 6, ln
    assert sorted(got) == ["random", "sample"]
    for stage in ("encoder", "checksum", "index", "direct chunks", "whole"):
        shape = max(got, key=lambda s: got[s][stage])
        assert f"{stage} {got[shape][stage]:.2f} ns/ev ({shape})" in out[3], (stage, out[3])


def test_the_direct_chunks_are_the_events(tmp_path, monkeypatch):
    """The stage times real lzf chunks with their checksums: what it writes reads back through
    plain h5py (which checks them)."""
    bench = load("recorder_stages")
    rng = np.random.default_rng(0)
    from eventpipe.events import EVENT_DTYPE
    ev = np.zeros(3 * 1024, EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, 640, len(ev)), rng.integers(0, 480, len(ev))
    ev["t"], ev["p"] = np.sort(rng.integers(0, 10**6, len(ev))), rng.integers(0, 2, len(ev))
    chunks, _ = bench.encoded_chunks(ev, 1024)
    chunks, _ = bench.sealed(chunks, 1024)
    unlinked = []
    monkeypatch.setattr(type(tmp_path), "unlink", lambda self: unlinked.append(self))
    bench.direct_chunks(tmp_path / "d.h5", chunks, len(ev), 1024)
    assert unlinked == [tmp_path / "d.h5"]
    with h5py.File(tmp_path / "d.h5", "r") as f:
        for name in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(f[name][:], ev[name])


@pytest.mark.parametrize("args,says", [
    (["--repeat", "0"], "argument --repeat: must be >= 1, got 0"),
    (["--events", "100"], "argument --events: must be >= 16384, got 100")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("recorder_stages", args) == f"recorder_stages.py: error: {says}"
