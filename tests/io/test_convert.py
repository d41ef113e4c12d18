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
    assert rc == ExitStatus.CONFIG and "writable formats: evt3, evt2," in err.getvalue(), err.getvalue()
    # the flag or the file named plainly (was: cannot write "format 'mp4'", a repr of a repr)
    said = ("cannot write --to 'mp4': no such writable format;" if how == "--to" else
            "cannot write 'x.xyz': no format writes '.xyz'; ")
    assert said in err.getvalue() and '"' not in err.getvalue(), err.getvalue()
    assert ("(pass --to)" in err.getvalue()) is (how == "suffix")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("to", ["evt3", "dat"])
def test_convert_events_outside_the_sensor_name_the_source(tmp_path, to):
    """A recording holding events outside its sensor size (a source that sent them; the
    recorder keeps what it saw) converted to a format that cannot hold them: one line naming
    the source, the first such event and the remedy, exit 3 (was 'encode_evt3: coordinates
    must be < 2048 and inside sensor_size', exit 1), and no output file."""
    from eventpipe.events import make_events
    from recorders import EventRecorder

    src = tmp_path / "wide.h5"
    with EventRecorder(src, (64, 48)) as rec:
        rec.write(make_events([1, 2, 100, 3], [1, 2, 3, 4], [10, 20, 30, 40], [1, 0, 1, 0]))
    dst = tmp_path / f"out.{to}"
    err = io.StringIO()
    rc = main(["convert", str(src), str(dst), "--to", to], out=io.StringIO(), err=err)
    assert rc == ExitStatus.DATA and err.getvalue().count("\n") == 1, err.getvalue()
    assert str(src) in err.getvalue() and "event 2 (x=100, y=3)" in err.getvalue()
    assert "outside the sensor size 64x48" in err.getvalue() and "--sensor-size" in err.getvalue()
    assert not dst.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_convert_to_h5_stopped_half_way_leaves_no_partial_file(tmp_path, monkeypatch, existing):
    """Ctrl-C during ``convert X OUT.h5`` left OUT.h5 holding part of the events (it said
    ``complete True``), and had already destroyed an existing OUT.h5; the formats written in
    one piece leave nothing.  Now the recording is written beside OUT.h5 and moved there
    whole: an interrupt leaves no file, and an existing one untouched."""
    import recorders

    dst = tmp_path / "out.h5"
    if existing:
        dst.write_bytes(b"the old recording")

    def interrupted(self, events):
        raise KeyboardInterrupt

    monkeypatch.setattr(recorders.EventRecorder, "write", interrupted)
    rc = main(["convert", str(sample_path("sample_ncars.dat")), str(dst), "--overwrite"],
              out=io.StringIO(), err=io.StringIO())
    assert rc == ExitStatus.INTERRUPTED
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.h5"] if existing else [])
    if existing:
        assert dst.read_bytes() == b"the old recording"
    monkeypatch.undo()
    assert main(["convert", str(sample_path("sample_ncars.dat")), str(dst), "--overwrite"],
                out=io.StringIO(), err=io.StringIO()) == 0
    assert np.array_equal(read_events(dst), expected_events("sample_ncars.dat"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


@pytest.mark.parametrize("name", ["out.h5", "out.raw", "out.npy"])
def test_convert_refuses_an_existing_output_unless_told(tmp_path, name):
    """``convert`` replaced an existing DST silently, where ``record`` refuses (a recording is
    data: a typo in DST destroyed one).  Now exit 4 naming ``--overwrite``, before reading the
    source, the file untouched; with ``--overwrite`` it is replaced."""
    dst = tmp_path / name
    dst.write_bytes(b"someone's recording")
    err = io.StringIO()
    rc = main(["convert", str(sample_path("sample_ncars.dat")), str(dst)], out=io.StringIO(), err=err)
    assert rc == ExitStatus.CONFIG and err.getvalue().count("\n") == 1, err.getvalue()
    assert "already exists" in err.getvalue() and "--overwrite" in err.getvalue()
    assert dst.read_bytes() == b"someone's recording"
    assert main(["convert", str(sample_path("sample_ncars.dat")), str(dst), "--overwrite"],
                out=io.StringIO(), err=io.StringIO()) == 0
    assert np.array_equal(read_events(dst), expected_events("sample_ncars.dat"))


@pytest.mark.parametrize("target", ["raw", "evt2", "dat", "bin", "es"])
def test_negative_timestamps_name_the_event_and_the_formats_that_hold_them(tmp_path, target):
    """A source with negative times (a CSV, say) to a format of unsigned times: exit 3 naming the
    source, the first such event and the formats that hold them - each of which does, round trip
    (was exit 1, 'evt3 cannot hold negative timestamps', a runtime failure)."""
    src = tmp_path / "neg.csv"
    src.write_text("t,x,y,p\n5,1,1,1\n-5,2,2,0\n-3,1,2,1\n")
    dst = tmp_path / f"x.{target}"
    argv = ["convert", str(src), str(dst)] + (["--to", "evt2"] if target == "evt2" else [])
    err = io.StringIO()
    assert main(argv, out=io.StringIO(), err=err) == ExitStatus.DATA, err.getvalue()
    assert f"{src}, field 't': event 1 (t=-5 us) and 1 more have negative timestamps" in err.getvalue()
    assert not dst.exists()
    want = read_events(src)
    for ok in ("h5", "npy", "npz", "csv"):   # what the line offers
        out = tmp_path / f"ok.{ok}"
        assert main(["convert", str(src), str(out)], out=io.StringIO(), err=io.StringIO()) == 0
        assert np.array_equal(read_events(out), want), ok


def test_a_sensor_no_aedat2_chip_holds_is_a_data_error_offering_aedat4(tmp_path):
    """Was exit 1 ('no AEDAT 2.0 chip layout holds a 5000x5000 sensor'); the .aedat4 it offers
    holds it, round trip."""
    src = sample_path("sample_ncars.dat")
    err = io.StringIO()
    rc = main(["convert", str(src), str(tmp_path / "x.aedat"), "--sensor-size", "5000x5000"],
              out=io.StringIO(), err=err)
    assert rc == ExitStatus.DATA and (f"{src}, field 'sensor size': a 5000x5000 sensor fits no "
                                      "AEDAT 2.0 chip layout (the largest is 640x480): write "
                                      ".aedat4 instead") in err.getvalue(), err.getvalue()
    assert not (tmp_path / "x.aedat").exists()
    out = tmp_path / "x.aedat4"
    assert main(["convert", str(src), str(out), "--sensor-size", "5000x5000"],
                out=io.StringIO(), err=io.StringIO()) == 0
    assert np.array_equal(read_events(out), expected_events("sample_ncars.dat"))


@pytest.mark.parametrize("target", ["es", "aedat"])
def test_no_events_and_no_sensor_size_asks_for_one(tmp_path, target):
    """A source of no events that states no sensor size (a CSV of its header alone) to a format
    that must state one: exit 4 naming the flag that gives it (was exit 1: 'es needs a sensor
    size', or numpy's 'zero-size array to reduction operation maximum' for .aedat); with the
    flag it is written, and reads back empty."""
    src = tmp_path / "empty.csv"
    src.write_text("t,x,y,p\n")
    dst = tmp_path / f"x.{target}"
    err = io.StringIO()
    assert main(["convert", str(src), str(dst)], out=io.StringIO(), err=err) == ExitStatus.CONFIG
    assert f"needs a sensor size and {src} states none" in err.getvalue()
    assert "--sensor-size WxH" in err.getvalue() and not dst.exists()
    assert main(["convert", str(src), str(dst), "--sensor-size", "64x48"], out=io.StringIO()) == 0
    assert len(read_events(dst)) == 0
