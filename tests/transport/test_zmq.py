"""zmq+tcp:// source with our sender: exact delivery, damage counted, gaps, restarts."""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from eventpipe.errors import EventFormatError
from eventpipe.events import make_events
from eventpipe.sources import open_source
from eventpipe.sources.sender import Sender, send_events, send_recording
from eventpipe.transport.wire import encode_packet
from tests.conftest import expected_events, sample_path
from tests.transport.helpers import collect, wait_for


def chunks_by_time(ev, chunk_us):
    t = ev["t"]
    edges = np.searchsorted(t, np.arange(t[0], t[-1] + chunk_us, chunk_us), side="left")
    edges = np.unique(np.r_[edges, len(ev)])
    return [ev[a:b] for a, b in zip(edges[:-1], edges[1:]) if b > a]


@pytest.mark.parametrize("name", ["sample_ncars.dat", "sample.aedat4", "evt2_sample.raw"])
def test_real_recording_arrives_exactly(name):
    ev = expected_events(name)
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=100000) as src:
        counts = send_events(chunks_by_time(ev, 10_000), f"tcp://127.0.0.1:{src.port}",
                             stream_id=5, max_events=20000)
        got = collect(src, len(ev), timeout=20)
        assert counts["events"] == len(ev)
        np.testing.assert_array_equal(got, ev)
        st = src.stats
        assert (st.received, st.delivered, st.dropped, st.malformed, st.gaps) == \
            (len(ev), len(ev), 0, 0, 0)
        assert st.packets == counts["packets"]


def test_send_recording_from_file():
    path = sample_path("sample_ncars.dat")
    ev = expected_events("sample_ncars.dat")
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        counts = send_recording(path, f"tcp://127.0.0.1:{src.port}", chunk_us=5000, stream_id=2)
        got = collect(src, len(ev))
        assert counts["events"] == len(ev)
        np.testing.assert_array_equal(got, ev)


def test_paced_sending_takes_event_time():
    ev = make_events(np.zeros(4), np.zeros(4), [0, 100_000, 200_000, 300_000], [1, 0, 1, 0])
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        counts = send_events([ev[i:i + 1] for i in range(4)], f"tcp://127.0.0.1:{src.port}",
                             speed=2.0)
        assert 0.14 <= counts["duration_s"] < 2.0  # 300 ms of events at 2x
        np.testing.assert_array_equal(collect(src, 4), ev)


def test_garbage_truncated_foreign_are_counted_and_dropped():
    ev = make_events([1, 2], [3, 4], [10, 20], [1, 0])
    good = encode_packet(ev, 1, 0, (8, 8))
    with open_source("zmq+tcp://127.0.0.1:0") as src, \
            Sender(f"tcp://127.0.0.1:{src.port}", stream_id=1) as tx:
        tx.send_raw(b"hello world, not a packet")
        tx.send_raw(good[:-3])                         # truncated
        tx.send_raw(b"EVPK" + b"\x09" + good[5:])      # future version
        tx.send_raw(b"#!AER-DAT4.0\r\n" + b"\x00" * 40)  # foreign
        tx.send_raw(b"")
        tx.send_raw(good)
        got = collect(src, 2)
        np.testing.assert_array_equal(got, ev)
        assert wait_for(lambda: src.stats.malformed == 5)
        assert src.stats.packets == 1
        assert isinstance(src.last_error, EventFormatError)
        # the end-of-run advice says so, as dv:// and udp:// do (the zmq source said nothing)
        assert src.drop_advice()[-1] == f"5 malformed messages dropped; last: {src.last_error}"


def test_sequence_gaps_restarts_out_of_order():
    ev = make_events([1], [1], [1], [1])
    with open_source("zmq+tcp://127.0.0.1:0") as src, \
            Sender(f"tcp://127.0.0.1:{src.port}") as tx:
        for sid, seq in [(0, 0), (0, 1), (0, 4), (1, 10), (1, 11), (0, 5), (0, 3),
                         (1, 15), (0, 0), (0, 1)]:
            tx.send_raw(encode_packet(ev, sid, seq))
        collect(src, 10)
        st = src.stats
        assert (st.gaps, st.out_of_order, st.restarts, st.received) == (2 + 3, 1, 1, 10)
        assert src.seq.last == {0: 1, 1: 15} and src.seq.gaps == {0: 2, 1: 3}


def test_per_stream_tables_are_bounded_whatever_ids_arrive(monkeypatch):
    """The source kept sequence numbers, gaps and a sensor size per distinct stream id that
    arrived: a sender cycling through ids grew it without bound.  Past
    ``MAX_TRACKED_STREAMS`` ids the packets are delivered untracked, counted and said."""
    from eventpipe.sources import zmq_source

    monkeypatch.setattr(zmq_source, "MAX_TRACKED_STREAMS", 3)
    ev = make_events([1], [1], [1], [1])
    with open_source("zmq+tcp://127.0.0.1:0") as src, \
            Sender(f"tcp://127.0.0.1:{src.port}") as tx:
        for sid in range(10):
            tx.send_raw(encode_packet(ev, sid, 5, sensor_size=(64, 48)))
        tx.send_raw(encode_packet(ev, 1, 8, sensor_size=(64, 48)))  # a tracked stream: gap 2
        assert len(collect(src, 11)) == 11  # every packet delivered
        assert src.seq.last == {0: 5, 1: 8, 2: 5} and src.seq.gaps == {1: 2}
        assert sorted(src.stream_sizes) == [0, 1, 2] and src.untracked_packets == 7
        assert src.stats.gaps == 2
        assert ("7 packets of stream ids after the first 3: delivered, but their sequence gaps "
                "and sensor sizes were not tracked") in src.drop_advice()


def test_sender_disconnects_and_comes_back():
    ev = make_events(np.arange(10), np.arange(10), np.arange(10), np.arange(10) % 2)
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        ep = f"tcp://127.0.0.1:{src.port}"
        ctx1 = zmq.Context()
        try:
            send_events([ev[:5]], ep, stream_id=3, context=ctx1)
        finally:
            ctx1.term()  # the first sender's process is gone (linger flushed its packets)
        a = collect(src, 5)
        ctx2 = zmq.Context()  # a new process, as far as the source can tell
        try:
            send_events([ev[5:]], ep, stream_id=3, context=ctx2)
        finally:
            ctx2.term()
        b = collect(src, 5)
        np.testing.assert_array_equal(np.concatenate([a, b]), ev)
        assert src.stats.restarts == 1 and src.stats.gaps == 0


def test_live_queue_drops_oldest_and_counts():
    ev = make_events([1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 1, 1])
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=2) as src, \
            Sender(f"tcp://127.0.0.1:{src.port}") as tx:
        for _ in range(10):
            tx.send(ev)
        assert wait_for(lambda: src.stats.packets == 10)
        assert (src.stats.dropped_packets, src.stats.dropped) == (8, 24)
        b1, b2 = src.read(1), src.read(1)
        assert (b1.seq, b2.seq) == (8, 9)  # the newest survive
        assert src.read(0.05) is None


def test_sub_variant_and_connect_mode():
    ev = make_events([1], [2], [3], [0])
    with Sender("tcp://127.0.0.1:0", socket="pub", bind=True, stream_id=4) as tx:
        port = int(tx.endpoint.rsplit(":", 1)[1])
        with open_source(f"zmq+tcp://127.0.0.1:{port}?mode=connect&socket=sub") as src:
            # PUB drops until the subscription has propagated: resend until one arrives
            got = None
            for _ in range(100):
                tx.send(ev)
                got = src.read(0.05)
                if got is not None:
                    break
            assert got is not None and got.stream_id == 4
            np.testing.assert_array_equal(got.events, ev)


def test_sensor_size_learned_from_packets():
    with open_source("zmq+tcp://127.0.0.1:0") as src, \
            Sender(f"tcp://127.0.0.1:{src.port}", sensor_size=(34, 34), stream_id=9) as tx:
        assert src.sensor_size is None
        tx.send(make_events([1], [2], [3], [0]))
        assert src.read(5).stream_id == 9
        assert src.sensor_size == (34, 34) and src.stream_sizes == {9: (34, 34)}


def test_close_joins_thread_and_ends_packets():
    src = open_source("zmq+tcp://127.0.0.1:0")
    assert src.state == "running"
    src.close(timeout=2)
    assert src.state == "closed" and src.done
    assert list(src.packets(timeout=0.1)) == []


def test_bad_options():
    with pytest.raises(ValueError):
        open_source("zmq+tcp://127.0.0.1:0?mode=sideways")
    with pytest.raises(ValueError):
        open_source("zmq+tcp://127.0.0.1:0", socket="router")
    with pytest.raises(ValueError):
        open_source("zmq+tcp://127.0.0.1:0?mode=connect")
    with pytest.raises(ValueError):
        send_events([], "tcp://127.0.0.1:1", speed=0)


def test_a_message_over_the_size_bound_is_refused_before_it_is_allocated():
    """A peer's message longer than ``max_message_bytes`` never reaches the source (libzmq's
    ZMQ_MAXMSGSIZE closes that connection; the PUSH sender reconnects and later packets
    arrive).  Before, any size was taken: what the socket held was bounded only by what
    peers sent (rcvhwm messages of any size)."""
    small = make_events([1, 2], [3, 4], [10, 20], [1, 0])
    rng = np.random.default_rng(3)
    big = make_events(rng.integers(0, 64, 2000), rng.integers(0, 64, 2000),
                      np.arange(2000), rng.integers(0, 2, 2000))
    big_msg = encode_packet(big, stream_id=1, seq=0)
    assert len(big_msg) > 8192 > len(encode_packet(small, stream_id=2, seq=0))
    with open_source("zmq+tcp://127.0.0.1:0", max_message_bytes=8192) as src:
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(src.endpoint)
        push.send(big_msg)
        got, seq = [], [0]

        def arrived():
            # small packets until one arrives: the ones queued on the dropped connection are
            # lost with it, the next go over the reconnected one
            try:
                push.send(encode_packet(small, stream_id=2, seq=seq[0]), zmq.NOBLOCK)
                seq[0] += 1
            except zmq.Again:  # no connection at this instant
                pass
            b = src.read(timeout=0.05)
            if b is not None:
                got.append(b)
            return got

        assert wait_for(arrived, timeout=20)
        while (b := src.read(timeout=0.3)) is not None:
            got.append(b)
        assert {b.stream_id for b in got} == {2}  # the big one never came
        for b in got:
            np.testing.assert_array_equal(b.events, small)
        assert src.stats.received == len(small) * len(got)
        push.close(0)
        ctx.term()
