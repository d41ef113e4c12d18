"""Every real recording, detected by content, decodes to the independent decoders' events."""

import io
import json

import numpy as np
import pytest

from eventpipe.cli import main
from eventpipe.errors import EventFormatError, UnknownFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.io import detect_format, iter_events, open_reader, read_events
from eventpipe.io.formats import FORMATS
from tests.conftest import expected_events, expected_meta, sample_path

FORMAT_OF = {
    "sample.aedat4": "aedat4",
    "IMU_translBoxes.aedat": "aedat2",
    "evt2_sample.raw": "evt2",
    "evt3_sample.raw": "evt3",
    "sample_ncars.dat": "dat",
    "sample_nmnist.bin": "atis_bin",
    "dvs.es": "es",
}


def test_detects_format_by_content(sample_name):
    assert detect_format(sample_path(sample_name)).name == FORMAT_OF[sample_name]


def test_content_beats_extension(sample_name, tmp_path):
    odd = tmp_path / "recording.data"
    odd.write_bytes(sample_path(sample_name).read_bytes())
    if FORMAT_OF[sample_name] == "atis_bin":
        # ATIS .bin has no header: recognised by extension only.  Renamed, it must not be
        # taken for another format: a typed error naming the file and the choices, and
        # format= still reads it exactly
        with pytest.raises(UnknownFormatError, match="atis_bin") as ei:
            detect_format(odd)
        assert str(odd) in str(ei.value)
        ev, exp = read_events(odd, format="atis_bin"), expected_events(sample_name)
        assert all(np.array_equal(ev[f], exp[f]) for f in ("x", "y", "t", "p"))
        return
    assert detect_format(odd).name == FORMAT_OF[sample_name]


def test_read_events_matches_expected(sample_name):
    ev = read_events(sample_path(sample_name))
    exp = expected_events(sample_name)
    assert ev.dtype == EVENT_DTYPE
    for f in ("x", "y", "t", "p"):
        assert np.array_equal(ev[f], exp[f]), f


@pytest.mark.parametrize("chunk_events", [1000, 65_537])
def test_iter_events_concatenates_to_read(sample_name, chunk_events):
    exp = expected_events(sample_name)
    chunks = list(iter_events(sample_path(sample_name), chunk_events=chunk_events))
    assert all(len(c) == chunk_events for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), exp)


def test_iter_events_by_time(sample_name):
    exp = expected_events(sample_name)
    chunks = list(iter_events(sample_path(sample_name), chunk_us=10_000))
    assert np.array_equal(np.concatenate(chunks), exp)


def test_metadata_sensor_size_and_provenance(sample_name):
    reader = open_reader(sample_path(sample_name))
    reader.read()
    want = expected_meta(sample_name)["sensor_size_wh"]
    if want is not None:
        assert reader.info.sensor_size == tuple(want)
        assert reader.info.sensor_size_source in ("file", "table")
    else:
        assert reader.info.sensor_size_source == "inferred"
    forced = open_reader(sample_path(sample_name), sensor_size=(2000, 2000))
    assert forced.info.sensor_size == (2000, 2000)
    assert forced.info.sensor_size_source == "caller"


def test_info_cli_json_agrees_with_expected(sample_name):
    out = io.StringIO()
    assert main(["info", str(sample_path(sample_name)), "--json"], out=out) == 0
    summary = json.loads(out.getvalue())
    meta = expected_meta(sample_name)
    assert summary["events"] == meta["events"]
    assert summary["t_first"] == meta["t_first"]
    assert summary["t_last"] == meta["t_last"]
    assert summary["format"] == FORMAT_OF[sample_name]
    assert summary["on_fraction"] == pytest.approx(meta["sum_p"] / meta["events"])


def test_info_cli_text(tmp_path):
    out = io.StringIO()
    assert main(["info", str(sample_path("evt3_sample.raw"))], out=out) == 0
    text = out.getvalue()
    assert "219,596" in text and "1280 x 720" in text and "evt3" in text


def test_tonic_accepts_our_arrays():
    tonic_functional = pytest.importorskip("tonic.functional")
    ev = read_events(sample_path("sample_nmnist.bin"))
    before = ev.copy()
    import tonic.io
    theirs = tonic.io.make_structured_array(ev["x"], ev["y"], ev["t"], ev["p"])
    frames = tonic_functional.to_frame_numpy(ev, sensor_size=(34, 34, 2), n_time_bins=3)
    want = tonic_functional.to_frame_numpy(theirs, sensor_size=(34, 34, 2), n_time_bins=3)
    assert frames.shape == (3, 2, 34, 34) and np.array_equal(frames, want)
    assert frames.sum() >= len(ev) - 1  # tonic drops the very last event (see docs/kernels.md)
    assert np.array_equal(ev, before)


def test_formats_cli_lists_every_format():
    out = io.StringIO()
    assert main(["formats", "--json"], out=out) == 0
    names = [f["name"] for f in json.loads(out.getvalue())]
    assert names == [f.name for f in FORMATS]
    for spec in FORMATS:  # every table entry points at a real class
        cls = spec.load()
        assert cls.format == spec.name


def test_unknown_file_gets_a_typed_error(tmp_path):
    junk = tmp_path / "junk.xyz"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnknownFormatError, match="junk.xyz"):
        read_events(junk)
    err = io.StringIO()
    assert main(["info", str(junk)], out=io.StringIO(), err=err) == 3
    assert "junk.xyz" in err.getvalue()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "nope.raw")
    err = io.StringIO()
    assert main(["info", str(tmp_path / "nope.raw")], out=io.StringIO(), err=err) == 3  # DATA
    assert "nope.raw" in err.getvalue()


def test_truncation_keeps_events_before_damage(sample_name, tmp_path):
    data = sample_path(sample_name).read_bytes()
    cut = tmp_path / ("cut_" + sample_path(sample_name).name)
    cut.write_bytes(data[: len(data) * 2 // 3 + 1])
    fmt = FORMAT_OF[sample_name]
    exp = expected_events(sample_name)
    try:
        ev = read_events(cut, format=fmt)
    except EventFormatError as exc:
        assert str(cut) in str(exc) and exc.offset is not None
        part = exc.partial
        assert part is not None and 0 < len(part) < len(exp)
        assert np.array_equal(part, exp[: len(part)])
        with pytest.warns(Warning):
            warned = read_events(cut, format=fmt, on_error="warn")
        assert np.array_equal(warned, part)
    else:  # the cut fell exactly on a record boundary: a valid, shorter file
        assert 0 < len(ev) < len(exp)
        assert np.array_equal(ev, exp[: len(ev)])
