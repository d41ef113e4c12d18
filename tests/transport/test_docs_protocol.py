"""docs/protocol.md, the claims no other test held: the sender's packet split, the wide-delta
packet size, the LabelDecoder's defaults, JsonLinesSink appending, the UDP batch seq."""

from __future__ import annotations

import json
import socket
import struct

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.events import make_events
from eventpipe.labels import LabelDecoder
from eventpipe.sinks import JsonLinesSink
from eventpipe.sources import open_source
from eventpipe.sources.sender import send_recording
from eventpipe.transport.wire import HEADER_SIZE, decode_packet, encode_packet
from tests.transport.helpers import collect


def test_send_recording_sends_one_packet_per_chunk_us_split_at_65536_events(tmp_path):
    """"one wire packet per `chunk_us` of event time, split at `max_events` (65,536)"."""
    rng = np.random.default_rng(5)
    n_dense = 70_000  # all in the first 10 ms chunk: 65,536 + 4,464
    t = np.r_[np.sort(rng.integers(0, 10_000, n_dense)), 15_000, 25_000, 35_000]
    n = len(t)
    ev = make_events(rng.integers(0, 64, n), rng.integers(0, 48, n), t, rng.integers(0, 2, n))
    path = tmp_path / "dense.npy"
    np.save(path, ev)
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=1000) as src:
        counts = send_recording(path, f"tcp://127.0.0.1:{src.port}", sensor_size=(64, 48))
        got = collect(src, n, timeout=20)
        assert counts["events"] == n and counts["packets"] == 2 + 3
        np.testing.assert_array_equal(got, ev)
        assert src.stats.packets == 5 and src.stats.gaps == 0
        assert set(counts) >= {"packets", "events", "bytes", "duration_s"}


def test_a_wide_packet_is_36_plus_13n_plus_crc_bytes():
    """"So a packet is 36 + 9n (+4) bytes, or 36 + 13n (+4) with wide deltas"; the encoder
    switches by itself at a span of 2^32 us, not before."""
    n = 3
    narrow = make_events([0] * n, [0] * n, [0, 1, (1 << 32) - 1], [1, 0, 1])
    wide = make_events([0] * n, [0] * n, [0, 1, 1 << 32], [1, 0, 1])
    assert HEADER_SIZE == 36
    assert len(encode_packet(narrow)) == 36 + 9 * n + 4
    assert len(encode_packet(wide)) == 36 + 13 * n + 4
    assert len(encode_packet(wide, crc=False)) == 36 + 13 * n
    np.testing.assert_array_equal(decode_packet(encode_packet(wide)).events, wide)
    # t_base is the smallest t, not the first ("Events need not be sorted by time")
    unsorted = make_events([1, 2], [1, 2], [500, 200], [1, 0])
    buf = encode_packet(unsorted)
    assert struct.unpack_from("<q", buf, 24)[0] == 200
    np.testing.assert_array_equal(decode_packet(buf).events, unsorted)


def test_label_decoder_defaults_are_the_documented_ones():
    """`LabelDecoder(class_names, ema=0.6, topk=5, threshold=0.0, hysteresis=0.0, emit_every=0,
    emit_on_change=True)`; s = p on the first step, then ema*s + (1 - ema)*p."""
    names = [f"c{i}" for i in range(7)]
    dec = LabelDecoder(names)
    p1 = np.array([0.40, 0.20, 0.10, 0.10, 0.10, 0.05, 0.05])
    p2 = np.array([0.05, 0.60, 0.10, 0.10, 0.05, 0.05, 0.05])
    (m,) = dec.step(np.log(p1)[None], seq=0, t_us=10)
    assert m["label"] == "c0" and m["score"] == pytest.approx(0.40)
    assert len(m["topk"]) == 5  # topk=5
    # step 2: s = 0.6*p1 + 0.4*p2 = [0.26, 0.36, ...]: c1 leads, no hysteresis, so it switches
    (m,) = dec.step(np.log(p2)[None], seq=1, t_us=20)
    assert m["label"] == "c1" and m["score"] == pytest.approx(0.6 * 0.20 + 0.4 * 0.60)
    assert m["topk"][1] == ["c0", pytest.approx(0.6 * 0.40 + 0.4 * 0.05)]
    # emit_every=0 and emit_on_change: an unchanged label says nothing
    assert dec.step(np.log(p2)[None], seq=2, t_us=30) == []
    assert "truth" not in m  # only when given


def test_jsonl_sink_appends(tmp_path):
    """"`JsonLinesSink(path | "-")` appends compact JSON lines (numpy scalars are converted)"."""
    path = tmp_path / "labels.jsonl"
    path.write_text('{"old": 1}\n')
    with JsonLinesSink(str(path)) as sink:
        sink.write({"stream": np.int64(3), "score": np.float32(0.5), "label": "a"})
    lines = path.read_text().splitlines()
    assert lines[0] == '{"old": 1}'
    assert json.loads(lines[1]) == {"stream": 3, "score": 0.5, "label": "a"}
    assert " " not in lines[1]  # compact


def test_udp_batch_seq_counts_reads_and_stream_id_is_the_option():
    """"A UDP `Batch` has `stream_id` set to the `stream_id=` option (default 0) and `seq` set
    to the number of the `read()` call"."""
    rec = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "u1")])
    with open_source("udp://127.0.0.1:0?format=t64_x16_y16_on8", sensor_size=(16, 16),
                     stream_id=9) as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            batches = []
            for k in range(3):
                words = np.zeros(2, rec)
                words["t"] = [10 * k, 10 * k + 1]
                words["x"] = [k, k + 1]
                tx.sendto(words.tobytes(), ("127.0.0.1", src.port))
                while True:  # each datagram read on its own: wait for it
                    b = src.read(5.0)
                    assert b is not None, "datagram never arrived"
                    if len(b.events):
                        batches.append(b)
                        break
        finally:
            tx.close()
        assert [b.stream_id for b in batches] == [9, 9, 9]
        assert [b.seq for b in batches] == [0, 1, 2]
        assert [int(b.events["t"][0]) for b in batches] == [0, 10, 20]


def test_documented_socket_defaults():
    """dv:// reconnects every 0.2 s by default and takes packets of at most 64 MiB (4 Mi events
    of 16 bytes); udp:// asks for a 32 MiB receive buffer; `ZmqPubSink()` binds
    tcp://127.0.0.1:5556."""
    import inspect

    from eventpipe.sinks.zmq_pub import ZmqPubSink
    from eventpipe.sources.dv import MAX_PACKET, DvSource
    from eventpipe.sources.udp import DEFAULT_RCVBUF

    dv = inspect.signature(DvSource).parameters
    assert dv["reconnect"].default is True and dv["retry_interval_s"].default == 0.2
    assert MAX_PACKET == 64 << 20 == (4 << 20) * 16
    assert DEFAULT_RCVBUF == 32 << 20
    assert inspect.signature(ZmqPubSink).parameters["endpoint"].default == "tcp://127.0.0.1:5556"


def test_source_lifecycle_and_close_that_cannot_join():
    """`state` goes starting -> running -> finished -> closed; `read` returns None once the
    source has ended and its queue is empty; a source is a context manager; `close(timeout)`
    raises `RuntimeError` when the receive thread has not stopped within `timeout`."""
    import threading

    from eventpipe.sources.generated import GeneratorSource

    ev = make_events([1, 2], [1, 2], [10, 20], [1, 0])
    src = GeneratorSource([(ev, "a")], sensor_size=(4, 4), live=False)
    assert src.state == "starting"
    with src:
        b = src.read(5.0)
        assert b is not None and len(b.events) == 2 and b.truth == "a"
        assert src.read(5.0) is None and src.done and src.state == "finished"
    assert src.state == "closed"

    release, entered = threading.Event(), threading.Event()

    def stuck():  # a generator busy for longer than close() waits (the thread cannot see _stop)
        entered.set()
        release.wait(30)
        yield ev, None

    busy = GeneratorSource(stuck(), sensor_size=(4, 4), live=False).start()
    assert entered.wait(10)
    try:
        with pytest.raises(RuntimeError, match="GeneratorSource: receive thread did not stop "
                                               "within 0.2 s"):
            busy.close(timeout=0.2)
    finally:
        release.set()
        busy.close(timeout=10)
    assert busy.state == "closed"


@pytest.mark.parametrize("where,value,field", [
    (14, "<H", "width"),   # height 0 with width 10: "only one of W, H is 0"
    (24, "<q", "dt"),      # t_base near int64's top: a wide delta overflows int64
])
def test_decode_packet_names_width_and_dt(where, value, field):
    """protocol.md's error table: `width` when only one of W, H is 0, `dt` for a wide delta
    that overflows int64 (the rows the wire tests' parametrize does not hold)."""
    ev = make_events([1, 2], [3, 4], [0, 1 << 33], [1, 0])  # wide deltas
    buf = bytearray(encode_packet(ev, 1, 1, (10, 10), crc=False))
    struct.pack_into(value, buf, where, 0 if field == "width" else (1 << 63) - 10)
    with pytest.raises(EventFormatError) as ei:
        decode_packet(bytes(buf))
    assert ei.value.field == field and ei.value.offset is not None


def test_a_topic_frame_before_the_packet_is_allowed():
    """"A multipart message is decoded from its last frame, so a topic frame is allowed"."""
    import zmq

    ev = make_events([1, 2], [3, 4], [10, 20], [1, 0])
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        ctx = zmq.Context.instance()
        push = ctx.socket(zmq.PUSH)
        try:
            push.connect(f"tcp://127.0.0.1:{src.port}")
            push.send_multipart([b"camera-7", encode_packet(ev, 3, 0)])
            np.testing.assert_array_equal(collect(src, 2), ev)
            assert src.stats.malformed == 0
        finally:
            push.close(linger=0)


def test_a_bare_path_with_a_colon_needs_file(tmp_path):
    """"A bare path with a colon in it needs `file:`": without it the part before the colon is
    read as a scheme and the error says how to write it; with it the file opens."""
    path = tmp_path / "a:b.npy"
    np.save(path, make_events([1], [2], [3], [1]))
    with pytest.raises(ValueError, match=r"unknown scheme.*a path with a colon: file:PATH"):
        open_source(str(path))
    with open_source(f"file:{path}") as src:
        np.testing.assert_array_equal(collect(src, 1)["x"], [1])


def test_sender_seq_starts_at_0_and_counts_up_per_stream():
    """The wire table: `seq` "u64, per stream, +1 per packet, starts at 0"; a zmq `Batch`
    carries it."""
    from eventpipe.sources.sender import Sender

    ev = make_events([1], [2], [3], [1])
    with open_source("zmq+tcp://127.0.0.1:0") as src, \
            Sender(f"tcp://127.0.0.1:{src.port}") as tx:
        for sid in (7, 7, 9, 7, 9):
            tx.stream_id = sid
            tx.send(ev)
        got = [src.read(5) for _ in range(5)]
        assert src.stats.gaps == 0  # numbered globally, streams 7 and 9 showed false gaps
    assert [(b.stream_id, b.seq) for b in got] == [(7, 0), (7, 1), (9, 0), (7, 2), (9, 1)]


def test_aestream_timestamps_are_unwrapped_across_2_32():
    """aestream's `include_timestamp` mode: "The timestamp is unwrapped across 2^32" (also
    from one datagram to the next)."""
    from eventpipe.sources.udp import Unwrap32, decode_datagram

    def datagram(ts):  # x 3, y 4, ON; bit 31 clear: a u32 timestamp word follows each event
        word = (3 << 16) | 0x8000 | 4
        return np.array([v for t in ts for v in (word, t)], "<u4").tobytes()

    un = Unwrap32()
    a = decode_datagram(datagram([(1 << 32) - 10, 5]), "aestream", 0, un)
    b = decode_datagram(datagram([6]), "aestream", 0, un)
    assert a["t"].tolist() == [(1 << 32) - 10, (1 << 32) + 5] and b["t"].tolist() == [(1 << 32) + 6]
    assert a["x"].tolist() == [3, 3] and a["y"].tolist() == [4, 4] and a["p"].tolist() == [1, 1]


def test_zmq_source_size_bound_defaults_to_64_mib():
    """"a message longer than `max_message_bytes` (64 MiB by default ...)" is refused by libzmq
    (`ZMQ_MAXMSGSIZE` on the socket); what the socket holds is at most `rcvhwm` of them."""
    import zmq

    with open_source("zmq+tcp://127.0.0.1:0") as src:
        assert src._sock.getsockopt(zmq.MAXMSGSIZE) == 64 << 20
        assert src._sock.getsockopt(zmq.RCVHWM) == 1000


def test_dv_and_video_sources_say_whether_they_are_live(tmp_path):
    """"`live` is True for sources whose sender does not wait for us (zmq, udp, dv, dvcam,
    camera) and False for files and generators": the two the dispatch test leaves out."""
    from tests.emulator.test_sources import bar_frames, write_video

    dv = open_source("dv://127.0.0.1:9", start=False)
    video = open_source(f"video:{write_video(tmp_path, bar_frames())}", start=False)
    try:
        assert (dv.live, dv.policy) == (True, "drop_oldest")
        assert (video.live, video.policy) == (False, "block")
    finally:
        dv.close()
        video.close()
