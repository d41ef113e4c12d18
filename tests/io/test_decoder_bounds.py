"""EVT 3.0 and AEDAT 2.0 decoders at their boundaries, on byte streams written by hand
from the format specifications (not by our encoders).

EVT 3.0 (Prophesee "EVT 3.0 format" documentation; openeb ``evt3_event_types.h`` and its
decoder): 16-bit little-endian words, type in bits 15..12: 0x0 ADDR_Y (y = bits 10..0),
0x2 ADDR_X (x = bits 10..0, polarity = bit 11), 0x3 VECT_BASE_X (base = bits 10..0,
polarity = bit 11), 0x4 VECT_12 (12-bit mask), 0x5 VECT_8 (8-bit mask), 0x6 TIME_LOW
(bits 11..0), 0x8 TIME_HIGH (timestamp bits 23..12).  openeb counts a 2**24 us wrap when
TIME_HIGH falls by ``(4095 - 10) << 12`` us or more (``max_timestamp_base`` minus
``loop_threshold``).  The header's ``format EVT3;height=H;width=W`` bounds x < W, y < H.

AEDAT 2.0 (docs.inivation.com, "AEDAT 2.0"; jAER ``DavisBaseCamera`` extractor): ``#``
header lines ending in CRLF, then big-endian (u32 address, u32 timestamp us) pairs.  DAVIS:
bit 31 = APS/IMU (skipped), bit 10 = special (skipped), y = bits 30..22, x = bits 21..12,
polarity = bit 11.  DVS128: bit 15 = special, y = bits 14..8, x = 127 - bits 7..1,
ON = bit 0 clear.  Timestamps are u32; a backward step of more than 2**31 us is a wrap.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.io import iter_events, read_events

EVT3_HDR = b"% evt 3.0\n% format EVT3;height=480;width=640\n% end\n"


def evt3(tmp_path, words, name="w.raw"):
    p = tmp_path / name
    p.write_bytes(EVT3_HDR + np.array(words, "<u2").tobytes())
    return p


def TH(v):
    return 0x8000 | v


def TL(v):
    return 0x6000 | v


def Y(v):
    return 0x0000 | v


def X(v, p=0):
    return 0x2000 | (p << 11) | v


def VB(v, p=0):
    return 0x3000 | (p << 11) | v


def V12(m):
    return 0x4000 | m


def V8(m):
    return 0x5000 | m


def _rows(ev):
    return [tuple(int(v) for v in e) for e in ev[["x", "y", "t", "p"]]]


def _err(path, **kw):
    with pytest.raises(EventFormatError) as ei:
        read_events(path, format="evt3", **kw)
    return ei.value


# -- EVT 3.0 ------------------------------------------------------------------------------

def test_evt3_last_column_and_row_accepted(tmp_path):
    p = evt3(tmp_path, [TH(0), TL(5), Y(479), X(639, 1), Y(0), X(0)])
    assert _rows(read_events(p, format="evt3")) == [(639, 479, 5, 1), (0, 0, 5, 0)]


def test_evt3_x_equal_to_width_is_damage_at_its_word(tmp_path):
    p = evt3(tmp_path, [TH(0), Y(3), X(639), X(640)])
    e = _err(p)
    assert e.field == "x" and e.offset == len(EVT3_HDR) + 3 * 2
    assert _rows(e.partial) == [(639, 3, 0, 0)]


def test_evt3_y_equal_to_height_is_damage_at_its_word(tmp_path):
    p = evt3(tmp_path, [TH(0), Y(479), X(1), Y(480), X(2)])
    e = _err(p)
    assert e.field == "y" and e.offset == len(EVT3_HDR) + 3 * 2
    assert _rows(e.partial) == [(1, 479, 0, 0)]


@pytest.mark.parametrize("vec,width", [(V12, 12), (V8, 8)])
def test_evt3_vector_reaching_the_last_column_is_fine(tmp_path, vec, width):
    # base 636: bits 0..3 -> x = 636..639 (the last column); the mask's unset high bits
    # would lie past the edge, which is not an event
    p = evt3(tmp_path, [TH(0), Y(7), VB(636, 1), vec(0b1111)])
    assert _rows(read_events(p, format="evt3")) == [(x, 7, 0, 1) for x in range(636, 640)]


@pytest.mark.parametrize("vec", [V12, V8])
def test_evt3_vector_past_the_last_column_is_damage(tmp_path, vec):
    p = evt3(tmp_path, [TH(0), Y(7), VB(636, 1), vec(0b10001)])  # x = 636 and 640
    e = _err(p)
    assert e.field == "x" and e.offset == len(EVT3_HDR) + 3 * 2


def test_evt3_vector_base_advances_by_12_and_8(tmp_path):
    p = evt3(tmp_path, [TH(0), Y(1), VB(100), V12(1), V8(1), V12(0x800), X(5, 1)])
    assert [r[0] for r in _rows(read_events(p, format="evt3"))] == [100, 112, 120 + 11, 5]


def test_evt3_time_high_falling_by_exactly_the_threshold_is_a_wrap(tmp_path):
    # 4085 -> 0: falls by (4095 - 10) << 12: openeb counts a loop of 2**24 us
    p = evt3(tmp_path, [TH(4085), Y(0), X(1), TH(0), X(2)])
    assert [r[2] for r in _rows(read_events(p, format="evt3"))] == [4085 << 12, 1 << 24]


def test_evt3_time_high_falling_by_less_than_the_threshold_is_kept(tmp_path):
    # 4084 -> 0: one step short of the threshold: a backward step, no loop
    p = evt3(tmp_path, [TH(4084), Y(0), X(1), TH(0), X(2)])
    assert [r[2] for r in _rows(read_events(p, format="evt3"))] == [4084 << 12, 0]


def test_evt3_two_wraps_and_time_low(tmp_path):
    p = evt3(tmp_path, [TH(4095), TL(4095), Y(0), X(1), TH(0), TL(1), X(2), TH(4095), X(3),
                        TH(2), X(4)])
    assert [r[2] for r in _rows(read_events(p, format="evt3"))] == [
        (4095 << 12) | 4095, (1 << 24) + 1, (1 << 24) + (4095 << 12), (2 << 24) + (2 << 12)]


def test_evt3_geometry_bounds_hold_across_chunks(tmp_path):
    words = [TH(0), Y(2)] + [X(k % 640) for k in range(2000)] + [X(640)]
    p = evt3(tmp_path, words)
    with pytest.raises(EventFormatError) as ei:
        for _ in iter_events(p, format="evt3", chunk_events=100):
            pass
    assert ei.value.field == "x" and ei.value.offset == len(EVT3_HDR) + (len(words) - 1) * 2


# -- AEDAT 2.0 ----------------------------------------------------------------------------

DAVIS_HDR = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C\r\n"
DVS_HDR = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n"


def davis(x, y, p):
    return (y << 22) | (x << 12) | (p << 11)


def aedat(tmp_path, pairs, hdr=DAVIS_HDR, name="a.aedat"):
    p = tmp_path / name
    p.write_bytes(hdr + b"".join(struct.pack(">II", a, t) for a, t in pairs))
    return p


def test_aedat2_davis_last_pixel_accepted(tmp_path):
    p = aedat(tmp_path, [(davis(239, 179, 1), 10), (davis(0, 0, 0), 11)])
    assert _rows(read_events(p, format="aedat2")) == [(239, 179, 10, 1), (0, 0, 11, 0)]


@pytest.mark.parametrize("x,y,field", [(240, 0, "x"), (0, 180, "y"), (1023, 511, "x")])
def test_aedat2_davis_address_outside_the_sensor_is_damage(tmp_path, x, y, field):
    p = aedat(tmp_path, [(davis(1, 1, 1), 10), (davis(x, y, 0), 11)])
    with pytest.raises(EventFormatError) as ei:
        read_events(p, format="aedat2")
    assert ei.value.field == field and ei.value.offset == len(DAVIS_HDR) + 8


def test_aedat2_davis_skips_aps_imu_and_special_words(tmp_path):
    p = aedat(tmp_path, [(0x80000000 | davis(5, 5, 1), 1), (davis(6, 6, 1) | 0x400, 2),
                         (davis(7, 8, 0), 3)])
    assert _rows(read_events(p, format="aedat2")) == [(7, 8, 3, 0)]


def test_aedat2_dvs128_mirrors_x_and_reads_on_as_bit0_clear(tmp_path):
    raw = [((5 << 8) | (0 << 1) | 0, 1), ((127 << 8) | (127 << 1) | 1, 2), (0x8000, 3)]
    p = aedat(tmp_path, raw, hdr=DVS_HDR)
    assert _rows(read_events(p, format="aedat2")) == [(127, 5, 1, 1), (0, 127, 2, 0)]


@pytest.mark.parametrize("back,wrapped", [(1 << 31, False), ((1 << 31) + 1, True),
                                          ((1 << 30) + 1, False), (1, False)])
def test_aedat2_wrap_only_past_half_the_range(tmp_path, back, wrapped):
    t0 = 0xFFFFFF00
    p = aedat(tmp_path, [(davis(1, 1, 1), t0), (davis(2, 2, 1), t0 - back)])
    t = [r[2] for r in _rows(read_events(p, format="aedat2"))]
    assert t == [t0, t0 - back + ((1 << 32) if wrapped else 0)]


def test_aedat2_wrap_state_carries_across_chunks(tmp_path):
    pairs = [(davis(1, 1, 1), 0xFFFFFFF0 + k) for k in range(10)] + \
        [(davis(2, 2, 0), k) for k in range(10)]
    p = aedat(tmp_path, pairs)
    t = np.concatenate(list(iter_events(p, format="aedat2", chunk_events=3)))["t"]
    assert t.tolist() == [0xFFFFFFF0 + k for k in range(10)] + [(1 << 32) + k for k in range(10)]


def test_evt3_encoder_continues_the_decoders_vector_base(tmp_path):
    """24 ON events at x = 0..23 (same t, y): after VECT_BASE_X 0 and a VECT_12 the
    decoder's base is 12 (the spec: the base advances by 12), so the second run needs no
    new VECT_BASE_X: TIME_HIGH, ADDR_Y, VECT_BASE_X, VECT_12, VECT_12."""
    from eventpipe.events import make_events
    from eventpipe.io.evt3 import encode_evt3

    ev = make_events(np.arange(24), np.zeros(24), np.zeros(24), np.ones(24))
    data = encode_evt3(ev, (640, 480))
    body = data[data.index(b"% end\n") + len(b"% end\n"):]
    assert np.frombuffer(body, "<u2").tolist() == [TH(0), Y(0), VB(0, 1), V12(0xFFF), V12(0xFFF)]
    p = tmp_path / "enc.raw"
    p.write_bytes(data)
    assert _rows(read_events(p, format="evt3")) == [(x, 0, 0, 1) for x in range(24)]
