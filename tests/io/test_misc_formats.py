"""ATIS .bin, Event Stream .es, HAR-DVS, tonic Gesture .npy and plain npy/npz/csv."""

from __future__ import annotations

import itertools
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE, make_events
from eventpipe.io import iter_events, open_reader, read_events
from eventpipe.io.atis_bin import AtisBinReader, encode_atis_bin
from eventpipe.io.es import EventStreamReader, encode_es
from eventpipe.io.formats import read_head
from eventpipe.io.hardvs import HarDvsIndex, HarDvsReader
from eventpipe.io.plain import (CsvReader, GestureNpyReader, NpyReader, NpzReader, write_csv,
                                write_npy, write_npz)
from tests.conftest import expected_events, sample_path

MY_READERS = (AtisBinReader, EventStreamReader, HarDvsReader, GestureNpyReader, NpyReader,
              NpzReader, CsvReader)
OTHER_SAMPLES = ("sample.aedat4", "IMU_translBoxes.aedat", "evt2_sample.raw", "evt3_sample.raw",
                 "sample_ncars.dat")


def same(a, b) -> bool:
    return a.dtype == EVENT_DTYPE and all(np.array_equal(a[f], b[f]) for f in "xytp")


def random_events(n, seed=0, w=320, h=240, t_step=50):
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n),
                       np.cumsum(rng.integers(0, t_step, n)), rng.integers(0, 2, n))


def check_chunkings(path, fmt, exp, chunk_events=(7, 4096, 10007, None), chunk_us=(None, 3331),
                    block_bytes=(64, 100, 4097, None)):
    for ce, cu, bb in itertools.product(chunk_events, chunk_us, block_bytes):
        opts = {} if bb is None else {"block_bytes": bb}
        chunks = list(iter_events(path, format=fmt, chunk_events=ce, chunk_us=cu, **opts))
        assert same(np.concatenate(chunks) if chunks else exp[:0], exp), (ce, cu, bb)
        if ce is not None and cu is None:
            assert all(len(c) == ce for c in chunks[:-1])


def check_only_format_errors(path, fmt, **opts):
    """Reading gives events or an EventFormatError; never another exception."""
    try:
        return read_events(path, format=fmt, **opts)
    except EventFormatError as exc:
        assert str(path) in str(exc)
        return exc


def check_truncations(tmp_path, data, fmt, exp, cuts, suffix):
    for cut in cuts:
        p = tmp_path / f"cut{cut}{suffix}"
        p.write_bytes(data[:cut])
        try:
            ev = read_events(p, format=fmt)
        except EventFormatError as exc:
            assert exc.offset is not None and str(p) in str(exc)
            part = exc.partial
            if part is None:  # the header itself is damaged: nothing to recover
                with pytest.raises(EventFormatError):
                    read_events(p, format=fmt, on_error="warn")
                continue
            assert same(part, exp[: len(part)]), cut
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                warned = read_events(p, format=fmt, on_error="warn")
            assert w and same(warned, part)
        else:
            assert same(ev, exp[: len(ev)]), cut


# -- ATIS .bin --------------------------------------------------------------------
def test_bin_matches_tonic_whole_and_chunked():
    p = sample_path("sample_nmnist.bin")
    exp = expected_events("sample_nmnist.bin")
    r = AtisBinReader(p)
    assert same(r.read(), exp)
    assert r.info.sensor_size == (34, 34) and r.info.sensor_size_source == "table"
    assert r.info.extras["dataset"] == "N-MNIST"
    check_chunkings(p, "atis_bin", exp, chunk_events=(1, 7, 4096, 997, None))


def test_bin_overflow_markers_follow_tonic(tmp_path):
    tonic_io = pytest.importorskip("tonic.io")
    ev = random_events(3000, seed=1, w=256, h=240, t_step=9000)  # t reaches ~1.3e7 > 2**23
    data = encode_atis_bin(ev)
    assert (np.frombuffer(data, np.uint8)[1::5] == 240).any()
    p = tmp_path / "ovf.bin"
    p.write_bytes(data)
    ref = tonic_io.read_mnist_file(str(p), dtype=np.dtype(
        [("x", int), ("y", int), ("t", int), ("p", int)]))
    got = read_events(p, format="atis_bin", block_bytes=64)
    assert same(got, make_events(ref["x"], ref["y"], ref["t"], ref["p"])) and same(got, ev)
    r = AtisBinReader(p)
    r.read()
    assert r.info.sensor_size_source == "inferred" and "Caltech" in r.info.extras["dataset"]


def test_bin_nmnist_table_only_when_every_event_fits_34x34(tmp_path):
    """The N-MNIST size comes from the table only when every event (not the overflow markers,
    whose x is anything) is below 34 in x and y; one event at 34, even the last, makes the
    size inferred; a file of markers only is not N-MNIST."""
    ev = expected_events("sample_nmnist.bin")
    base = encode_atis_bin(ev)

    def info(data: bytes):
        q = tmp_path / "q.bin"
        q.write_bytes(data)
        r = AtisBinReader(q)
        r.read()
        return r.info.sensor_size_source, r.info.extras["dataset"]

    marker = bytes([200, 240, 0, 0, 0])  # x = 200 on an overflow marker: not an event
    assert info(marker + base + marker) == ("table", "N-MNIST")
    for field in ("x", "y"):
        late = ev.copy()
        late[field][-1] = 34
        assert info(encode_atis_bin(late))[0] == "inferred", field
    assert info(marker * 3)[1].startswith("N-Caltech101")


def test_bin_truncation_and_damage(tmp_path):
    data = sample_path("sample_nmnist.bin").read_bytes()
    exp = expected_events("sample_nmnist.bin")
    check_truncations(tmp_path, data, "atis_bin", exp, [1, 4, 6, 99, 5001, 10_003, len(data) - 1],
                      ".bin")
    p = tmp_path / "cut.bin"
    p.write_bytes(data[:12])
    with pytest.raises(EventFormatError, match="truncated record") as ei:
        read_events(p, format="atis_bin")
    assert ei.value.offset == 10 and len(ei.value.partial) == 2
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert len(read_events(empty, format="atis_bin")) == 0
    rng = np.random.default_rng(3)
    for i in range(20):  # garbage bodies: every whole record decodes; no other exception
        q = tmp_path / f"junk{i}.bin"
        q.write_bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
        check_only_format_errors(q, "atis_bin")


def test_bin_sniffing(tmp_path):
    p = sample_path("sample_nmnist.bin")
    assert AtisBinReader.sniff_path(p, read_head(p))
    odd = tmp_path / "x.data"
    odd.write_bytes(p.read_bytes())
    assert not AtisBinReader.sniff_path(odd, read_head(odd))
    text = tmp_path / "t.bin"
    text.write_bytes(b"t,x,y,p\n1,2,3,1\n2,2,3,0\n" * 5)
    assert not AtisBinReader.sniff_path(text, read_head(text))


# -- Event Stream .es -----------------------------------------------------------------
def test_es_matches_faery_whole_and_chunked():
    p = sample_path("dvs.es")
    exp = expected_events("dvs.es")
    r = EventStreamReader(p)
    assert same(r.read(), exp)
    assert r.info.sensor_size == (320, 240) and r.info.sensor_size_source == "file"
    assert r.info.extras == {"version": "2.0.0", "event_type": "dvs"}
    check_chunkings(p, "es", exp, chunk_events=(4096, 10007, None), block_bytes=(100, 4097, None))


def test_es_small_blocks_and_single_events(tmp_path):
    exp = expected_events("dvs.es")[:3000]
    p = tmp_path / "small.es"
    p.write_bytes(encode_es(exp, (320, 240)))
    assert sample_path("dvs.es").read_bytes().startswith(p.read_bytes())  # encoder == file
    check_chunkings(p, "es", exp, chunk_events=(1, 7, None), chunk_us=(None, 997),
                    block_bytes=(64, 101, 4097))


def test_es_encoder_reproduces_the_file():
    exp = expected_events("dvs.es")
    assert encode_es(exp, (320, 240)) == sample_path("dvs.es").read_bytes()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 65534), st.integers(0, 299), st.integers(0, 199),
                          st.integers(0, 1)), max_size=60))
def test_es_roundtrip_property(tmp_path_factory, rows):
    dts, xs, ys, ps = zip(*rows) if rows else ((), (), (), ())
    ev = make_events(np.array(xs, np.int64), np.array(ys, np.int64),
                     np.cumsum(np.array(dts, np.int64)), np.array(ps, np.int64))
    p = tmp_path_factory.mktemp("es") / "r.es"
    p.write_bytes(encode_es(ev, (300, 200)))
    assert same(read_events(p, format="es", block_bytes=64), ev)


def test_es_truncation_and_bad_headers(tmp_path):
    data = sample_path("dvs.es").read_bytes()
    exp = expected_events("dvs.es")
    check_truncations(tmp_path, data, "es", exp, [21, 22, 23, 24, 25, 26, 1000, 777_777,
                                                  len(data) - 1], ".es")
    for cut in range(20):  # header cut anywhere
        p = tmp_path / f"h{cut}.es"
        p.write_bytes(data[:cut])
        with pytest.raises(EventFormatError):
            read_events(p, format="es")
    head = bytearray(data[:20])
    cases = {"bad magic": b"Event Strean" + head[12:], "version": head[:12] + b"\x01" + head[13:]}
    for t in (0, 3, 4, 9):
        cases[f"type{t}"] = head[:15] + bytes([t]) + head[16:]
    cases["zero size"] = head[:16] + b"\0\0\0\0"
    for name, h in cases.items():
        p = tmp_path / "bad.es"
        p.write_bytes(bytes(h) + data[20:200])
        with pytest.raises(EventFormatError) as ei:
            read_events(p, format="es")
        assert ei.value.offset is not None, name
    p.write_bytes(head[:15] + b"\x04" + head[16:])
    with pytest.raises(EventFormatError, match="unsupported Event Stream type"):
        read_events(p, format="es")


def test_es_coordinate_outside_geometry_and_bitflips(tmp_path):
    data = bytearray(sample_path("dvs.es").read_bytes()[:5020])
    exp = expected_events("dvs.es")
    data[20 + 5 * 10 + 2] = 0x7F  # x high byte of the 11th event: x >= 320
    p = tmp_path / "x.es"
    p.write_bytes(bytes(data))
    with pytest.raises(EventFormatError) as ei:
        read_events(p, format="es")
    assert ei.value.field == "x" and ei.value.offset == 20 + 52 and same(ei.value.partial, exp[:10])
    rng = np.random.default_rng(5)
    clean = sample_path("dvs.es").read_bytes()[:20_000]
    for i in range(25):
        b = bytearray(clean)
        for pos in rng.integers(0, len(b), 4):
            b[pos] ^= 1 << int(rng.integers(0, 8))
        q = tmp_path / f"flip{i}.es"
        q.write_bytes(bytes(b))
        check_only_format_errors(q, "es")


def test_es_atis_type_drops_threshold_crossings(tmp_path):
    body = bytearray()
    # (dt, polarity, is_tc, x, y): DVS events at t = 3 and 3 + 63*2 + 5, one TC event between
    for dt, pol, tc, x, y in ((3, 1, 0, 10, 20), (1, 1, 1, 11, 21), (0, 0, 0, 12, 22)):
        body += bytes([(dt << 2) | (pol << 1) | tc]) + struct.pack("<HH", x, y)
        if tc:
            body += bytes([0xFE, 0xFC, 0xFD])  # overflow 2*63, reset, overflow 63
    body += bytes([(5 << 2) | 0b10]) + struct.pack("<HH", 1, 2)
    p = tmp_path / "atis.es"
    p.write_bytes(b"Event Stream" + bytes([2, 0, 0, 2]) + struct.pack("<HH", 64, 32) + body)
    ev = read_events(p, format="es", block_bytes=64)
    assert ev["t"].tolist() == [3, 4 + 189, 4 + 189 + 5]
    assert ev["x"].tolist() == [10, 12, 1] and ev["y"].tolist() == [31 - 20, 31 - 22, 31 - 2]
    assert ev["p"].tolist() == [1, 0, 1]


# -- HAR-DVS --------------------------------------------------------------------------
def make_hardvs_tree(root, n_per=2):
    rng = np.random.default_rng(7)
    lines = []
    samples = {}
    for a in (0, 1, 299):
        d = root / f"action_{a:03d}"
        d.mkdir(parents=True)
        for k in range(n_per):
            ev = random_events(int(rng.integers(1, 500)), seed=a * 10 + k, w=346, h=260)
            rel = f"action_{a:03d}/dvSave-2021_10_15_19_32_0{k}.npz"
            p = root / rel
            np.savez(p, t=ev["t"], x=ev["x"].astype(np.int32), y=ev["y"].astype(np.int32),
                     p=np.where(ev["p"] == 1, 1, -1).astype(np.int8))
            samples[rel] = ev
            lines.append(f"{rel} {a}")
    (root / "train_label.txt").write_text("\n".join(lines[::2]) + "\n")
    (root / "val_label.txt").write_text("\n".join(ln.replace(" ", ",") for ln in lines[1::2]))
    return samples


def test_hardvs_index_and_reader(tmp_path):
    samples = make_hardvs_tree(tmp_path)
    train = HarDvsIndex(tmp_path, "train")
    val = HarDvsIndex(tmp_path, split="val")
    assert len(train) == 3 and len(val) == 3
    assert train.labels.tolist() == [0, 1, 299]
    for path, label in list(train) + list(val):
        rel = path.relative_to(tmp_path).as_posix()
        assert HarDvsReader.sniff_path(path, read_head(path))
        assert NpzReader.sniff(read_head(path)) and not HarDvsReader.sniff(read_head(path))
        r = open_reader(path, format="hardvs", block_bytes=64)
        assert same(r.read(), samples[rel])
        assert r.info.sensor_size == (346, 260) and r.info.sensor_size_source == "table"
        assert r.info.extras["action_index"] == label
    ev, label = train.read(1)
    assert label == 1 and len(ev)
    loose = tmp_path / "elsewhere.npz"
    loose.write_bytes(path.read_bytes())
    assert not HarDvsReader.sniff_path(loose, read_head(loose))


def test_hardvs_index_errors(tmp_path):
    make_hardvs_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match="test_label"):
        HarDvsIndex(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        HarDvsIndex(tmp_path, "dev")
    (tmp_path / "test_label.txt").write_text("action_000/nope.npz 0\n")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        HarDvsIndex(tmp_path, "test")
    for bad in ("action_000/a.npz\n", "action_000/a.npz zero\n", "x 300\n", "\xff\n"):
        (tmp_path / "test_label.txt").write_bytes(b"# comment\n\n" + bad.encode("latin-1"))
        with pytest.raises(EventFormatError) as ei:
            HarDvsIndex(tmp_path, "test", check_files=False)
        assert "line 3" in str(ei.value) and ei.value.offset == 11


# -- tonic DVS Gesture .npy -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_gesture_npy_matches_tonic_code_path(tmp_path, dtype):
    dvsgesture = pytest.importorskip("tonic.datasets.dvsgesture")
    rfn = pytest.importorskip("numpy.lib.recfunctions")
    ev = random_events(5000, seed=2, w=128, h=128)
    t_ms = ev["t"] / 1000.0 if dtype != np.int64 else ev["t"] // 1000
    arr = np.stack([ev["x"], ev["y"], ev["p"], t_ms], axis=1).astype(dtype)
    p = tmp_path / "0.npy"
    np.save(p, arr)
    assert GestureNpyReader.sniff(read_head(p)) and not NpyReader.sniff(read_head(p))
    ref = np.load(p)  # what DVSGesture.__getitem__ does
    ref[:, 3] *= 1000
    ref = rfn.unstructured_to_structured(ref, dvsgesture.DVSGesture.dtype)
    r = open_reader(p, format="gesture_npy")
    got = r.read()
    assert same(got, make_events(ref["x"], ref["y"], ref["t"], ref["p"]))
    assert r.info.sensor_size == (128, 128) and r.info.sensor_size_source == "table"
    check_chunkings(p, "gesture_npy", got, chunk_events=(7, None), chunk_us=(None,),
                    block_bytes=(64, 4097))
    arr[10, 3] = np.nan if dtype != np.int64 else -1
    np.save(p, arr)
    if dtype != np.int64:
        with pytest.raises(EventFormatError, match="row 10") as ei:
            read_events(p, format="gesture_npy", block_bytes=64)
        assert same(ei.value.partial, got[:10])


# -- plain npy / npz / csv ------------------------------------------------------------
@pytest.fixture(scope="module")
def ref_events():
    return expected_events("dvs.es")[:6000]


def test_plain_roundtrips_and_chunking(tmp_path, ref_events):
    ev = ref_events
    for name, writer, reader in (("a.npy", write_npy, NpyReader), ("a.npz", write_npz, NpzReader),
                                 ("a.csv", write_csv, CsvReader)):
        p = tmp_path / name
        writer(p, ev)
        head = read_head(p)
        assert [c for c in MY_READERS if c.sniff(head)] == [reader], name
        assert same(read_events(p, format=reader.format), ev)
        check_chunkings(p, reader.format, ev, chunk_events=(1, 4096, None), chunk_us=(None, 3331),
                        block_bytes=(64, 4097))
    write_npz(tmp_path / "s.npz", ev, sensor_size=(320, 240), compressed=True)
    r = NpzReader(tmp_path / "s.npz")
    assert same(r.read(), ev) and r.info.sensor_size == (320, 240)
    assert r.info.sensor_size_source == "file"
    write_csv(tmp_path / "n.csv", ev, header=False)
    assert same(read_events(tmp_path / "n.csv", format="csv", block_bytes=100), ev)


def test_plain_conversions(tmp_path):
    ev = random_events(100, seed=4)
    rec = np.zeros(100, dtype=[("p", bool), ("t", ">u4"), ("y", "i4"), ("x", "u1"), ("z", "f4")])
    rec["x"], rec["y"], rec["t"], rec["p"] = ev["x"] % 256, ev["y"], ev["t"], ev["p"]
    np.save(tmp_path / "r.npy", rec)
    got = read_events(tmp_path / "r.npy", format="npy")
    assert same(got, make_events(rec["x"], rec["y"], rec["t"], rec["p"]))
    np.savez(tmp_path / "s.npz", events=rec)  # one structured member
    assert same(read_events(tmp_path / "s.npz", format="npz"), got)
    rec["y"][37] = -3
    np.save(tmp_path / "bad.npy", rec)
    with pytest.raises(EventFormatError, match="row 37") as ei:
        read_events(tmp_path / "bad.npy", format="npy")
    start = NpyReader(tmp_path / "bad.npy").data_offset
    assert ei.value.field == "y" and ei.value.offset == start + 37 * rec.dtype.itemsize
    assert same(ei.value.partial, got[:37])
    np.savez(tmp_path / "f.npz", t=np.arange(3), x=np.array([1.0, 2.5, 3]), y=np.zeros(3),
             p=np.ones(3))
    with pytest.raises(EventFormatError, match="not an integer"):
        read_events(tmp_path / "f.npz", format="npz")
    np.savez(tmp_path / "g.npz", t=np.arange(3), x=np.array([1, 2, 400]), y=np.zeros(3, int),
             p=np.ones(3, int), sensor_size=np.array([300, 10, 2]))
    with pytest.raises(EventFormatError, match="sensor_size") as ei:
        read_events(tmp_path / "g.npz", format="npz")
    assert len(ei.value.partial) == 2
    np.savez(tmp_path / "h.npz", t=np.arange(3), x=np.zeros(3, int), y=np.zeros(3, int),
             p=np.array([0, 1, 2]))
    with pytest.raises(EventFormatError, match="p = 2"):
        read_events(tmp_path / "h.npz", format="npz")


def test_csv_dialects_and_errors(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"\xef\xbb\xbfx, y ,timestamp,polarity\r\n3,4,100,1\r\n\r\n5 ,6, 200 ,-1\n7 8 300 0")
    ev = read_events(p, format="csv", block_bytes=64)
    assert ev["t"].tolist() == [100, 200, 300] and ev["x"].tolist() == [3, 5, 7]
    assert ev["y"].tolist() == [4, 6, 8] and ev["p"].tolist() == [1, 0, 0]
    assert CsvReader.sniff(read_head(p))
    p.write_bytes(b"t,x,y,p\n")
    assert len(read_events(p, format="csv")) == 0
    bad = {b"t,x,y,q\n1,2,3,1\n": (None, "header"),
           b"1,2,3,1\n2,2,3\n": (8, "fewer than 4"),
           b"1,2,3,1\n2,2,3,1,5\n": (8, "more than 4"),
           b"1,2,3,1\n2,2,3,1\n3,70000,3,1\n": (16, "out of range"),
           b"1,2,3,1\n2,2.5,3,1\n": (8, "integer"),
           b"1,2,3,1\n2,2,3,7\n": (8, "out of range"),
           b"1,2,3,1\n" + b"9" * 30 + b",1,1,1\n": (8, "out of range"),
           b"1,2,3,1\n2,,3,1\n": (8, "integer"),
           b"1,2,3,1\n" + b"1" * 5000: (8, "line too long"),
           b"": (None, "empty")}
    for data, (line_start, msg) in bad.items():
        p.write_bytes(data)
        for bb in (64, 4097):
            with pytest.raises(EventFormatError, match=msg) as ei:
                read_events(p, format="csv", block_bytes=bb)
            if line_start is not None:
                assert "line 2" in str(ei.value) or "line 3" in str(ei.value)
                assert line_start <= ei.value.offset < len(data)
                assert len(ei.value.partial) >= 1


def test_npy_npz_damage(tmp_path, ref_events):
    ev = ref_events[:3000]
    write_npy(tmp_path / "a.npy", ev)
    data = (tmp_path / "a.npy").read_bytes()
    check_truncations(tmp_path, data, "npy", ev, [0, 5, 60, 127, 128, 129, 143, 1000, len(data) - 1],
                      ".npy")
    (tmp_path / "t.npy").write_bytes(data + b"\0\0")
    with pytest.raises(EventFormatError, match="trailing"):
        read_events(tmp_path / "t.npy", format="npy")
    write_npz(tmp_path / "a.npz", ev, compressed=True)
    zdata = (tmp_path / "a.npz").read_bytes()
    rng = np.random.default_rng(9)
    for cut in (0, 3, 40, len(zdata) // 2, len(zdata) - 1):
        (tmp_path / "c.npz").write_bytes(zdata[:cut])
        check_only_format_errors(tmp_path / "c.npz", "npz")
    for i in range(15):
        b = bytearray(zdata)
        for pos in rng.integers(0, len(b), 3):
            b[pos] ^= 0xFF
        (tmp_path / "f.npz").write_bytes(bytes(b))
        check_only_format_errors(tmp_path / "f.npz", "npz")
        b = bytearray(data)
        for pos in rng.integers(0, 130, 2):
            b[pos] ^= 1 << int(rng.integers(0, 8))
        (tmp_path / "f.npy").write_bytes(bytes(b))
        check_only_format_errors(tmp_path / "f.npy", "npy")
        check_only_format_errors(tmp_path / "f.npy", "gesture_npy")
        check_only_format_errors(tmp_path / "f.npy", "csv")


def test_no_reader_here_claims_another_format(tmp_path):
    for name in OTHER_SAMPLES + ("sample_nmnist.bin",):
        head = read_head(sample_path(name))
        claims = [c.__name__ for c in MY_READERS if c.sniff(head) and c is not AtisBinReader]
        assert claims == [], name
    es_head = read_head(sample_path("dvs.es"))
    assert [c for c in MY_READERS if c.sniff(es_head)] == [EventStreamReader]
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    assert not any(c.sniff(read_head(junk)) for c in MY_READERS if c is not AtisBinReader)
    assert not AtisBinReader.sniff_path(junk, read_head(junk))


def test_detection_by_content_in_table_order(tmp_path, ref_events):
    from eventpipe.io import detect_format
    for spec in __import__("eventpipe.io.formats", fromlist=["FORMATS"]).FORMATS:
        spec.load()  # every reader in the table imports (a failure fails, no skip)
    ev = ref_events[:500]
    make_hardvs_tree(tmp_path / "har")
    write_npy(tmp_path / "a.data", ev)
    write_npz(tmp_path / "b.data", ev)
    write_csv(tmp_path / "c.data", ev)
    np.save(tmp_path / "g.npy", np.zeros((10, 4)))
    (tmp_path / "g.npy").rename(tmp_path / "g.data")
    want = {"a.data": "npy", "b.data": "npz", "c.data": "csv", "g.data": "gesture_npy",
            "har/action_001/dvSave-2021_10_15_19_32_00.npz": "hardvs"}
    for name, fmt in want.items():
        assert detect_format(tmp_path / name).name == fmt, name
