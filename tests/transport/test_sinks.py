"""Sinks: JSON lines, console, callback, and the PUB sink -> listen round trip."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import zmq

from eventpipe.labels import LabelDecoder
from eventpipe.sinks import (CallbackSink, ConsoleSink, JsonLinesSink, ZmqPubSink, format_line,
                             listen)

MSG = {"stream": 1, "seq": 4, "t_us": 1_500_000, "label": "wave", "score": 0.9,
       "topk": [["wave", 0.9], ["clap", 0.1]], "latency_ms": 2.5, "truth": "wave"}


def test_json_lines_sink(tmp_path):
    path = tmp_path / "labels.jsonl"
    with JsonLinesSink(path) as s:
        s.write(MSG)
        s.write({**MSG, "score": np.float32(0.5), "seq": np.int64(5)})
    lines = path.read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [4, 5]
    assert json.loads(lines[0]) == MSG


def test_console_and_callback_sinks():
    buf = io.StringIO()
    with ConsoleSink(buf) as s:
        s.write(MSG)
    assert buf.getvalue() == format_line(MSG) + "\n"
    assert "[stream 1] #4 t=1.500000s wave 0.900" in buf.getvalue()
    got = []
    with CallbackSink(got.append) as s:
        s.write_many([MSG, MSG])
    assert got == [MSG, MSG] and s.closed


def test_pub_sink_listen_round_trip():
    dec = LabelDecoder(["wave", "clap"], ema=0.0)
    msgs = dec.step(np.array([[2.0, 0.0], [0.0, 2.0]]), streams=[0, 1], seq=7)
    stats: dict = {}
    with ZmqPubSink("tcp://127.0.0.1:0") as sink:
        out: list = []
        t = threading.Thread(target=lambda: out.extend(
            listen(sink.endpoint, n=3, timeout=5, stats=stats)), name="listener")
        t.start()
        assert sink.wait_subscribers(1, timeout=5)
        sink.write_many(msgs)
        sink.write({**msgs[0], "seq": 8})
        t.join(10)
        assert not t.is_alive()
    assert [(m["stream"], m["label"], m["seq"]) for m in out] == \
        [(0, "wave", 7), (1, "clap", 7), (0, "wave", 8)]
    assert stats == {"received": 3, "malformed": 0}


def test_listen_topics_and_idle_timeout():
    with ZmqPubSink("tcp://127.0.0.1:0") as sink:
        out: list = []
        t = threading.Thread(target=lambda: out.extend(
            listen(sink.endpoint, timeout=0.5, topics=["2"])), name="listener")
        t.start()
        assert sink.wait_subscribers(1, timeout=5)
        for s in (1, 2, 3, 2):
            sink.write({**MSG, "stream": s})
        t.join(10)
        assert not t.is_alive()
    assert [m["stream"] for m in out] == [2, 2]


def test_listen_skips_and_counts_malformed():
    pub = zmq.Context.instance().socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 1000)
    try:
        pub.bind("tcp://127.0.0.1:0")
        ep = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        stats: dict = {}
        out: list = []
        t = threading.Thread(target=lambda: out.extend(listen(ep, n=1, timeout=5, stats=stats)),
                             name="listener")
        t.start()
        assert pub.poll(5000)  # the subscription frame
        pub.recv()
        for frames in ([b"0", b"not json"], [b"0", b"[1, 2]"], [b"0", b"\xff\xfe"],
                       [b"0", json.dumps(MSG).encode()]):
            pub.send_multipart(frames)
        t.join(10)
        assert not t.is_alive()
    finally:
        pub.close()
    assert out == [MSG] and stats == {"received": 1, "malformed": 3}


def _xpub():
    pub = zmq.Context.instance().socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.bind("tcp://127.0.0.1:0")
    return pub, pub.getsockopt(zmq.LAST_ENDPOINT).decode()


def test_listen_survives_deep_and_oversized_messages():
    """A publisher's JSON nested 200,000 deep (RecursionError in json.loads) is malformed, not
    the end of the listener; a message over ``MAX_LABEL_MESSAGE`` is refused by libzmq before
    it is allocated (the connection is dropped and made again) and the next ones arrive."""
    from eventpipe.sinks.zmq_pub import MAX_LABEL_MESSAGE

    pub, ep = _xpub()
    try:
        stats: dict = {}
        out: list = []
        t = threading.Thread(target=lambda: out.extend(listen(ep, n=2, timeout=10, stats=stats)),
                             name="listener")
        t.start()
        assert pub.poll(5000)
        pub.recv()                                # the subscription
        pub.send_multipart([b"0", b"[" * 200_000 + b"]" * 200_000])
        pub.send_multipart([b"0", json.dumps(MSG).encode()])
        pub.send_multipart([b"0", b" " * (MAX_LABEL_MESSAGE + 1)])
        while True:                               # dropped: unsubscribed, then again subscribed
            assert pub.poll(10_000), "the listener did not subscribe again"
            if pub.recv()[:1] == b"\x01":
                break
        pub.send_multipart([b"0", json.dumps({**MSG, "seq": 5}).encode()])
        t.join(20)
        assert not t.is_alive()
    finally:
        pub.close()
    assert [m["seq"] for m in out] == [4, 5]
    assert stats == {"received": 2, "malformed": 1, "dropped_connections": 1}


def test_listen_command_says_how_many_messages_it_skipped():
    from eventpipe.cli import main

    pub, ep = _xpub()
    try:
        out, err = io.StringIO(), io.StringIO()
        res = {}
        t = threading.Thread(target=lambda: res.setdefault("rc", main(
            ["listen", ep, "--count", "1", "--timeout", "10"], out=out, err=err)))
        t.start()
        assert pub.poll(20_000)
        pub.recv()
        for frames in ([b"0", b"not json"], [b"0", b"[" * 200_000], [b"0", b" " * (2 << 20)]):
            pub.send_multipart(frames)
        while True:                               # dropped: unsubscribed, then again subscribed
            assert pub.poll(10_000), "the listener did not subscribe again"
            if pub.recv()[:1] == b"\x01":
                break
        pub.send_multipart([b"0", json.dumps(MSG).encode()])
        t.join(30)
        assert not t.is_alive()
    finally:
        pub.close()
    assert res["rc"] == 0 and out.getvalue() == format_line(MSG) + "\n"
    assert err.getvalue() == (
        f"eventpipe: skipped 2 malformed messages from {ep} (not JSON objects)\n"
        f"eventpipe: the connection to {ep} dropped 1 times and was made again (the publisher "
        "stopped, or sent a message over 1,048,576 bytes, which is refused)\n")
