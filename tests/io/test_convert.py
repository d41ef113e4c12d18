"""``eventpipe convert``: every writable format round-trips a real recording exactly."""

import io

import numpy as np
import pytest

from eventpipe.cli import main
from eventpipe.errors import ExitStatus
from eventpipe.io import read_events
from tests.conftest import expected_events, sample_path

TARGETS = ["evt3", "evt2", "dat", "aedat4", "aedat3", "aedat2", "es", "npy", "npz", "csv"]


@pytest.mark.parametrize("to", TARGETS)
def test_convert_round_trip(to, tmp_path):
    src = sample_path("sample_ncars.dat")
    dst = tmp_path / f"out.{to}"
    out = io.StringIO()
    rc = main(["convert", str(src), str(dst), "--to", to, "--sensor-size", "120x100"], out=out,
              err=io.StringIO())
    assert rc == 0 and "2,009 events" in out.getvalue()
    back = read_events(dst, format=to)
    exp = expected_events("sample_ncars.dat")
    assert np.array_equal(back, exp)


@pytest.mark.parametrize("how", ["suffix", "--to"])
def test_convert_unknown_target_is_clear(tmp_path, how):
    """An output format we cannot write is a bad flag value (exit 4, as the runtime table in
    docs/runtime.md says for flags), not a runtime failure (it was exit 1)."""
    err = io.StringIO()
    argv = ["convert", str(sample_path("sample_ncars.dat"))]
    argv += [str(tmp_path / "x.xyz")] if how == "suffix" else [str(tmp_path / "x.h5"), "--to", "mp4"]
    rc = main(argv, out=io.StringIO(), err=err)
    assert rc == ExitStatus.CONFIG and "writable formats" in err.getvalue(), err.getvalue()
    assert list(tmp_path.iterdir()) == []
