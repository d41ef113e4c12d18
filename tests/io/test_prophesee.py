"""Prophesee RAW EVT 2.0 / EVT 3.0 and DAT readers, header parsing and encoders."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE, make_events
from eventpipe.io import iter_events, open_reader, read_events
from eventpipe.io.prophesee import header as ph
from eventpipe.io.dat import DatReader, encode_dat
from eventpipe.io.evt2 import Evt2Reader, encode_evt2
from eventpipe.io.evt3 import Evt3Reader, encode_evt3
from tests.conftest import expected_events, sample_path

SAMPLES = {  # name -> (format, reader, expected sensor size, provenance)
    "evt2_sample.raw": ("evt2", Evt2Reader, (640, 480), "table"),
    "evt3_sample.raw": ("evt3", Evt3Reader, (1280, 720), "table"),
    "sample_ncars.dat": ("dat", DatReader, (78, 42), "inferred"),
}
READERS = {"evt2": Evt2Reader, "evt3": Evt3Reader, "dat": DatReader}


def _equal(a, b) -> bool:
    return a.dtype == EVENT_DTYPE and all(np.array_equal(a[f], b[f]) for f in "xytp")


@pytest.fixture(params=sorted(SAMPLES))
def sample(request):
    return request.param


# -- exact decoding -----------------------------------------------------------------------------

def test_sample_decodes_exactly(sample):
    fmt, cls, size, source = SAMPLES[sample]
    reader = open_reader(sample_path(sample), format=fmt)
    ev = reader.read()
    assert _equal(ev, expected_events(sample))
    assert reader.info.sensor_size == size and reader.info.sensor_size_source == source


def test_sniff_by_content(sample):
    head = sample_path(sample).read_bytes()[: 1 << 16]
    fmt = SAMPLES[sample][0]
    assert {name for name, cls in READERS.items() if cls.sniff(head)} == {fmt}


@pytest.mark.parametrize("block_bytes", [64, 100, 4097, None])
@pytest.mark.parametrize("chunk", [dict(chunk_events=97), dict(chunk_events=4096),
                                   dict(chunk_events=65_537), dict(), dict(chunk_us=1000),
                                   dict(chunk_us=33_333, chunk_events=5000)])
def test_chunked_equals_whole(sample, block_bytes, chunk):
    fmt = SAMPLES[sample][0]
    opts = {} if block_bytes is None else {"block_bytes": block_bytes}
    chunks = list(iter_events(sample_path(sample), format=fmt, **opts, **chunk))
    whole = expected_events(sample)
    assert _equal(np.concatenate(chunks), whole)
    if "chunk_events" in chunk and "chunk_us" not in chunk:
        assert all(len(c) == chunk["chunk_events"] for c in chunks[:-1])


@pytest.mark.parametrize("size", [1, 7])
@pytest.mark.parametrize("fmt", ["evt2", "evt3"])
def test_small_chunks_with_tiny_blocks(fmt, size, tmp_path):
    # a prefix of the sample (whole words), chunk_events=1 or 7, and 64-byte blocks
    name = f"{fmt}_sample.raw"
    data = sample_path(name).read_bytes()
    off = ph.split_header(data).data_offset
    cut = tmp_path / name
    cut.write_bytes(data[: off + 24_000])
    whole = read_events(cut, format=fmt)
    assert 1000 < len(whole)
    assert _equal(whole, expected_events(name)[: len(whole)])
    chunks = list(iter_events(cut, format=fmt, chunk_events=size, block_bytes=64))
    assert all(len(c) == size for c in chunks[:-1])
    assert _equal(np.concatenate(chunks), whole)


def test_dat_single_event_chunks():
    chunks = list(iter_events(sample_path("sample_ncars.dat"), format="dat", chunk_events=1,
                              block_bytes=64))
    assert len(chunks) == 2009 and _equal(np.concatenate(chunks), expected_events(
        "sample_ncars.dat"))


# -- metadata ------------------------------------------------------------------------------------

def test_metadata_extras():
    r = open_reader(sample_path("evt3_sample.raw"), format="evt3")
    assert r.info.extras["serial"] == "00000307"
    assert r.info.extras["plugin"] == "hal_plugin_gen41_evk3"
    assert r.info.extras["sensor_generation"] == "Gen4.1"
    assert r.info.extras["sensor_size_from"] == "system_ID 48"
    r2 = open_reader(sample_path("evt2_sample.raw"), format="evt2", sensor_size=(700, 500))
    assert r2.info.sensor_size == (700, 500) and r2.info.sensor_size_source == "caller"
    d = open_reader(sample_path("sample_ncars.dat"), format="dat")
    assert d.info.extras["event_type"] == "Event2D" and d.info.extras["date"].startswith("2017")


def _hdr(*lines: str) -> bytes:
    return "".join(f"% {ln}\n" for ln in lines).encode()


def test_header_geometry_precedence():
    h = ph.split_header(_hdr("evt 3.0", "format EVT3;height=720;width=1280", "geometry 1280x720",
                             "system_ID 21", "end") + b"%\x00\x01")
    assert ph.declared_encoding(h) == "evt3" and h.ended
    assert ph.header_geometry(h) == (1280, 720)
    assert h.data_offset == len(_hdr("evt 3.0", "format EVT3;height=720;width=1280",
                                     "geometry 1280x720", "system_ID 21", "end"))
    with pytest.raises(EventFormatError, match="disagrees"):
        ph.header_geometry(ph.split_header(_hdr("format EVT3;height=480;width=640",
                                                "geometry 1280x720")))
    # old headers: system ID table (Prophesee only), then plugin table
    assert ph.table_geometry(ph.split_header(_hdr("system_ID 21")))[0] == (640, 480)
    assert ph.declared_encoding(ph.split_header(_hdr("system_ID 48"))) == "evt3"
    other = ph.split_header(_hdr("integrator_name Acme", "system_ID 48"))
    assert ph.table_geometry(other) is None and ph.declared_encoding(other) is None
    plug = ph.split_header(_hdr("plugin_name hal_plugin_gen31_fx3"))
    assert ph.table_geometry(plug)[:2] == ((640, 480), "Gen3.1")
    assert ph.table_geometry(ph.split_header(_hdr("plugin_name hal_plugin_unknown"))) is None


def test_header_body_starting_with_percent():
    body = np.array([0x8025, 0x2003], dtype="<u2").tobytes()  # first byte is '%'
    h = ph.split_header(_hdr("evt 3.0") + body)
    assert h.lines == ["evt 3.0"] and h.data_offset == len(_hdr("evt 3.0"))


def test_file_geometry_is_enforced(tmp_path):
    ev = make_events([5, 700], [3, 4], [10, 20], [1, 0])
    for fmt, enc in (("evt2", encode_evt2), ("evt3", encode_evt3)):
        p = tmp_path / f"g.{fmt}.raw"
        p.write_bytes(enc(ev, (1000, 480)).replace(b"width=1000", b"width=0640"))
        r = open_reader(p, format=fmt)
        assert r.info.sensor_size == (640, 480) and r.info.sensor_size_source == "file"
        with pytest.raises(EventFormatError) as ei:
            r.read()
        assert ei.value.field == "x" and len(ei.value.partial) == 1


# -- damage ---------------------------------------------------------------------------------------

def _check_damaged(path, fmt, exp):
    """Damage gives only EventFormatError; whatever is returned is a prefix of ``exp``
    when ``exp`` is given."""
    try:
        ev = read_events(path, format=fmt)
    except EventFormatError as exc:
        assert str(path) in str(exc)
        part = exc.partial
        if part is None:  # header damage: raised on open, whatever the policy
            return exc
        if exp is not None:
            assert _equal(part, exp[: len(part)])
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            warned = read_events(path, format=fmt, on_error="warn")
        assert np.array_equal(warned, part)
        return exc
    if exp is not None:
        assert _equal(ev, exp[: len(ev)])
    return None


def test_truncation_at_many_offsets(sample, tmp_path):
    fmt = SAMPLES[sample][0]
    data = sample_path(sample).read_bytes()
    exp = expected_events(sample)
    rng = np.random.default_rng(1)
    cuts = sorted(set(rng.integers(1, len(data), 25).tolist()) | {1, 50, len(data) - 1})
    for cut in cuts:
        p = tmp_path / f"cut{cut}"
        p.write_bytes(data[:cut])
        exc = _check_damaged(p, fmt, exp)
        body = ph.split_header(data).data_offset + (2 if fmt == "dat" else 0)
        word = {"evt2": 4, "evt3": 2, "dat": 8}[fmt]
        if cut > body and (cut - body) % word:
            assert exc is not None and exc.offset is not None and exc.field == "word"
            assert exc.offset == cut - (cut - body) % word
            # chunked iteration: the same events, then the error (or a warning)
            got = []
            with pytest.raises(EventFormatError) as ei:
                for c in iter_events(p, format=fmt, chunk_events=999, block_bytes=4097):
                    got.append(c)
            assert ei.value.offset == exc.offset
            assert _equal(np.concatenate(got) if got else exc.partial[:0], exc.partial)
            with pytest.warns(Warning, match="truncated"):
                warned = list(iter_events(p, format=fmt, chunk_events=999, on_error="warn"))
            assert np.array_equal(np.concatenate(warned) if warned else exc.partial[:0],
                                  exc.partial)


def test_bit_flips_and_garbage(sample, tmp_path):
    fmt = SAMPLES[sample][0]
    data = bytearray(sample_path(sample).read_bytes())
    rng = np.random.default_rng(7)
    for k in range(12):
        bad = bytearray(data)
        where = rng.integers(0, len(bad), 4) if k % 2 else rng.integers(0, 200, 3)
        for i in where:
            bad[i] ^= 1 << int(rng.integers(0, 8))
        if k == 11:
            bad[len(bad) // 2: len(bad) // 2 + 64] = rng.integers(0, 256, 64).astype(np.uint8).tobytes()
        p = tmp_path / f"flip{k}"
        p.write_bytes(bytes(bad))
        try:
            whole = read_events(p, format=fmt)
        except EventFormatError as exc:
            # a typed error naming the file, at an offset inside it; the chunked reader
            # stops at the same place with the same events before it
            assert str(p) in str(exc)
            if exc.partial is None:    # header damage: raised on open
                continue
            assert exc.offset is not None and 0 <= exc.offset <= len(bad)
            got = []
            with pytest.raises(EventFormatError) as ei:
                for c in iter_events(p, format=fmt, chunk_events=999, block_bytes=4097):
                    got.append(c)
            assert ei.value.offset == exc.offset
            assert _equal(np.concatenate(got) if got else exc.partial[:0], exc.partial)
            continue
        # decoded: the event contract holds, inside the sensor, and chunks agree with it
        assert whole.dtype == EVENT_DTYPE
        size = open_reader(p, format=fmt).info.sensor_size
        if size and len(whole):
            assert int(whole["x"].max()) < size[0] and int(whole["y"].max()) < size[1]
        assert set(np.unique(whole["p"]).tolist()) <= {0, 1}
        chunks = list(iter_events(p, format=fmt, chunk_events=999, block_bytes=4097))
        assert _equal(np.concatenate(chunks) if chunks else whole[:0], whole)


def test_undefined_types_are_damage_with_offsets(tmp_path):
    hdr = _hdr("evt 2.0", "end")
    words = np.array([(8 << 28) | 1, (1 << 28) | (5 << 11) | 6, 0x3 << 28], dtype="<u4")
    p = tmp_path / "e2.raw"
    p.write_bytes(hdr + words.tobytes())
    with pytest.raises(EventFormatError) as ei:
        read_events(p, format="evt2")
    assert ei.value.offset == len(hdr) + 8 and ei.value.field == "type"
    assert len(ei.value.partial) == 1 and ei.value.partial["t"][0] == 64
    hdr3 = _hdr("evt 3.0", "end")
    w3 = np.array([0x8001, 0x0005, 0x2807, 0x9000], dtype="<u2")
    p3 = tmp_path / "e3.raw"
    p3.write_bytes(hdr3 + w3.tobytes())
    with pytest.raises(EventFormatError) as ei:
        read_events(p3, format="evt3")
    assert ei.value.offset == len(hdr3) + 6 and ei.value.field == "type"
    assert ei.value.partial.tolist() == [(7, 5, 4096, 1)]


def test_wrong_header_empty_and_header_only(tmp_path):
    p = tmp_path / "x.raw"
    p.write_bytes(sample_path("evt2_sample.raw").read_bytes())
    with pytest.raises(EventFormatError, match="declares evt2"):
        open_reader(p, format="evt3")
    with pytest.raises(EventFormatError, match="declares evt3"):
        open_reader(sample_path("evt3_sample.raw"), format="evt2")
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    for fmt in READERS:
        with pytest.raises(EventFormatError, match="empty"):
            read_events(empty, format=fmt)
    for fmt, enc in (("evt2", encode_evt2), ("evt3", encode_evt3), ("dat", encode_dat)):
        only = tmp_path / f"only.{fmt}"
        only.write_bytes(enc(np.empty(0, EVENT_DTYPE), (640, 480)))
        assert len(read_events(only, format=fmt)) == 0
    nobytes = tmp_path / "nobytes.dat"
    nobytes.write_bytes(_hdr("Data file containing Event2D events.", "Version 2"))
    with pytest.raises(EventFormatError, match="event type"):
        open_reader(nobytes, format="dat")
    for tail, field in ((b"\x05\x08", "event_type"), (b"\x00\x10", "event_size")):
        odd = tmp_path / "odd.dat"
        odd.write_bytes(_hdr("Version 2") + tail + bytes(16))
        with pytest.raises(EventFormatError) as ei:
            open_reader(odd, format="dat")
        assert ei.value.field == field


def test_events_before_first_time_high_are_dropped(tmp_path):
    w2 = np.array([(1 << 28) | (1 << 11) | 2, (8 << 28) | 3, (0 << 28) | (4 << 22) | (7 << 11) | 8],
                  dtype="<u4")
    p = tmp_path / "a.raw"
    p.write_bytes(_hdr("evt 2.0") + w2.tobytes())
    assert read_events(p, format="evt2").tolist() == [(7, 8, 3 * 64 + 4, 0)]
    # EVT3: ADDR_Y before the first TIME_HIGH is skipped too (y stays 0)
    w3 = np.array([0x0009, 0x2001, 0x8002, 0x6005, 0x2003], dtype="<u2")
    p.write_bytes(_hdr("evt 3.0") + w3.tobytes())
    assert read_events(p, format="evt3").tolist() == [(3, 0, 2 * 4096 + 5, 0)]


def test_evt3_vectors_and_time_wrap(tmp_path):
    w3 = np.array([0x8FFF, 0x0010, 0x3805, 0x4801, 0x5003, 0x8000, 0x6007, 0x2002],
                  dtype="<u2")
    p = tmp_path / "v.raw"
    p.write_bytes(_hdr("evt 3.0") + w3.tobytes())
    t0 = 0xFFF << 12
    assert read_events(p, format="evt3").tolist() == [
        (5, 16, t0, 1), (16, 16, t0, 1), (17, 16, t0, 1), (18, 16, t0, 1),
        (2, 16, (1 << 24) + 7, 0)]


# -- encoders: round trips ----------------------------------------------------------------------

@st.composite
def _events(draw, max_x, max_y, t_max, sort):
    n = draw(st.integers(0, 60))
    x = draw(st.lists(st.integers(0, max_x - 1), min_size=n, max_size=n))
    y = draw(st.lists(st.integers(0, max_y - 1), min_size=n, max_size=n))
    t = draw(st.lists(st.integers(0, t_max), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    if sort:
        t = sorted(t)
    return make_events(np.array(x, dtype=np.int64), np.array(y, dtype=np.int64),
                       np.array(t, dtype=np.int64), np.array(p, dtype=np.int64))


def _roundtrip(tmp_path, fmt, data):
    p = tmp_path / f"rt.{fmt}"
    p.write_bytes(data)
    whole = read_events(p, format=fmt)
    tiny = list(iter_events(p, format=fmt, block_bytes=64, chunk_events=5))
    return whole, (np.concatenate(tiny) if tiny else np.empty(0, EVENT_DTYPE))


_SETTINGS = settings(max_examples=40, derandomize=True, deadline=None)


@_SETTINGS
@given(st.one_of(_events(640, 480, (1 << 34) - 64 * 12, False), _events(640, 480, 1 << 40, True)))
def test_evt2_roundtrip(tmp_path_factory, ev):
    whole, tiny = _roundtrip(tmp_path_factory.mktemp("e2"), "evt2", encode_evt2(ev, (640, 480)))
    assert _equal(whole, ev) and _equal(tiny, ev)


@_SETTINGS
@given(st.one_of(_events(1280, 720, (1 << 24) - 4096 * 12, False),
                 _events(1280, 720, 1 << 30, True), st.just(None)))
def test_evt3_roundtrip(tmp_path_factory, ev):
    if ev is None:  # a dense row: vectors, chained vectors, both polarities
        x = np.r_[np.arange(0, 40), np.arange(3, 30, 2), np.arange(100, 112)]
        ev = make_events(x, np.full(x.size, 7), np.full(x.size, 99), (x // 3) % 2)
    data = encode_evt3(ev, (1280, 720))
    whole, tiny = _roundtrip(tmp_path_factory.mktemp("e3"), "evt3", data)
    assert _equal(whole, ev) and _equal(tiny, ev)


@_SETTINGS
@given(_events(304, 240, (1 << 32) - 1, False))
def test_dat_roundtrip(tmp_path_factory, ev):
    whole, tiny = _roundtrip(tmp_path_factory.mktemp("dat"), "dat", encode_dat(ev, (304, 240)))
    assert _equal(whole, ev) and _equal(tiny, ev)


def test_evt3_sample_reencodes_smaller_and_exact(tmp_path):
    exp = expected_events("evt3_sample.raw")
    data = encode_evt3(exp, (1280, 720))
    assert len(data) < sample_path("evt3_sample.raw").stat().st_size
    p = tmp_path / "re.raw"
    p.write_bytes(data)
    assert Evt3Reader.sniff(data[:4096]) and _equal(read_events(p, format="evt3"), exp)


def test_encoders_reject_unrepresentable():
    with pytest.raises(ValueError):
        encode_evt3(make_events([1, 1], [1, 1], [(1 << 24) + 5, 5], [0, 0]))
    with pytest.raises(ValueError):
        encode_evt2(make_events([3000], [1], [0], [0]))
    with pytest.raises(ValueError):
        encode_dat(make_events([1], [1], [1 << 32], [0]))
