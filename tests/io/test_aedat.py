"""AEDAT 4.0 / 3.1 / 2.0 readers: real samples, second producers, spec vectors,
chunking invariance, damage."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.errors import EventFormatError, EventFormatWarning
from eventpipe.events import EVENT_DTYPE, make_events
from eventpipe.io import detect_format, iter_events, open_reader, read_events
from eventpipe.io.aedat2 import Aedat2Reader, encode_aedat2
from eventpipe.io.aedat3 import (Aedat3Reader, encode_aedat31, gesture_segments, labels_path_for,
                                 read_gesture_labels, read_gesture_recording,
                                 write_gesture_labels)
from eventpipe.io.aedat4 import Aedat4Reader, encode_aedat4
from eventpipe.io.chunking import concat
from eventpipe.io.flatbuffers import FlatBufferError, root_table
from tests.conftest import expected_events, expected_meta, sample_path

SETTINGS = settings(max_examples=25, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _events(n, w, h, seed=0, t0=0, max_dt=50):
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.integers(0, max_dt, n)).astype(np.int64)
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t, rng.integers(0, 2, n))


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _only_format_errors(path, **kw):
    """Reading damaged ``path`` succeeds or raises EventFormatError naming the
    file, with the same partial events under on_error="warn"."""
    try:
        return read_events(path, **kw)
    except EventFormatError as exc:
        assert str(path) in str(exc) and exc.offset is not None
        if exc.partial is None:  # header damage: the constructor raised
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EventFormatWarning)
            assert np.array_equal(read_events(path, on_error="warn", **kw), exc.partial)
        return exc.partial


# -- real samples ----------------------------------------------------------------------

SAMPLES = [("sample.aedat4", "aedat4"), ("IMU_translBoxes.aedat", "aedat2")]


@pytest.mark.parametrize("name,fmt", SAMPLES)
def test_sample_exact_and_meta(name, fmt):
    path = sample_path(name)
    exp = expected_events(name)
    meta = expected_meta(name)
    reader = open_reader(path)
    assert reader.format == fmt and detect_format(path).name == fmt
    got = reader.read()
    assert len(got) == meta["events"]
    for f in "xytp":
        assert np.array_equal(got[f], exp[f]), f
    assert reader.info.sensor_size == tuple(meta["sensor_size_wh"])


@pytest.mark.parametrize("name,fmt", SAMPLES)
@pytest.mark.parametrize("block_bytes", [64, 100, 4097, None])
def test_sample_chunking_invariance(name, fmt, block_bytes):
    path = sample_path(name)
    exp = expected_events(name)
    kw = {} if block_bytes is None else {"block_bytes": block_bytes}
    combos = [(4096, None), (65537, None), (None, 33333), (997, 5000), (None, None)]
    if block_bytes is None:  # many tiny chunks: once, with the default blocks
        combos += [(1, None), (7, None), (None, 1000)]
    for ce, cu in combos:
        chunks = list(iter_events(path, chunk_events=ce, chunk_us=cu, **kw))
        assert np.array_equal(concat(chunks), exp), (ce, cu)
        if ce and not cu:
            assert all(len(c) == ce for c in chunks[:-1])


def test_aedat4_sample_meta():
    r = open_reader(sample_path("sample.aedat4"))
    ex = r.info.extras
    assert r.info.sensor_size_source == "file"
    assert ex["compression"] == "LZ4" and ex["streams"] == {0: "EVTS", 2: "IMUS", 3: "TRIG"}
    assert ex["camera"] == "DVXplorer" and ex["serial"] == "DXB00010"
    table = r.read_data_table()
    assert int(table["num_elements"][table["stream_id"] == 0].sum()) == 111954


def test_aedat4_sample_matches_aedat_package():
    aedat = pytest.importorskip("aedat")
    path = sample_path("sample.aedat4")
    ref = np.concatenate([p["events"] for p in aedat.Decoder(str(path)) if "events" in p])
    got = read_events(path)
    assert np.array_equal(got["t"], ref["t"].astype(np.int64))
    assert np.array_equal(got["x"], ref["x"]) and np.array_equal(got["y"], ref["y"])
    assert np.array_equal(got["p"], ref["on"].astype(np.uint8))


def test_aedat2_sample_meta():
    r = open_reader(sample_path("IMU_translBoxes.aedat"))
    assert r.info.sensor_size_source == "table"
    assert r.info.extras["chip_class"] == "eu.seebetter.ini.chips.davis.DAVIS240C"
    assert r.info.extras["version"] == "2.0"


# -- AEDAT 4: second producer (dv-processing) and our encoder -------------------------

@pytest.mark.parametrize("comp", ["NONE", "LZ4", "ZSTD"])
def test_aedat4_dv_processing_roundtrip(tmp_path, comp):
    try:
        import dv_processing as dv
    except ImportError:
        pytest.skip("dv-processing is not installed (pip install dv-processing==2.0.4)")
    ev = _events(3000, 346, 260, seed=3, t0=1_600_000_000_000_000)
    path = tmp_path / f"dv_{comp}.aedat4"
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DAVIS346_00000499", (346, 260),
                                                 getattr(dv.CompressionType, comp))
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    store = dv.EventStore()
    for i in range(0, len(ev), 1000):  # several packets
        part = dv.EventStore()
        for e in ev[i:i + 1000]:
            part.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
        writer.writeEvents(part)
    del writer, store
    r = open_reader(path)
    assert r.info.sensor_size == (346, 260) and r.info.extras["serial"] == "00000499"
    got = r.read()
    assert np.array_equal(got, ev)
    assert np.array_equal(concat(iter_events(path, block_bytes=64, chunk_events=333)), ev)
    rec = dv.io.MonoCameraRecording(str(path))
    parts = []
    while (b := rec.getNextEventBatch()) is not None:
        parts.append(b.numpy())
    ref = np.concatenate(parts)
    assert np.array_equal(ref["timestamp"], got["t"]) and np.array_equal(ref["x"], got["x"])
    # and dv-processing reads what we write
    ours = _write(tmp_path, "ours.aedat4", encode_aedat4(ev, (346, 260), compression=comp,
                                                       packet_events=700))
    rec = dv.io.MonoCameraRecording(str(ours))
    parts = []
    while (b := rec.getNextEventBatch()) is not None:
        parts.append(b.numpy())
    ref = np.concatenate(parts)
    assert np.array_equal(ref["timestamp"], ev["t"]) and np.array_equal(ref["y"], ev["y"])
    assert np.array_equal(ref["polarity"].astype(np.uint8), ev["p"])


@pytest.mark.parametrize("comp", ["NONE", "LZ4", "LZ4_HIGH", "ZSTD", "ZSTD_HIGH"])
@pytest.mark.parametrize("table", [True, False])
def test_aedat4_encoder_roundtrip(tmp_path, comp, table):
    ev = _events(5000, 640, 480, seed=1, t0=10**15)
    p = _write(tmp_path, "a.aedat4", encode_aedat4(ev, (640, 480), compression=comp,
                                                   packet_events=777, data_table=table))
    assert detect_format(p).name == "aedat4"
    assert np.array_equal(read_events(p), ev)
    for bb in (64, 4097):
        assert np.array_equal(concat(iter_events(p, block_bytes=bb, chunk_us=1234)), ev)


def test_aedat4_table_mismatch_falls_back(tmp_path):
    ev = _events(2000, 64, 64, seed=2)
    data = bytearray(encode_aedat4(ev, (64, 64), compression="NONE", packet_events=500))
    dtp = struct.unpack_from("<q", data, 18 + 32)[0]
    # NumElements of the first definition, uncompressed table: lie about it
    tab = root_table(bytes(data[dtp:]), size_prefixed=True, identifier=b"FTAB")
    start, _ = tab.vector(0, 4)
    first = start + struct.unpack_from("<I", data, dtp + start)[0]
    struct.pack_into("<q", data, dtp + first + 24, 123)
    p = _write(tmp_path, "lie.aedat4", bytes(data))
    assert np.array_equal(read_events(p), ev)


def test_aedat4_empty_stream_and_no_events_stream(tmp_path):
    p = _write(tmp_path, "e.aedat4", encode_aedat4(_events(0, 8, 8), (8, 8)))
    assert len(read_events(p)) == 0
    data = encode_aedat4(_events(10, 8, 8), (8, 8)).replace(b">EVTS<", b">IMUS<")
    p = _write(tmp_path, "i.aedat4", data)
    r = open_reader(p)
    assert r.info.extras["events_stream"] is None and len(r.read()) == 0
    with pytest.raises(EventFormatError, match="stream_id"):
        open_reader(p, stream_id=0)


# -- AEDAT 4 damage --------------------------------------------------------------------

def test_aedat4_truncation(tmp_path):
    path = sample_path("sample.aedat4")
    full = expected_events("sample.aedat4")
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(0, len(data), 25).tolist()) | {0, 5, 14, 17, 100,
                                                                  2342, 2350, len(data) - 1})
    for cut in cuts:
        p = _write(tmp_path, "cut.aedat4", data[:cut])
        if cut < 2342:
            with pytest.raises(EventFormatError):
                read_events(p, format="aedat4")
            continue
        if cut >= 945243:  # only the data table is cut: every event is intact
            assert np.array_equal(read_events(p), full)
            continue
        with pytest.raises(EventFormatError) as ei:
            read_events(p)
        part = ei.value.partial
        assert np.array_equal(part, full[:len(part)])
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got = read_events(p, on_error="warn")
        assert any(issubclass(x.category, EventFormatWarning) for x in w)
        assert np.array_equal(got, part)


@pytest.mark.parametrize("comp", ["NONE", "LZ4"])
def test_aedat4_bit_flips(tmp_path, comp):
    ev = _events(600, 32, 32, seed=4)
    data = encode_aedat4(ev, (32, 32), compression=comp, packet_events=100)
    rng = np.random.default_rng(5)
    for i in range(150):
        d = bytearray(data)
        for pos in rng.integers(0, len(d), 1 + i % 3):
            d[pos] ^= 1 << int(rng.integers(0, 8))
        got = _only_format_errors(_write(tmp_path, "f.aedat4", bytes(d)), format="aedat4")
        if got is not None:  # decoded (or the part before the damage): the event contract
            assert got.dtype == EVENT_DTYPE and len(got) <= len(ev)
            assert set(np.unique(got["p"]).tolist()) <= {0, 1}


def test_aedat4_corrupt_offsets_and_identifier(tmp_path):
    ev = _events(50, 16, 16, seed=6)
    data = encode_aedat4(ev, (16, 16), compression="NONE", data_table=False)
    first = 18 + struct.unpack_from("<i", data, 14)[0] + 8  # first packet's flatbuffer
    cases = {"root": (first + 4, 0x7FFFFFF0), "vtable": (first + 20, -5000),
             "vector": (first + 24, 0x10000), "count": (first + 28, 1 << 28),
             "ident": (first + 8, 0x41414141), "prefix": (first, 3)}
    for name, (pos, val) in cases.items():
        d = bytearray(data)
        struct.pack_into("<i", d, pos, val)
        with pytest.raises(EventFormatError) as ei:
            read_events(_write(tmp_path, f"{name}.aedat4", bytes(d)))
        assert ei.value.offset is not None, name
    with pytest.raises(FlatBufferError):
        root_table(b"\x00\x00\x00\x70abcd", identifier=b"abcd")
    d = bytearray(data)
    d[first + 44] = 7  # an "on" byte that is not a bool
    with pytest.raises(EventFormatError, match="on"):
        read_events(_write(tmp_path, "on.aedat4", bytes(d)))
    bad = encode_aedat4(make_events([20], [1], [5], [1]), (16, 16))
    with pytest.raises(EventFormatError, match="x=20") as ei:
        read_events(_write(tmp_path, "x.aedat4", bad))
    assert ei.value.field == "x"


# -- AEDAT 2 -------------------------------------------------------------------------

def test_aedat2_dvs128_conventions(tmp_path):
    # jAER DVS128: x mirrored (127 - raw), bit 0 == 0 means ON
    word = (5 << 8) | (10 << 1) | 0
    data = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n" + \
        struct.pack(">Ii", word, 42) + struct.pack(">Ii", word | 0x8000, 43)
    r = open_reader(_write(tmp_path, "d.aedat", data))
    got = r.read()
    assert r.info.sensor_size == (128, 128) and r.info.extras["chip"] == "dvs128"
    assert got.tolist() == [(117, 5, 42, 1)]


@pytest.mark.parametrize("chip,size,version", [("dvs128", (128, 128), 2),
                                               ("dvs128", (128, 128), 1),
                                               ("davis240", (240, 180), 2),
                                               ("davis346", (346, 260), 2),
                                               ("davis640", (640, 480), 2)])
def test_aedat2_roundtrip(tmp_path, chip, size, version):
    ev = _events(3000, *size, seed=7, t0=2**32 - 40000)  # crosses a 32-bit wrap
    p = _write(tmp_path, "r.aedat", encode_aedat2(ev, chip, version=version))
    assert detect_format(p).name == "aedat2"
    r = open_reader(p)
    assert r.info.sensor_size == size
    assert np.array_equal(r.read(), ev)
    for bb in (64, 100):
        assert np.array_equal(concat(iter_events(p, block_bytes=bb, chunk_events=7)), ev)


def test_aedat2_davis_skips_aps_imu_special(tmp_path):
    ev = _events(200, 346, 260, seed=8)
    body = np.frombuffer(encode_aedat2(ev, "davis346")[-8 * len(ev):], ">u4").reshape(-1, 2)
    noise = np.array([[0x80000000 | 0x1234, 7], [0xFC000800 | (1 << 31), 8], [0x400 | 5, 9]],
                     ">u4")
    words = np.concatenate([np.concatenate([body[i:i + 1], noise]) for i in range(len(body))])
    hdr = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.Davis346B\r\n"
    p = _write(tmp_path, "n.aedat", hdr + words.astype(">u4").tobytes())
    got = read_events(p)
    assert np.array_equal(got[["x", "y", "p"]], ev[["x", "y", "p"]])


def test_aedat2_body_starting_with_hash(tmp_path):
    ev = make_events([4, 5], [140, 3], [1, 2], [1, 0])  # y=140 -> first byte 0x23 = '#'
    data = encode_aedat2(ev, "davis240")
    assert data[-16:-15] == b"#"
    assert np.array_equal(read_events(_write(tmp_path, "h.aedat", data)), ev)


def test_aedat2_chip_option_and_errors(tmp_path):
    ev = _events(100, 240, 180, seed=9)
    data = encode_aedat2(ev, "davis240").replace(
        b"# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C", b"# AEChip: org.example.Mystery")
    p = _write(tmp_path, "m.aedat", data)
    with pytest.raises(EventFormatError, match="chip="):
        read_events(p)
    assert np.array_equal(read_events(p, chip="davis240"), ev)
    bad = encode_aedat2(make_events([300], [1], [5], [1]), "davis240")
    with pytest.raises(EventFormatError) as ei:
        read_events(_write(tmp_path, "x.aedat", bad))
    assert ei.value.field == "x"
    # no header at all: AEDAT 1.0 DVS128 assumed, forced by format=
    raw = encode_aedat2(_events(10, 128, 128, seed=1), "dvs128", version=1)[-60:]
    r = open_reader(_write(tmp_path, "raw.aedat", raw), format="aedat2")
    assert r.info.extras["chip_assumed"] and len(r.read()) == 10


def test_aedat2_truncation_and_flips(tmp_path):
    path = sample_path("IMU_translBoxes.aedat")
    full = expected_events("IMU_translBoxes.aedat")
    data = path.read_bytes()
    hdr = 175268
    for cut in [hdr + 3, hdr + 8 * 1000 + 5, len(data) - 1, len(data) - 7]:
        with pytest.raises(EventFormatError) as ei:
            read_events(_write(tmp_path, "c.aedat", data[:cut]))
        assert np.array_equal(ei.value.partial, full[:len(ei.value.partial)])
        assert ei.value.offset == hdr + (cut - hdr) // 8 * 8
    ev = _events(300, 240, 180, seed=10)
    small = encode_aedat2(ev, "davis240")
    rng = np.random.default_rng(11)
    for _ in range(100):
        d = bytearray(small)
        d[int(rng.integers(0, len(d)))] ^= 1 << int(rng.integers(0, 8))
        _only_format_errors(_write(tmp_path, "f.aedat", bytes(d)), format="aedat2")


# -- AEDAT 3.1 ---------------------------------------------------------------------

def test_aedat31_spec_vector(tmp_path):
    # two polarity packets by hand, per the 3.1 spec, plus a special packet
    hdr = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"

    def packet(etype, ovf, events, cap=None):
        body = b"".join(struct.pack("<Ii", d, t) for d, t in events)
        cap = len(events) if cap is None else cap
        valid = sum(d & 1 for d, _ in events)
        return struct.pack("<hhiiiiii", etype, 1, 8, 4, ovf, cap, len(events), valid) + body + \
            b"\xff" * 8 * (cap - len(events))

    def word(x, y, p, valid=1):
        return (x << 17) | (y << 2) | (p << 1) | valid

    data = hdr + packet(1, 0, [(word(1, 2, 1), 10), (word(3, 4, 0, valid=0), 11),
                               (word(127, 0, 0), 12)], cap=5) + \
        packet(0, 0, [(0x55, 13)]) + packet(1, 1, [(word(0, 127, 1), 5)])
    p = _write(tmp_path, "s.aedat", data)
    r = open_reader(p)
    assert r.format == "aedat3" and r.info.sensor_size == (128, 128)
    assert r.info.extras["sources"] == {1: "DVS128"}
    assert r.read().tolist() == [(1, 2, 10, 1), (127, 0, 12, 0), (0, 127, (1 << 31) | 5, 1)]


@SETTINGS
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16), pe=st.integers(1, 200),
       inv=st.integers(0, 9), slack=st.integers(0, 3), special=st.booleans(),
       bb=st.sampled_from([64, 100, 4097]))
def test_aedat31_roundtrip_property(tmp_path, n, seed, pe, inv, slack, special, bb):
    ev = _events(n, 128, 128, seed=seed, t0=2**31 - 5000, max_dt=100)
    data = encode_aedat31(ev, packet_events=pe, invalid_every=inv, special_packets=special,
                          capacity_slack=slack)
    p = _write(tmp_path, "h.aedat", data)
    assert np.array_equal(read_events(p), ev)
    assert np.array_equal(concat(iter_events(p, block_bytes=bb, chunk_events=37)), ev)


@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**16), chip=st.sampled_from(
    ["dvs128", "davis240", "davis346"]), bb=st.sampled_from([64, 100, 4097]))
def test_aedat2_roundtrip_property(tmp_path, n, seed, chip, bb):
    from eventpipe.io.aedat2 import chip_layout
    ev = _events(n, *chip_layout(chip)[2], seed=seed, max_dt=2**31)
    p = _write(tmp_path, "h2.aedat", encode_aedat2(ev, chip))
    assert np.array_equal(concat(iter_events(p, block_bytes=bb, chunk_events=11)), ev)


def test_aedat31_damage(tmp_path):
    ev = _events(2000, 128, 128, seed=12, t0=2**31 - 50000)
    data = encode_aedat31(ev, packet_events=300, invalid_every=5, special_packets=True)
    hdr = data.index(b"#!END-HEADER\r\n") + 14
    for cut in [hdr + 1, hdr + 27, hdr + 28 + 13, len(data) // 2, len(data) - 1]:
        with pytest.raises(EventFormatError) as ei:
            read_events(_write(tmp_path, "c.aedat", data[:cut]))
        assert np.array_equal(ei.value.partial, ev[:len(ei.value.partial)])
    rng = np.random.default_rng(13)
    for i in range(200):
        d = bytearray(data)
        for pos in rng.integers(0, len(d), 1 + i % 2):
            d[pos] ^= 1 << int(rng.integers(0, 8))
        _only_format_errors(_write(tmp_path, "f.aedat", bytes(d)), format="aedat3",
                            block_bytes=4097)
    d = bytearray(data)
    struct.pack_into("<i", d, hdr + 44 + 4, 12)  # polarity eventSize 12 (after a special packet)
    with pytest.raises(EventFormatError, match="eventSize"):
        read_events(_write(tmp_path, "s.aedat", bytes(d)))
    d = bytearray(data)
    struct.pack_into("<i", d, hdr + 44 + 16, 10**9)  # capacity past the end of the file
    with pytest.raises(EventFormatError) as ei:
        read_events(_write(tmp_path, "cap.aedat", bytes(d)))
    assert ei.value.offset == hdr + 44


def test_headers_magic_empty(tmp_path):
    empty = _write(tmp_path, "empty.aedat", b"")
    for cls in (Aedat2Reader, Aedat3Reader, Aedat4Reader):
        with pytest.raises(EventFormatError):
            cls(empty).read()
    wrong = _write(tmp_path, "w.aedat4", b"#!AER-DAT9.9\r\n" + bytes(100))
    with pytest.raises(EventFormatError, match="magic|version"):
        Aedat4Reader(wrong)
    with pytest.raises(EventFormatError):
        Aedat3Reader(wrong)
    with pytest.raises(EventFormatError):
        Aedat2Reader(wrong)
    h3 = _write(tmp_path, "h3.aedat", b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n")
    assert len(read_events(h3)) == 0
    h2 = _write(tmp_path, "h2.aedat", b"#!AER-DAT2.0\r\n# AEChip: DVS128\r\n")
    assert len(read_events(h2)) == 0
    unterminated = _write(tmp_path, "u.aedat", b"#!AER-DAT3.1\r\n#Format: RAW\r\n")
    with pytest.raises(EventFormatError, match="END-HEADER"):
        read_events(unterminated)
    h4 = encode_aedat4(_events(0, 4, 4), (4, 4), data_table=False)
    assert len(read_events(_write(tmp_path, "h4.aedat4", h4))) == 0
    for cut in range(0, len(h4), 7):
        try:
            got = read_events(_write(tmp_path, "h4c.aedat4", h4[:cut]), format="aedat4")
        except EventFormatError as exc:  # typed, at a place inside what is there
            assert exc.offset is None or 0 <= exc.offset <= cut
            continue
        assert len(got) == 0  # a cut of an event-less file cannot invent events


def test_aedat31_header_geometry(tmp_path):
    ev = _events(20, 240, 180, seed=15)
    p = _write(tmp_path, "d.aedat", encode_aedat31(ev, source="DAVIS240C"))
    r = open_reader(p)
    assert (r.info.sensor_size, r.info.sensor_size_source) == ((240, 180), "table")
    assert np.array_equal(r.read(), ev)
    p = _write(tmp_path, "g.aedat", encode_aedat31(ev, source="Mystery",
                                                   header=["#sizeX: 300", "#sizeY: 200"]))
    r = open_reader(p)
    assert (r.info.sensor_size, r.info.sensor_size_source) == ((300, 200), "file")
    p = _write(tmp_path, "u.aedat", encode_aedat31(ev, source="Mystery"))
    r = open_reader(p)
    assert np.array_equal(r.read(), ev) and r.info.sensor_size_source == "inferred"
    small = _write(tmp_path, "s.aedat", encode_aedat31(ev, source="DVS128"))
    with pytest.raises(EventFormatError) as ei:
        read_events(small)
    assert ei.value.field in ("x", "y")


def test_sniffing():
    assert Aedat4Reader.sniff(b"#!AER-DAT4.0\r\n")
    assert Aedat3Reader.sniff(b"#!AER-DAT3.1\r\n") and not Aedat2Reader.sniff(b"#!AER-DAT3.1\r\n")
    assert Aedat2Reader.sniff(b"#!AER-DAT2.0\r\n") and Aedat2Reader.sniff(b"#!AER-DAT1.0\r\n")
    assert Aedat2Reader.sniff(b"# created today\r\n# AEChip: DVS128\r\n")
    assert not Aedat2Reader.sniff(b"# just a comment\r\n")


# -- DVS128 Gesture ------------------------------------------------------------------

def test_gesture_labels_and_segments(tmp_path):
    ev = _events(3000, 128, 128, seed=14)
    rec = _write(tmp_path, "user01_fluorescent.aedat", encode_aedat31(ev, packet_events=512))
    t = ev["t"]
    labels = [(1, int(t[100]), int(t[900])), (11, int(t[1500]), int(t[2999]) + 1)]
    write_gesture_labels(labels, labels_path_for(rec))
    assert labels_path_for(rec).name == "user01_fluorescent_labels.csv"
    assert read_gesture_labels(labels_path_for(rec)) == labels
    segs = read_gesture_recording(rec)
    assert [s[0] for s in segs] == [1, 11]
    for (lab, seg), (_, t0, t1) in zip(segs, labels):
        assert np.array_equal(seg, ev[(t >= t0) & (t < t1)])
    assert gesture_segments(ev[:0], labels)[0][1].size == 0
    bad = _write(tmp_path, "bad_labels.csv", b"class,startTime_usec,endTime_usec\n1,x,3\n")
    with pytest.raises(EventFormatError, match="line 2"):
        read_gesture_labels(bad)
    rev = _write(tmp_path, "rev_labels.csv", b"class,startTime_usec,endTime_usec\n1,9,3\n")
    with pytest.raises(EventFormatError, match="endTime"):
        read_gesture_labels(rev)
