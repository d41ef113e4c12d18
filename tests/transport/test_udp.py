"""udp:// source: the real aestream CLI and faery senders, plus format/damage units."""

from __future__ import annotations

import socket
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.errors import EventFormatError
from eventpipe.events import make_events
from eventpipe.sources import open_source
from eventpipe.sources.udp import FORMATS, T32, T64, Unwrap32, decode_datagram
from tests.conftest import expected_events, sample_path
from tests.transport.faery_paced import send_paced
from tests.transport.helpers import collect, peer_command, peer_module, wait_for


def send_datagrams(port: int, datagrams) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))


def aestream_words(ev) -> bytes:
    w = (0x80000000 | (ev["x"].astype(np.uint32) << 16) | (ev["p"].astype(np.uint32) << 15)
         | ev["y"].astype(np.uint32))
    return w.astype("<u4").tobytes()


def test_aestream_cli_interop():
    exe = peer_command("aestream")
    path = sample_path("sample_ncars.dat")
    ev = expected_events("sample_ncars.dat")
    with open_source("udp://127.0.0.1:0", format="aestream") as src:
        proc = subprocess.run([exe, "input", "file", str(path), "output", "udp", "127.0.0.1",
                               str(src.port)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        got = collect(src, len(ev))
        assert len(got) == len(ev) == 2009
        for f in "xyp":
            np.testing.assert_array_equal(got[f], ev[f], err_msg=f)
        assert (np.diff(got["t"]) >= 0).all()  # arrival stamps
        st = src.stats
        assert (st.packets, st.bytes, st.malformed, st.dropped) == (16, 8036, 0, 0)


# faery 0.7.1's UDP encoder never closes its socket (not ours to fix)
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fmt", ["t64_x16_y16_on8", "t32_x16_y15_on1"])
def test_faery_interop(fmt):
    faery = peer_module("faery")
    path = sample_path("evt2_sample.raw")
    ev = expected_events("evt2_sample.raw")
    with open_source(f"udp://127.0.0.1:0?format={fmt}", sensor_size=(640, 480)) as src:
        # faery's encoder, paced on what the source took: no kernel drops, nothing skipped
        n_sent = send_paced(faery, path, ("127.0.0.1", src.port), fmt, src)
        got = collect(src, len(ev), timeout=20)
        st = src.stats
        assert st.kernel_dropped == 0 and st.dropped == 0, st
        assert st.packets == n_sent
        assert len(got) == len(ev) == 539481
        np.testing.assert_array_equal(got, ev)  # t too: both formats carry timestamps
        assert st.malformed == 0


def test_aestream_timestamped_variant_and_plain():
    ev = make_events([1, 300, 5], [2, 7, 32767], [10, 20, 30], [1, 0, 1])
    plain = aestream_words(ev)
    w = np.frombuffer(plain, "<u4") & 0x7FFFFFFF
    stamped = np.stack([w, ev["t"].astype(np.uint32)], 1).astype("<u4").tobytes()
    out = decode_datagram(stamped, "aestream", 999, Unwrap32())
    np.testing.assert_array_equal(out, ev)
    out = decode_datagram(plain, "aestream", 999, Unwrap32())
    assert (out["t"] == 999).all()
    np.testing.assert_array_equal(out[["x", "y", "p"]], ev[["x", "y", "p"]])


def test_t32_unwraps_across_datagrams():
    un = Unwrap32()
    rec = np.zeros(3, T32)
    rec["t"] = [(1 << 32) - 10, (1 << 32) - 1, 5]
    a = decode_datagram(rec.tobytes(), "t32_x16_y15_on1", 0, un)
    rec["t"] = [6, 7, 8]
    b = decode_datagram(rec.tobytes(), "t32_x16_y15_on1", 0, un)
    assert a["t"].tolist() == [(1 << 32) - 10, (1 << 32) - 1, (1 << 32) + 5]
    assert b["t"].tolist() == [(1 << 32) + 6, (1 << 32) + 7, (1 << 32) + 8]


def test_malformed_datagrams_counted_and_dropped():
    good = make_events([1, 2], [3, 4], [5, 6], [1, 0])
    rec = np.zeros(2, T64)
    rec["t"], rec["x"], rec["y"], rec["on"] = good["t"], good["x"], good["y"], good["p"]
    bad_on = rec.copy()
    bad_on["on"][1] = 7
    outside = rec.copy()
    outside["x"][0] = 640
    with open_source("udp://127.0.0.1:0", format="t64_x16_y16_on8",
                     sensor_size=(640, 480)) as src:
        send_datagrams(src.port, [b"\x00" * 14, bad_on.tobytes(), outside.tobytes(),
                                  rec.tobytes()])
        got = collect(src, 2)
        np.testing.assert_array_equal(got, good)
        assert wait_for(lambda: src.stats.malformed == 3)
        assert src.stats.packets == 4 and src.stats.received == 2
        assert isinstance(src.last_error, EventFormatError)


@pytest.mark.parametrize("fmt,data,field", [
    ("aestream", b"\x01\x02\x03", "length"),
    ("aestream", np.array([0x80000001, 0x00000001], "<u4").tobytes(), "word"),
    ("t32_x16_y15_on1", b"\x00" * 9, "length"),
])
def test_decode_errors_name_field(fmt, data, field):
    with pytest.raises(EventFormatError) as ei:
        decode_datagram(data, fmt, 0, Unwrap32())
    assert ei.value.field == field


def test_queue_overflow_drops_oldest_datagrams():
    ev = make_events([1], [1], [0], [1])
    with open_source("udp://127.0.0.1:0", queue_size=4) as src:
        send_datagrams(src.port, [aestream_words(ev)] * 20)
        assert wait_for(lambda: src.stats.packets == 20)
        assert src.stats.dropped_packets == 16 and src.stats.dropped == 16
        assert len(collect(src, 4, timeout=1)) == 4


def test_bad_udp_options():
    with pytest.raises(ValueError):
        open_source("udp://127.0.0.1:0?format=evt3")
    with pytest.raises(ValueError):
        open_source("udp://127.0.0.1")
    assert set(FORMATS) == {"aestream", "t64_x16_y16_on8", "t32_x16_y15_on1"}


def test_kernel_drops_are_counted():
    """A tiny receive buffer filled before the thread starts: the kernel drops datagrams,
    and SO_RXQ_OVFL tells us how many."""
    ev = make_events(np.arange(128) % 100, np.arange(128) % 50, np.zeros(128), np.ones(128))
    src = open_source("udp://127.0.0.1:0", rcvbuf=4096, start=False)
    try:
        if not src._ovfl:
            pytest.skip("SO_RXQ_OVFL is not supported here")
        send_datagrams(src.port, [aestream_words(ev)] * 100)
        src.start()
        # the kernel reports drops on the next datagram it queues: send one after the rest
        st = src.stats
        for probes in range(1, 51):
            send_datagrams(src.port, [aestream_words(ev)])
            if wait_for(lambda: st.packets + st.kernel_dropped == 100 + probes, timeout=0.2):
                break
        assert st.packets + st.kernel_dropped == 100 + probes, st
        assert st.kernel_dropped > 0
        assert len(collect(src, 128 * src.stats.packets, timeout=2)) == 128 * src.stats.packets
    finally:
        src.close()


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.binary(max_size=300))
def test_random_datagrams_decode_or_raise(fmt, data):
    try:
        out = decode_datagram(data, fmt, 0, Unwrap32(), (640, 480))
    except EventFormatError:
        return
    assert len(out) * FORMATS[fmt] == len(data) or fmt == "aestream"
    assert (out["x"] < 640).all() and (out["p"] <= 1).all()


class _CappedSocket:
    """A socket as an unprivileged process sees it: SO_RCVBUFFORCE refused, SO_RCVBUF
    capped at ``cap`` and doubled (Linux's rule)."""

    def __init__(self, cap):
        self.cap, self.value = cap, 212992

    def setsockopt(self, level, opt, value):
        from eventpipe.sources.udp import SO_RCVBUFFORCE
        if opt == SO_RCVBUFFORCE:
            raise PermissionError(1, "Operation not permitted")
        self.value = 2 * min(value, self.cap)

    def getsockopt(self, level, opt):
        return self.value


def test_receive_buffer_request_and_its_cap():
    from eventpipe.sources.udp import raise_rcvbuf

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        granted, capped = raise_rcvbuf(s, 1 << 20)
        assert capped == (granted < 1 << 20)
        assert granted == s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert raise_rcvbuf(_CappedSocket(4 << 20), 32 << 20) == (8 << 20, True)
    assert raise_rcvbuf(_CappedSocket(4 << 20), 2 << 20) == (4 << 20, False)


def test_kernel_drop_advice_names_the_cap_and_the_fix():
    src = open_source("udp://127.0.0.1:0", start=False)
    try:
        assert src.drop_advice() == []
        src.stats.kernel_dropped = 7
        src.rcvbuf_capped = True
        text = " ".join(src.drop_advice())
        assert "7 datagrams dropped by the kernel" in text and "net.core.rmem_max" in text
        assert f"sysctl -w net.core.rmem_max={src.rcvbuf_requested}" in text
        src.rcvbuf_capped = False
        assert "fell behind" in " ".join(src.drop_advice())
    finally:
        src.close()
