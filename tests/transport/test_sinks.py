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
