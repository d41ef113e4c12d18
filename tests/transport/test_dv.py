"""dv:// source against a real dv-processing NetworkWriter (and its NetworkReader).

The vendor server runs in a child process (see ``dv_server.py`` for why).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.sources import open_source
from eventpipe.sources.dv import decode_event_packet, parse_greeting
from tests.conftest import EVENTS_DIR, expected_events
from tests.transport.helpers import collect, free_tcp_port, peer_module, wait_for

SERVER = Path(__file__).with_name("dv_server.py")
NPZ = EVENTS_DIR / "expected" / "sample.aedat4.npz"


class DvServer:
    """The child process; ``wait_line`` reads its stdout with a deadline."""

    def __init__(self, port, compression, start, stop, per_packet=1500, clients=1,
                 vendor_out=None):
        peer_module("dv_processing")
        expected_events("sample.aedat4")  # skips when the data is missing
        args = [sys.executable, str(SERVER), str(port), compression, str(NPZ), str(start),
                str(stop), str(per_packet), str(clients)]
        if vendor_out:
            args.append(str(vendor_out))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def wait_line(self, want: str, timeout: float = 20.0) -> None:
        box: list = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        line = box[0].strip() if box else "<nothing>"
        assert line == want, f"dv server said {line!r}, expected {want!r}"

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.mark.parametrize("compression", ["LZ4", "NONE", "ZSTD"])
def test_network_writer_to_us_and_vendor_reader(compression, tmp_path):
    n = 6000
    ev = expected_events("sample.aedat4")[:n]
    port = free_tcp_port()
    vendor_out = tmp_path / "vendor.npy"
    srv = DvServer(port, compression, 0, n, clients=1, vendor_out=vendor_out)
    try:
        srv.wait_line("listening")
        with open_source(f"dv://127.0.0.1:{port}") as src:
            assert src.wait_connected(10)
            assert src.sensor_size == (320, 240) and src.stream_id == 0
            got = collect(src, n)
            srv.wait_line("sent")
            np.testing.assert_array_equal(got, ev)
            assert src.stats.malformed == 0 and src.stats.packets == 4
            assert src.compression == {"NONE": 0, "LZ4": 1, "ZSTD": 3}[compression]
    finally:
        srv.stop()
    vendor = np.load(vendor_out)
    assert len(vendor) == n
    for ours, theirs in (("t", "timestamp"), ("x", "x"), ("y", "y"), ("p", "polarity")):
        np.testing.assert_array_equal(got[ours], vendor[theirs].astype(got[ours].dtype))


def test_server_goes_away_and_comes_back():
    ev = expected_events("sample.aedat4")[:2000]
    port = free_tcp_port()
    first = DvServer(port, "LZ4", 0, 1000, per_packet=500)
    try:
        first.wait_line("listening")
        with open_source(f"dv://127.0.0.1:{port}", retry_interval_s=0.05) as src:
            a = collect(src, 1000)
            first.wait_line("sent")
            first.stop()  # the server process goes away
            second = DvServer(port, "LZ4", 1000, 2000, per_packet=500)
            try:
                second.wait_line("listening")
                b = collect(src, 1000)
                second.wait_line("sent")
            finally:
                second.stop()
            np.testing.assert_array_equal(np.concatenate([a, b]), ev)
            assert src.stats.reconnects == 1 and src.connections == 2
    finally:
        first.stop()


def test_refused_without_reconnect_fails():
    port = free_tcp_port()
    with open_source(f"dv://127.0.0.1:{port}", reconnect=False) as src:
        with pytest.raises(ConnectionError):
            src.read(5)
        assert src.state == "failed"


def test_never_connected_says_so():
    """A refused server was silent: the run or recording ended with 0 events and no reason."""
    port = free_tcp_port()
    with open_source(f"dv://127.0.0.1:{port}", retry_interval_s=0.05) as src:
        assert wait_for(lambda: src.last_error is not None, timeout=10)
        advice = src.drop_advice()
    assert len(advice) == 1 and src.connections == 0
    assert advice[0].startswith(f"dv://127.0.0.1:{port}: never connected (retried every 0.05 s; "
                                "last error: ") and "refused" in advice[0], advice


def fake_server(payload: bytes, hold: threading.Event | None = None):
    """Serve ``payload`` to one client, then close (after ``hold`` is set, if given)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(payload)
            if hold is not None:
                hold.wait(20)
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], t


def test_foreign_greeting_is_counted_not_fatal():
    port, t = fake_server(struct.pack("<I", 40) + b"HTTP/1.1 200 OK\r\n".ljust(40, b"\0"))
    with open_source(f"dv://127.0.0.1:{port}", reconnect=False) as src:
        assert src.read(5) is None
        assert src.state == "finished" and src.stats.malformed == 1
        assert isinstance(src.last_error, EventFormatError)
        assert src.drop_advice() == [f"1 malformed greetings or packets dropped; last: "
                                     f"{src.last_error}"]
    t.join(5)


def test_decoders_reject_garbage():
    with pytest.raises(EventFormatError):
        decode_event_packet(b"\x00" * 32)
    with pytest.raises(EventFormatError):
        parse_greeting(b"\x00" * 16)
    with pytest.raises(ValueError):
        open_source("dv://127.0.0.1:0")


# an uncompressed EVTS packet as dv-processing 2.0.4's NetworkWriter sent it (5 events)
EVTS_PACKET = bytes.fromhex(
    "6c00000010000000455654530000060008000400060000000400000005000000e803000000000000"
    "0000010000000000e9030000000000000100020001000000ea030000000000000200030000000000"
    "eb030000000000000300040001000000ec030000000000000400050000000000")


def test_recorded_packet_and_its_mutations():
    ev = decode_event_packet(EVTS_PACKET, (346, 260))
    assert ev["t"].tolist() == [1000, 1001, 1002, 1003, 1004]
    assert ev["x"].tolist() == [0, 1, 2, 3, 4] and ev["y"].tolist() == [1, 2, 3, 4, 5]
    assert ev["p"].tolist() == [0, 1, 0, 1, 0]
    rng = np.random.default_rng(0)
    for _ in range(3000):
        b = bytearray(EVTS_PACKET)
        for _ in range(int(rng.integers(1, 4))):
            k = rng.random()
            if k < 0.5:
                b[int(rng.integers(len(b)))] = int(rng.integers(256))
            elif k < 0.8:
                b = b[:int(rng.integers(len(b) + 1))]
            else:
                b += bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
            if not b:
                break
        try:
            out = decode_event_packet(bytes(b), (346, 260))
        except EventFormatError:
            continue
        assert (out["x"] < 346).all() and (out["y"] < 260).all() and (out["p"] <= 1).all()


# -- compression bombs ------------------------------------------------------------------

def _ioheader(compression: int, streams=((0, 346, 260),)) -> bytes:
    """A minimal IOHeader FlatBuffer (root offset, "IOHE", vtable, table, infoNode string)
    offering the EVTS ``streams`` ``(id, sizeX, sizeY)`` (one stream 0 of 346x260 unless
    told), built by hand from the schema."""
    nodes = b"".join(
        b'<node name="%d" path="/%d/"><attr key="typeIdentifier" type="string">EVTS</attr>'
        b'<node name="info" path="/%d/info/"><attr key="sizeX" type="int">%d</attr>'
        b'<attr key="sizeY" type="int">%d</attr></node></node>' % (i, i, i, w, h)
        for i, w, h in streams)
    xml = (b'<dv version="2.0"><node name="outInfo" path="/mainloop/output/outInfo/">'
           + nodes + b'</node></dv>')
    vtable = struct.pack("<HHHHH", 10, 12, 4, 0, 8)            # fields 0 and 2
    buf = struct.pack("<I", 20) + b"IOHE" + vtable + b"\0\0"   # table at 20
    buf += struct.pack("<iiI", 20 - 8, compression, 4)         # soffset, compression, ->str
    buf += struct.pack("<I", len(xml)) + xml + b"\0"
    return buf


def _bomb(kind: str, size: int) -> bytes:
    """``size`` zero bytes compressed in 1 MiB steps (never all in memory)."""
    zero = bytes(1 << 20)
    if kind == "zstd":
        import zstandard
        c = zstandard.ZstdCompressor(level=3).compressobj()
        return b"".join([c.compress(zero) for _ in range(size >> 20)] + [c.flush()])
    import lz4.frame
    c = lz4.frame.LZ4FrameCompressor()
    return c.begin() + b"".join(c.compress(zero) for _ in range(size >> 20)) + c.flush()


@pytest.mark.parametrize("kind", ["zstd", "lz4"])
def test_decompression_stops_at_the_packet_limit(kind):
    import tracemalloc

    from eventpipe.sources.dv import decompress

    bomb = _bomb(kind, 256 << 20)
    assert len(bomb) < (2 << 20)  # small on the wire (lz4 tops out near 255:1)
    tracemalloc.start()
    with pytest.raises(EventFormatError, match="inflates past the 4,194,304-byte packet limit"):
        decompress(1 if kind == "lz4" else 3, bomb, max_size=4 << 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 << 20  # a few times the limit, not 256 MiB
    ok = _bomb(kind, 2 << 20)
    assert decompress(1 if kind == "lz4" else 3, ok, max_size=4 << 20) == bytes(2 << 20)


def test_zstd_bomb_from_a_server_is_counted_and_skipped():
    """The trial run's packet (zstd that inflates to 1 GiB; here 256 MiB, past the 64 MiB
    limit all the same), then a good packet."""
    import zstandard

    from eventpipe.sources.dv import MAX_PACKET

    bomb = _bomb("zstd", 256 << 20)
    good = zstandard.ZstdCompressor().compress(EVTS_PACKET)
    hdr = _ioheader(3)
    payload = struct.pack("<I", len(hdr)) + hdr
    for body in (bomb, good):
        payload += struct.pack("<ii", 0, len(body)) + body
    hold = threading.Event()  # the connection stays up: last_error is the bomb's
    port, t = fake_server(payload, hold)
    try:
        with open_source(f"dv://127.0.0.1:{port}", reconnect=False) as src:
            got = collect(src, 5, timeout=20)
            assert got["t"].tolist() == [1000, 1001, 1002, 1003, 1004]
            assert src.stats.malformed == 1 and src.stats.packets == 1
            assert f"{MAX_PACKET:,}-byte packet limit" in str(src.last_error)
    finally:
        hold.set()
    t.join(5)


@pytest.mark.parametrize("option,want", [(None, (2, (64, 48))), (5, (5, (320, 240)))])
def test_the_lowest_evts_stream_or_the_stream_id_option(option, want):
    """protocol.md: the sensor size "comes from the chosen EVTS stream's `sizeX` and `sizeY`.
    The source uses the lowest EVTS id, or the `stream_id=` option"."""
    greeting = _ioheader(0, streams=((5, 320, 240), (2, 64, 48)))
    hold = threading.Event()
    port, t = fake_server(struct.pack("<I", len(greeting)) + greeting, hold)
    try:
        with open_source(f"dv://127.0.0.1:{port}", reconnect=False, stream_id=option) as src:
            assert src.wait_connected(5)
            assert (src.stream_id, src.sensor_size) == want
    finally:
        hold.set()
        t.join(5)


@pytest.mark.parametrize("size", [0, -5, (64 << 20) + 1])
def test_a_packet_size_out_of_range_ends_the_connection(size):
    """protocol.md: "a packet size out of range ... ends the connection" (counted in
    `malformed`, never allocated): with `reconnect=False` the source then finishes."""
    greeting = _ioheader(0)
    payload = struct.pack("<I", len(greeting)) + greeting + struct.pack("<ii", 0, size)
    port, t = fake_server(payload + bytes(64))
    with open_source(f"dv://127.0.0.1:{port}", reconnect=False) as src:
        assert src.read(5) is None
        assert src.state == "finished" and src.stats.malformed == 1
        assert "packet size" in str(src.last_error) and str(size) in str(src.last_error)
    t.join(5)


@pytest.mark.parametrize("cut", [0, 50, 111])
def test_a_packet_cut_by_the_server_closing_is_counted(cut):
    """A server that closes in the middle of a packet: the events before it are delivered,
    the cut packet is counted in ``malformed`` and said (before: lost without a word, the
    source ending as if the stream had simply ended)."""
    greeting = _ioheader(0)
    whole = struct.pack("<ii", 0, len(EVTS_PACKET)) + EVTS_PACKET
    payload = struct.pack("<I", len(greeting)) + greeting + whole + whole[:8 + cut]
    port, t = fake_server(payload)
    with open_source(f"dv://127.0.0.1:{port}", reconnect=False) as src:
        got = collect(src, 5, timeout=10)
        assert src.read(5) is None and src.state == "finished"
        assert got["t"].tolist() == [1000, 1001, 1002, 1003, 1004]
        assert src.stats.packets == 1 and src.stats.malformed == 1
        want = f"server closed the connection {cut} bytes into a {len(EVTS_PACKET)}-byte packet"
        assert str(src.last_error) == want
        assert src.drop_advice() == [f"1 malformed greetings or packets dropped; last: {want}"]
    t.join(5)


def test_a_server_closing_between_packets_is_no_loss():
    greeting = _ioheader(0)
    payload = (struct.pack("<I", len(greeting)) + greeting
               + struct.pack("<ii", 0, len(EVTS_PACKET)) + EVTS_PACKET)
    port, t = fake_server(payload)
    with open_source(f"dv://127.0.0.1:{port}", reconnect=False) as src:
        assert len(collect(src, 5, timeout=10)) == 5
        assert src.read(5) is None and src.state == "finished"
        assert src.stats.malformed == 0 and src.drop_advice() == []
    t.join(5)
