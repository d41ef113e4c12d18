"""udp:// decoding at its boundaries, from the byte layouts in docs/protocol.md.

Hand-made datagrams: coordinates one inside and one outside the sensor, polarity bytes
0/1/2, 32-bit timestamps stepping back by exactly 2**31 (no wrap) and 2**31 + 1 (a wrap),
arrival stamps in microseconds, and the kernel's cumulative drop counter (SO_RXQ_OVFL)
turned into a count of datagrams lost (its deltas, modulo 2**32).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.sources import open_source
from eventpipe.sources.udp import SO_RXQ_OVFL, T32, T64, Unwrap32, decode_datagram
from tests.transport.helpers import collect, wait_for

SENSOR = (640, 480)


def aestream(x, y, p) -> bytes:
    return np.array([0x80000000 | (x << 16) | (p << 15) | y], "<u4").tobytes()


def t64(x, y, on, t=0) -> bytes:
    r = np.zeros(1, T64)
    r["t"], r["x"], r["y"], r["on"] = t, x, y, on
    return r.tobytes()


def t32(x, y, on, t=0) -> bytes:
    r = np.zeros(1, T32)
    r["t"], r["x"], r["yon"] = t, x, (y << 1) | on
    return r.tobytes()


ENC = {"aestream": aestream, "t64_x16_y16_on8": t64, "t32_x16_y15_on1": t32}


@pytest.mark.parametrize("fmt", sorted(ENC))
def test_last_pixel_accepted_first_outside_rejected(fmt):
    enc = ENC[fmt]
    ev = decode_datagram(enc(639, 479, 1), fmt, 0, Unwrap32(), SENSOR)
    assert (int(ev["x"][0]), int(ev["y"][0]), int(ev["p"][0])) == (639, 479, 1)
    for x, y, field in ((640, 0, "x"), (0, 480, "y"), (640, 480, "x")):
        with pytest.raises(EventFormatError) as ei:
            decode_datagram(enc(1, 1, 0) + enc(x, y, 0), fmt, 0, Unwrap32(), SENSOR)
        assert ei.value.field == field
        size = len(enc(0, 0, 0))
        assert ei.value.offset == size  # the second record


@pytest.mark.parametrize("on,ok", [(0, True), (1, True), (2, False), (255, False)])
def test_t64_polarity_byte_must_be_0_or_1(on, ok):
    data = t64(1, 1, 1) + t64(2, 2, on)
    if ok:
        assert decode_datagram(data, "t64_x16_y16_on8", 0, Unwrap32())["p"].tolist() == [1, on]
        return
    with pytest.raises(EventFormatError, match=f"polarity byte {on}") as ei:
        decode_datagram(data, "t64_x16_y16_on8", 0, Unwrap32())
    assert (ei.value.field, ei.value.offset) == ("on", 13 + 12)


def test_t64_largest_int64_timestamp_accepted_one_more_rejected():
    top = (1 << 63) - 1
    assert decode_datagram(t64(1, 1, 1, t=top), "t64_x16_y16_on8", 0, Unwrap32())["t"].tolist() \
        == [top]
    with pytest.raises(EventFormatError) as ei:
        decode_datagram(t64(1, 1, 1, t=1 << 63), "t64_x16_y16_on8", 0, Unwrap32())
    assert ei.value.field == "t"


def test_unwrap_counts_a_wrap_only_for_a_step_back_of_more_than_2_31():
    un = Unwrap32()
    half = 1 << 31
    base = half + 100
    # back by exactly 2**31: a small out-of-order step in the unwrapper's terms, kept
    assert un(np.array([base, base - half], np.uint32)).tolist() == [base, 100]
    un = Unwrap32()
    # back by 2**31 + 1: the counter wrapped
    assert un(np.array([base, base - half - 1], np.uint32)).tolist() == [base, 99 + (1 << 32)]
    un = Unwrap32()
    # back by 2**30 + 1 (a quarter turn): no wrap
    assert un(np.array([base, base - (1 << 30) - 1], np.uint32)).tolist() == \
        [base, base - (1 << 30) - 1]


def test_unwrap_carries_its_state_across_calls():
    un = Unwrap32()
    assert un(np.array([(1 << 32) - 1], np.uint32)).tolist() == [(1 << 32) - 1]
    assert un(np.array([0, 1], np.uint32)).tolist() == [1 << 32, (1 << 32) + 1]
    assert un(np.array([(1 << 32) - 1, 2], np.uint32)).tolist() == \
        [(1 << 32) + (1 << 32) - 1, 2 * (1 << 32) + 2]
    assert (un.wraps, un.last) == (2, 2)


def test_plain_aestream_events_are_stamped_in_microseconds_since_the_start():
    before = time.monotonic_ns()
    with open_source("udp://127.0.0.1:0", format="aestream") as src:
        opened = time.monotonic_ns()
        threading.Event().wait(0.05)  # let at least 50 ms pass on the source's clock
        sent = time.monotonic_ns()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(aestream(3, 4, 1), ("127.0.0.1", src.port))
        got = collect(src, 1, timeout=10)
        after = time.monotonic_ns()
    t = int(got["t"][0])
    assert (sent - opened) // 1000 <= t <= (after - before) // 1000
    assert t >= 50_000


class FakeSocket:
    """Stands in for the UDP socket: datagrams with the ancillary data the kernel attaches
    (SO_RXQ_OVFL: the cumulative number of datagrams dropped on this socket, u32)."""

    def __init__(self, items):
        self.items = list(items)
        self.closed = False

    def recvmsg(self, bufsize, ancbufsize):
        if self.items:
            return self.items.pop(0)
        if self.closed:
            raise OSError("closed")
        threading.Event().wait(0.01)
        raise socket.timeout()

    def close(self):
        self.closed = True


def test_kernel_drop_counter_adds_the_deltas_of_the_cumulative_total():
    word = aestream(1, 1, 1)

    def dgram(total=None):
        anc = [] if total is None else [(socket.SOL_SOCKET, SO_RXQ_OVFL,
                                         struct.pack("=I", total))]
        return word, anc, 0, ("127.0.0.1", 1)

    # cumulative totals the kernel reports: none yet, 5, 5 (no new drop), 7, then the
    # u32 counter wraps from 2**32 - 1 to 3 (4 more drops)
    totals = [None, 5, 5, 7, None, (1 << 32) - 1, 3]
    src = open_source("udp://127.0.0.1:0", format="aestream", start=False)
    real = src._sock
    src._sock = FakeSocket([dgram(t) for t in totals])
    src._ovfl = True
    try:
        src.start()
        assert wait_for(lambda: src.stats.packets == len(totals), timeout=10)
        assert src.stats.kernel_dropped == 7 + ((1 << 32) - 1 - 7) + 4
    finally:
        src.close()
        real.close()


def test_kernel_drop_counter_small_case():
    word = aestream(1, 1, 1)
    items = [(word, [(socket.SOL_SOCKET, SO_RXQ_OVFL, struct.pack("=I", t))], 0, None)
             for t in (2, 3, 3, 10)]
    src = open_source("udp://127.0.0.1:0", format="aestream", start=False)
    real = src._sock
    src._sock = FakeSocket(items)
    src._ovfl = True
    try:
        src.start()
        assert wait_for(lambda: src.stats.packets == 4, timeout=10)
        assert src.stats.kernel_dropped == 10  # not 2 + 3 + 3 + 10
    finally:
        src.close()
        real.close()
