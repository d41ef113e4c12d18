"""docs/io.md, the claims no other test held: the block defaults (4 MiB; Prophesee readers
256 KiB), a CSV header in any column order, EventFormatError being a ValueError that names
file, offset and field, and the fuzz CI's 40 inputs per format (560 in all)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.io import open_reader, read_events
from tests.conftest import SAMPLES, expected_events, sample_path

PROPHESEE = {"evt2_sample.raw", "evt3_sample.raw", "sample_ncars.dat"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_block_bytes_defaults(name):
    """"Readers decode the file in bounded blocks (`block_bytes`, default 4 MiB; Prophesee
    readers 256 KiB)"."""
    reader = open_reader(sample_path(name))
    want = 256 << 10 if name in PROPHESEE else 4 << 20
    assert reader.block_bytes == want, (reader.format, reader.block_bytes)


def test_csv_header_in_any_column_order(tmp_path):
    ev = expected_events("sample_ncars.dat")[:500]
    path = tmp_path / "shuffled.csv"
    rows = np.stack([ev["p"], ev["y"], ev["t"], ev["x"]], axis=1).astype(np.int64)
    np.savetxt(path, rows, fmt="%d", delimiter=",", header="p,y,t,x", comments="")
    got = read_events(path)
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(got[f], ev[f])


def test_event_format_error_is_a_value_error_naming_file_offset_and_field(tmp_path):
    data = sample_path("sample_ncars.dat").read_bytes()
    body = data.index(b"\n", data.rindex(b"% ")) + 1 + 2  # header lines, then type + size bytes
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:body + 8 * 10 + 3])  # ten whole 8-byte events and 3 bytes of the next
    with pytest.raises(ValueError) as info:
        read_events(cut)
    err = info.value
    assert isinstance(err, EventFormatError)
    assert err.offset == body + 80 and err.field and str(cut) in str(err)
    assert len(err.partial) == 10  # "first yields the events before it"
    np.testing.assert_array_equal(err.partial, expected_events("sample_ncars.dat")[:10])


def test_fuzz_ci_runs_40_inputs_for_each_of_14_formats():
    """"CI runs 40 inputs for each of the 14 formats (560 in all, the recorders' `h5` too)"."""
    from eventpipe.io.formats import format_names
    from tests.fuzz import test_fuzz_ci as ci

    marks = ci.test_mutated_inputs_give_only_typed_errors.pytestmark
    (param,) = [m for m in marks if m.name == "parametrize"]
    assert list(param.args[1]) == format_names()
    assert "h5" in format_names()  # the recordings too
    assert len(format_names()) == 14 and ci.N_PER_FORMAT == 40  # 560 inputs in all


def _atis_es(tmp_path):
    """A hand-made Event Stream 2.0 file of the ATIS type (8 x 6): byte 0 = dt << 2 | p << 1 |
    is_tc, then x, y (u16 LE, y from the bottom); 0xFD / 0xFF are overflows of 63 / 189 us."""
    import struct

    body = bytearray()

    def ev(dt, pol, tc, x, y):
        body.append((dt << 2) | (pol << 1) | tc)
        body.extend(struct.pack("<HH", x, y))

    ev(5, 1, 0, 1, 2)
    ev(3, 0, 0, 7, 5)
    ev(0, 1, 1, 3, 3)   # a threshold crossing: dropped
    body.append(0xFD)   # +63 us
    ev(2, 0, 0, 0, 0)
    body.append(0xFF)   # +189 us
    ev(1, 1, 0, 4, 1)
    path = tmp_path / "atis.es"
    path.write_bytes(b"Event Stream" + bytes([2, 0, 0, 2]) + struct.pack("<HH", 8, 6) + body)
    return path


def test_event_stream_atis_type_is_read(tmp_path):
    """io.md's table: `es` | Event Stream 2.x (DVS, ATIS) | y flipped to a top-left origin."""
    path = _atis_es(tmp_path)
    ev = read_events(path)
    assert ev["t"].tolist() == [5, 8, 73, 263]           # worked by hand
    assert ev["x"].tolist() == [1, 7, 0, 4]
    assert ev["y"].tolist() == [6 - 1 - 2, 6 - 1 - 5, 6 - 1 - 0, 6 - 1 - 1]
    assert ev["p"].tolist() == [1, 0, 0, 1]
    assert open_reader(path).info.sensor_size == (8, 6)
    faery = pytest.importorskip("faery", reason="faery (the interop extra) is not installed")
    ref = np.concatenate([np.asarray(c) for c in faery.events_stream_from_file(str(path))])
    assert ev["t"].tolist() == ref["t"].tolist() and ev["x"].tolist() == ref["x"].tolist()
    assert ev["y"].tolist() == ref["y"].tolist() and ev["p"].tolist() == ref["on"].astype(int).tolist()


def test_evt3_time_low_stepping_back_a_few_us_is_kept(tmp_path):
    """"a TIME_LOW stepping back a few µs is kept" (openeb replaces the low 12 bits; no loop,
    no drop): TIME_HIGH 1, TIME_LOW 10, event, TIME_LOW 7, event -> t = 4106 then 4103."""
    hdr = b"% evt 3.0\n% format EVT3;height=480;width=640\n% end\n"
    words = [0x8000 | 1, 0x6000 | 10, 0x0000 | 0, 0x2000 | 1, 0x6000 | 7, 0x2000 | 2]
    path = tmp_path / "back.raw"
    path.write_bytes(hdr + np.array(words, "<u2").tobytes())
    ev = read_events(path, format="evt3")
    assert ev["t"].tolist() == [(1 << 12) | 10, (1 << 12) | 7]
    assert ev["x"].tolist() == [1, 2]


def test_aedat4_other_streams_are_skipped_undecompressed(tmp_path):
    """io.md's table: AEDAT 4.0 "other streams skipped undecompressed": the real sample's IMU and
    trigger packets, overwritten with bytes that are no LZ4 frame, change nothing."""
    import struct

    src = sample_path("sample.aedat4")
    reader = open_reader(src)
    reader.read()
    assert set(reader.info.extras["streams"].values()) > {"EVTS"}  # the sample has others
    data = bytearray(src.read_bytes())
    pos, end, spoiled = reader.data_offset, reader.data_table_position, 0
    while pos < end:
        sid, size = struct.unpack_from("<ii", data, pos)
        if sid != reader.stream:
            data[pos + 8:pos + 8 + size] = b"\xff" * size
            spoiled += 1
        pos += 8 + size
    assert spoiled > 0
    path = tmp_path / "spoiled.aedat4"
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(read_events(path), expected_events("sample.aedat4"))


def test_evt2_non_cd_words_are_skipped(tmp_path):
    """io.md's table: EVT 2.0 "non-CD words skipped": EXT_TRIGGER (0xA), OTHERS (0xE) and
    CONTINUED (0xF) words between two CD events change nothing (TIME_HIGH 1 = 64 us)."""
    hdr = b"% evt 2.0\n% format EVT2;height=480;width=640\n% end\n"
    cd_on, cd_off = (1 << 28) | (4 << 22) | (7 << 11) | 8, (0 << 28) | (5 << 22) | (9 << 11) | 10
    words = [(8 << 28) | 1, cd_on, (0xA << 28) | 123, (0xE << 28) | 5, (0xF << 28) | 77, cd_off]
    path = tmp_path / "other.raw"
    path.write_bytes(hdr + np.array(words, "<u4").tobytes())
    ev = read_events(path)
    assert [tuple(int(v) for v in e) for e in ev[["x", "y", "t", "p"]]] == [
        (7, 8, 64 + 4, 1), (9, 10, 64 + 5, 0)]


def test_a_headerless_raw_file_is_read_by_its_extension(tmp_path):
    """"the extension is the fallback (`.bin`, headerless RAW)": EVT 3.0 words with no `%`
    header, named `.raw`, are read as EVT 3.0 (size inferred); named otherwise they are not
    recognised."""
    from eventpipe.errors import UnknownFormatError
    from eventpipe.io.formats import detect_format

    body = np.array([0x8000 | 1, 0x6000 | 10, 0x0000 | 3, 0x2000 | 5], "<u2").tobytes()
    path = tmp_path / "bare.raw"
    path.write_bytes(body)
    assert detect_format(path).name == "evt3"
    reader = open_reader(path)
    assert reader.read()[["x", "y", "t", "p"]].tolist() == [(5, 3, (1 << 12) | 10, 0)]
    assert reader.info.sensor_size_source == "inferred"
    other = tmp_path / "bare.data"
    other.write_bytes(body)
    with pytest.raises(UnknownFormatError):
        detect_format(other)


def test_dat_reads_cd_and_2d_event_types_alike(tmp_path):
    """io.md's table: `dat` is "Prophesee/Chronocam DAT (CD and 2D)", "8-byte events only":
    the real sample (type 0x00, Event2D) relabelled as type 0x0C (EventCD) decodes the same;
    an event size other than 8 is refused naming `event_size` (it used to be taken for
    AEDAT 2.0 by its `.dat` extension and fail as "truncated event: 1 of 6 bytes")."""
    data = bytearray(sample_path("sample_ncars.dat").read_bytes())
    body = data.index(b"\n", data.rindex(b"% ")) + 1
    assert data[body:body + 2] == b"\x00\x08"  # Event2D, 8 bytes
    data[body] = 0x0C
    cd = tmp_path / "cd.dat"
    cd.write_bytes(bytes(data))
    np.testing.assert_array_equal(read_events(cd), expected_events("sample_ncars.dat"))
    data[body + 1] = 16
    wide = tmp_path / "wide.dat"
    wide.write_bytes(bytes(data))
    with pytest.raises(EventFormatError) as info:
        read_events(wide)
    assert info.value.field == "event_size"
