"""The wire format: round trips, and every kind of damage raises EventFormatError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE, make_events
from eventpipe.transport.wire import (FLAG_CRC, FLAG_WIDE_DT, HEADER_SIZE, MAGIC, decode_packet,
                            encode_packet, peek_header)

SETTINGS = settings(derandomize=True, max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def packets(draw):
    n = draw(st.integers(0, 60))
    w = draw(st.integers(1, 0xFFFF))
    h = draw(st.integers(1, 0xFFFF))
    xs = draw(st.lists(st.integers(0, w - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, h - 1), min_size=n, max_size=n))
    t0 = draw(st.integers(-(1 << 62), 1 << 62))
    span = draw(st.sampled_from([1000, (1 << 32) - 1, 1 << 40]))
    ts = draw(st.lists(st.integers(t0, t0 + span), min_size=n, max_size=n))
    ps = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    ev = make_events(np.array(xs, np.int64), np.array(ys, np.int64), np.array(ts, np.int64),
                     np.array(ps, np.int64))
    size = draw(st.sampled_from([None, (w, h)]))
    return ev, draw(st.integers(0, 0xFFFFFFFF)), draw(st.integers(0, (1 << 64) - 1)), size


@SETTINGS
@given(packets(), st.booleans())
def test_round_trip(pk, crc):
    ev, sid, seq, size = pk
    buf = encode_packet(ev, sid, seq, size, crc=crc)
    out = decode_packet(buf)
    assert out.stream_id == sid and out.seq == seq and out.sensor_size == size
    assert out.events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(out.events, ev)
    assert decode_packet(bytearray(buf)).events.tobytes() == ev.tobytes()


def test_layout_is_documented_header():
    ev = make_events([1, 2], [3, 4], [100, 105], [1, 0])
    buf = encode_packet(ev, stream_id=7, seq=9, sensor_size=(640, 480))
    assert buf[:4] == MAGIC and buf[4] == 1 and buf[5] == FLAG_CRC
    assert struct.unpack_from("<IHHQqI", buf, 8) == (7, 640, 480, 9, 100, 2)
    assert len(buf) == HEADER_SIZE + 2 * 9 + 4
    assert struct.unpack_from("<2H2H2I2B", buf, HEADER_SIZE) == (1, 2, 3, 4, 0, 5, 1, 0)
    assert struct.unpack_from("<I", buf, len(buf) - 4)[0] == zlib.crc32(buf[:-4])


def test_wide_deltas_flag():
    ev = make_events([0, 0], [0, 0], [0, 1 << 33], [0, 1])
    buf = encode_packet(ev)
    assert buf[5] & FLAG_WIDE_DT
    np.testing.assert_array_equal(decode_packet(buf).events, ev)


def test_empty_packet():
    buf = encode_packet(np.empty(0, EVENT_DTYPE), 1, 2)
    out = decode_packet(buf)
    assert len(out.events) == 0 and out.sensor_size is None


@pytest.mark.parametrize("bad,field", [
    (lambda b: b"XXXX" + b[4:], "magic"),
    (lambda b: b[:20], "header"),
    (lambda b: b[:4] + bytes([2]) + b[5:], "version"),
    (lambda b: b[:5] + bytes([b[5] | 0x80]) + b[6:], "flags"),
    (lambda b: b[:6] + b"\x01\x00" + b[8:], "reserved"),
    (lambda b: b[:-1], "events"),
    (lambda b: b + b"\x00", "count"),
    (lambda b: b[:HEADER_SIZE] + bytes([b[HEADER_SIZE] ^ 1]) + b[HEADER_SIZE + 1:], "crc32"),
    (lambda b: b"", "magic"),
    (lambda b: b"\x00" * 64, "magic"),
])
def test_malformed_names_field(bad, field):
    ev = make_events([1, 2, 3], [3, 4, 5], [100, 105, 110], [1, 0, 1])
    buf = encode_packet(ev, 1, 1, (10, 10))
    with pytest.raises(EventFormatError) as ei:
        decode_packet(bad(buf))
    assert ei.value.field == field
    assert ei.value.offset is not None


def test_out_of_sensor_and_polarity_without_crc():
    ev = make_events([1, 2], [3, 4], [100, 105], [1, 0])
    buf = bytearray(encode_packet(ev, 1, 1, (10, 10), crc=False))
    bad_x = bytearray(buf)
    struct.pack_into("<H", bad_x, HEADER_SIZE + 2, 10)  # x[1] = 10 >= W
    with pytest.raises(EventFormatError) as ei:
        decode_packet(bad_x)
    assert ei.value.field == "x" and ei.value.offset == HEADER_SIZE + 2
    bad_p = bytearray(buf)
    bad_p[-1] = 2
    with pytest.raises(EventFormatError) as ei:
        decode_packet(bad_p)
    assert ei.value.field == "p"


@SETTINGS
@given(st.data())
def test_mutations_never_crash(data):
    """Any flipped, cut or appended bytes: a valid packet or EventFormatError, nothing else."""
    ev = make_events(np.arange(20) % 7, np.arange(20) % 5, np.arange(20) * 3, np.arange(20) % 2)
    buf = bytearray(encode_packet(ev, 3, 4, (7, 5), crc=data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "append", "set"]))
        if kind == "flip" and buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            buf = buf[:data.draw(st.integers(0, len(buf)))]
        elif kind == "append":
            buf += data.draw(st.binary(min_size=1, max_size=16))
        elif buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
    try:
        out = decode_packet(bytes(buf))
    except EventFormatError:
        return
    assert out.events.dtype == EVENT_DTYPE
    if out.sensor_size:
        assert (out.events["x"] < out.sensor_size[0]).all()
    assert set(np.unique(out.events["p"])) <= {0, 1}


@SETTINGS
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_are_rejected_or_valid(blob, with_magic):
    """Random bytes (also behind the magic): a typed error naming field and offset inside
    the blob, or -- only with the magic in front -- a packet holding valid events."""
    if with_magic:
        blob = MAGIC + blob
    try:
        out = decode_packet(blob)
    except EventFormatError as exc:
        assert exc.field and exc.offset is not None and 0 <= exc.offset <= len(blob)
        return
    assert blob.startswith(MAGIC), "a packet without the magic was accepted"
    assert out.events.dtype == EVENT_DTYPE
    if out.sensor_size and len(out.events):
        assert (out.events["x"] < out.sensor_size[0]).all()
        assert (out.events["y"] < out.sensor_size[1]).all()
    assert set(np.unique(out.events["p"])) <= {0, 1}


def test_encode_rejects_bad_header_values():
    ev = make_events([1], [1], [1], [1])
    with pytest.raises(ValueError):
        encode_packet(ev, stream_id=-1)
    with pytest.raises(ValueError):
        encode_packet(ev, seq=1 << 64)
    with pytest.raises(ValueError):
        encode_packet(ev, sensor_size=(65536, 10))


def test_peek_header():
    buf = encode_packet(make_events([1], [1], [5], [1]), 2, 3, (4, 4))
    hd = peek_header(buf)
    assert (hd["stream_id"], hd["seq"], hd["count"], hd["t_base"]) == (2, 3, 1, 5)
