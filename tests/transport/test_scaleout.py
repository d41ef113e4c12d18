"""Scale-out: the broker's fan-out (per-stream affinity) and label proxy, in-process and
with two ``eventpipe run`` worker processes on loopback."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import zmq

from eventpipe.sinks import ZmqPubSink, listen
from eventpipe.sources.sender import Sender, send_events
from eventpipe.transport.broker import Broker, slot_of, worker_command
from eventpipe.transport.scaleout import run_broker
from eventpipe.transport.wire import decode_packet, encode_packet
from tests.conftest import REPO, expected_events

LOOP = "tcp://127.0.0.1:0"


def broker_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith("eventpipe-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(broker_threads())
    yield
    leaked = [n for n in broker_threads() if n not in before]
    assert not leaked, f"threads still running after the test: {leaked}"


def _events(n, t0=0, step=100):
    from eventpipe.events import make_events
    i = np.arange(n)
    return make_events(i % 64, i % 48, t0 + i * step, i % 2)


def _pull(ctx, ep):
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep.replace("0.0.0.0", "127.0.0.1"))
    return s


def _recv_all(sock, n, timeout=5.0):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000) + 1):
            break
        out.append(sock.recv())
    return out


def test_fanout_keeps_each_stream_on_one_slot_and_counts_drops_and_malformed():
    ctx = zmq.Context()
    try:
        with Broker(LOOP, 3, LOOP, LOOP, hwm=100) as broker:
            assert all(p > 0 for p in broker.fanout_ports) and broker.in_port > 0
            pulls = [_pull(ctx, ep) for ep in broker.fanout_endpoints[:2]]  # slot 2 has no worker
            assert broker._wait(lambda: broker.stats.slot_peers[:2] == [1, 1]
                                and min(broker.stats.slot_handshakes[:2]) >= 1, 5)
            sent = collections.Counter()
            with Sender(broker.sender_endpoint(), sensor_size=(64, 48), context=ctx) as tx:
                for k in range(30):
                    sid = [0, 1, 4, 7, 5][k % 5]  # slots 0, 1, 1, 1, 2
                    tx.stream_id = sid
                    tx.send(_events(10, t0=k * 1000))
                    sent[sid] += 1
                tx.send_raw(b"not a packet")
                tx.send_raw(encode_packet(_events(3), 9)[:20])  # truncated header
            got = [_recv_all(p, n) for p, n in zip(pulls, (6, 18))]
            assert broker._wait(lambda: broker.stats.received == 32, 5)
            st = broker.stats
            by_slot = [collections.Counter(decode_packet(m).stream_id for m in g) for g in got]
            assert by_slot[0] == {0: sent[0]}
            assert by_slot[1] == {1: sent[1], 4: sent[4], 7: sent[7]}
            # per stream, packets arrive in order on their slot
            seqs = [decode_packet(m).seq for m in got[1] if decode_packet(m).stream_id == 4]
            assert seqs == sorted(seqs) and len(seqs) == sent[4]
            assert st.malformed == 2 and st.last_error
            assert st.forwarded[:2] == [6, 18] and st.forwarded[2] == 0
            assert st.dropped == [0, 0, sent[5]]  # slot 2: nobody connected
            assert st.streams == {0: 6, 1: 6, 4: 6, 7: 6, 5: 6}
            for p in pulls:
                p.close()
    finally:
        ctx.term()
    assert [slot_of(s, 3) for s in (0, 1, 4, 7, 5)] == [0, 1, 1, 1, 2]


def test_label_proxy_forwards_tagged_labels_from_connecting_pub_sinks():
    with Broker(LOOP, 2, LOOP, LOOP) as broker:
        sinks = [ZmqPubSink(broker.worker_publish(i)) for i in range(2)]
        try:
            assert [s.worker for s in sinks] == ["0", "1"] and all(s.connected for s in sinks)
            assert broker._wait(lambda: broker.stats.publisher_handshakes == 2, 5)
            assert broker.stats.publishers == 2  # scaleout.md's counters: `publishers`
            got, stop, stats = [], threading.Event(), {}
            t = threading.Thread(target=lambda: got.extend(
                listen(broker.listen_endpoint(), stop=stop, timeout=10, stats=stats)),
                name="listener")
            t.start()
            assert broker.wait_subscribers(1, timeout=5)
            # the proxy's own subscribe-all reached both PUB sinks
            assert all(s.wait_subscribers(1, timeout=5) for s in sinks)
            for k in range(10):
                sinks[k % 2].write({"stream": k % 3, "seq": k, "label": "c0"})
            assert broker.wait_messages(10, timeout=5)
            deadline = time.monotonic() + 5
            while len(got) < 10 and time.monotonic() < deadline:
                t.join(0.05)
            stop.set()
            t.join(5)
            assert not t.is_alive()
        finally:
            for s in sinks:
                s.close()
    assert sorted(m["seq"] for m in got) == list(range(10))
    assert all(m["worker"] == str(m["seq"] % 2) for m in got)
    assert broker.stats.by_topic == {"0": 4, "1": 3, "2": 3}
    assert stats["received"] == 10


def test_publish_endpoint_options_are_checked():
    with pytest.raises(ValueError, match="unknown publish option"):
        ZmqPubSink("tcp://127.0.0.1:0?bogus=1")
    with pytest.raises(ValueError, match="mode"):
        ZmqPubSink("tcp://127.0.0.1:0?mode=sideways")
    with pytest.raises(ValueError, match="needs a port"):
        ZmqPubSink("tcp://127.0.0.1:0?mode=connect")
    with ZmqPubSink("tcp://127.0.0.1:0") as s:  # default: binds, untagged
        assert not s.connected and s.worker is None and s.port > 0


def test_run_broker_stops_on_its_event():
    import io

    stop, err, out = threading.Event(), io.StringIO(), {}
    t = threading.Thread(target=lambda: out.update(run_broker(LOOP, 2, LOOP, LOOP, stop=stop,
                                                              err=err)), name="runner")
    t.start()
    deadline = time.monotonic() + 5
    while "worker 1:" not in err.getvalue() and time.monotonic() < deadline:
        t.join(0.02)
    stop.set()
    t.join(5)
    assert not t.is_alive()
    assert "?mode=connect&worker=1" in err.getvalue() and out["n_workers"] == 2


def test_broker_starts_no_workers():
    """docs/scaleout.md: the broker prints the worker commands; it starts no process."""
    import io

    def children() -> set:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
            return set(f.read().split())

    before = children()
    err = io.StringIO()
    out = run_broker(LOOP, 3, LOOP, LOOP, duration_s=0.3, err=err)
    assert children() == before
    assert out["slot_peers"] == [0, 0, 0]
    text = err.getvalue()
    assert [f"worker {i}: eventpipe run --source" in text for i in range(3)] == [True] * 3


def test_worker_command_is_a_plain_eventpipe_run():
    argv = worker_command("zmq+tcp://h:1?mode=connect", "tcp://h:2?mode=connect&worker=0",
                          model="m", sets=["a.b=1"], extra=["--duration", "3"], python="py")
    assert argv == ["py", "-m", "eventpipe", "run", "--source", "zmq+tcp://h:1?mode=connect",
                    "--publish", "tcp://h:2?mode=connect&worker=0", "--model", "m",
                    "--set", "a.b=1", "--quiet", "--duration", "3"]


# -- two worker processes on loopback --------------------------------------------------------
WINDOW_US = 20_000
STREAMS = {  # stream id -> recording; 10, 20 -> slot 0; 11, 21 -> slot 1
    10: "sample.aedat4",
    11: "dvs.es",
    20: "sample_nmnist.bin",
    21: "evt2_sample.raw",
}


def _sensor(ev):
    return int(ev["x"].max()) + 1, int(ev["y"].max()) + 1


def _collect(endpoint, out: list, stop: threading.Event, stats: dict) -> threading.Thread:
    def loop():
        for m in listen(endpoint, stop=stop, stats=stats):
            out.append(m)
    t = threading.Thread(target=loop, name="listener")
    t.start()
    return t


def _is_metrics(m) -> bool:
    return m.get("type") == "metrics"


def _tail(path, n=2000):
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def test_two_worker_processes_keep_streams_and_publish_through_one_endpoint(tmp_path):
    recs = {sid: expected_events(name) for sid, name in STREAMS.items()}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    sets = ["model.num_classes=4", "input.size=[32,32]", "model.threads=1",
            "decoder.emit_every=1", f"window.window_us={WINDOW_US}"]
    procs, logs = [], []
    with Broker(LOOP, 2, LOOP, LOOP) as broker:
        try:
            for i in range(2):
                log = tmp_path / f"worker{i}.log"
                argv = broker.worker_command(i, model="meta_spikeformer_tiny", sets=sets,
                                             extra=["--metrics-json", str(tmp_path / f"w{i}.json")])
                assert argv[argv.index("--source") + 1].endswith("?mode=connect")
                with open(log, "wb") as f:
                    procs.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                                  env=env, cwd=str(REPO)))
                logs.append(log)
            deadline = time.monotonic() + 120   # a bound for a hang, not a speed goal
            while not broker.wait_workers(timeout=0.5):
                dead = [(i, p.returncode) for i, p in enumerate(procs) if p.poll() is not None]
                assert not dead, f"worker exited early {dead}: {_tail(logs[dead[0][0]])}"
                assert time.monotonic() < deadline, "workers did not connect within 120 s"
            got, stop, lstats = [], threading.Event(), {}
            lt = _collect(broker.listen_endpoint(), got, stop, lstats)
            try:
                assert broker.wait_subscribers(1, timeout=5)
                for sid, ev in recs.items():  # one sender per stream, one after another
                    send_events(np.array_split(ev, 40), broker.sender_endpoint(),
                                stream_id=sid, sensor_size=_sensor(ev))
                n_windows = {sid: (int(ev["t"][-1]) - int(ev["t"][0])) // WINDOW_US
                             for sid, ev in recs.items()}

                def enough():
                    by = collections.Counter(m["stream"] for m in list(got) if not _is_metrics(m))
                    return all(by[s] >= n for s, n in n_windows.items())

                # the workers compile their kernels on the first frame (tens of seconds with a
                # cold numba cache on a loaded box): 240 s for the first label, then 25 s
                first_deadline, deadline = time.monotonic() + 240, None
                while not enough():
                    if deadline is None and any(not _is_metrics(m) for m in list(got)):
                        deadline = time.monotonic() + 25
                    assert broker.wait_messages(broker.stats.messages + 1, timeout=1.0) or \
                        time.monotonic() < (deadline or first_deadline), (
                            f"labels missing: {collections.Counter(m['stream'] for m in got)} "
                            f"want {n_windows}; broker {broker.stats.as_dict()}; "
                            f"{_tail(logs[0])} {_tail(logs[1])}")
                    assert all(p.poll() is None for p in procs), _tail(logs[0]) + _tail(logs[1])
                    lt.join(0.01)
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                rcs = [p.wait(timeout=20) for p in procs]
                assert rcs == [0, 0], f"{rcs}: {_tail(logs[0])} {_tail(logs[1])}"
                summaries = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2)]
                total = sum(s["labels"] for s in summaries)

                def all_in():  # every label, and each worker's final metrics message
                    msgs = list(got)
                    finals = [m for m in msgs if _is_metrics(m)
                              and m["labels"] == summaries[int(m["worker"])]["labels"]]
                    return (sum(not _is_metrics(m) for m in msgs) >= total
                            and {m["worker"] for m in finals} == {"0", "1"})

                deadline = time.monotonic() + 10
                while not all_in() and time.monotonic() < deadline:
                    lt.join(0.05)
            finally:
                stop.set()
                lt.join(10)
            assert not lt.is_alive()
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        st = broker.stats
    assert not broker.running

    # the broker: nothing malformed or dropped, every stream on its slot
    assert st.malformed == 0 and st.dropped == [0, 0], st.as_dict()
    assert set(st.streams) == set(STREAMS)
    assert st.messages == len(got) and lstats["malformed"] == 0
    labels = [m for m in got if not _is_metrics(m)]
    assert len(labels) == total
    assert st.by_topic["metrics"] == len(got) - total
    # each worker's metrics come through the broker too, tagged with the worker
    finals = {m["worker"]: m for m in got if _is_metrics(m)}
    for i, s in enumerate(summaries):
        assert {k: v for k, v in finals[str(i)].items() if k != "worker"} == s
    # every stream's labels arrived, all from exactly one worker (its slot), in order
    by_stream = collections.defaultdict(list)
    for m in labels:
        by_stream[m["stream"]].append(m)
    assert set(by_stream) == set(STREAMS)
    for sid, msgs in by_stream.items():
        assert {m["worker"] for m in msgs} == {str(slot_of(sid, 2))}, sid
        assert [m["seq"] for m in msgs] == list(range(len(msgs))), sid
        # one label per 20 ms window of the stream's events, windows back to back; a
        # stream that has gone silent still gets a (empty) window per window.timeout_s
        # until the worker stops, so labels past the last event are allowed
        ev = recs[sid]
        t0, t_last = int(ev["t"][0]), int(ev["t"][-1])
        ends = [m["t_us"] for m in msgs]
        assert ends == [t0 + (k + 1) * WINDOW_US for k in range(len(msgs))], sid
        assert len(msgs) >= n_windows[sid]
        with_events = [e for e in ends if e - WINDOW_US <= t_last]
        assert len(with_events) == n_windows[sid] + 1, (sid, len(with_events), n_windows)
    # each worker saw exactly its streams' events and published every label it made
    for i, s in enumerate(summaries):
        mine = [sid for sid in STREAMS if slot_of(sid, 2) == i]
        assert s["events_in"] == sum(len(recs[sid]) for sid in mine), s
        assert s["labels"] == sum(len(by_stream[sid]) for sid in mine), s
        assert s["events_dropped"] == 0, s


def test_broker_cli_runs_and_stops():
    import io as _io

    from eventpipe.cli import main

    err = _io.StringIO()
    rc = main(["broker", "--in", "tcp://127.0.0.1:0", "--workers", "2",
               "--labels-in", "tcp://127.0.0.1:0", "--labels-out", "tcp://127.0.0.1:0",
               "--duration", "0.3"], out=_io.StringIO(), err=err)
    assert rc == 0


def test_per_key_counters_are_bounded_whatever_ids_arrive(monkeypatch):
    """Stream ids and label topics come from the network: ``stats.streams`` and
    ``stats.by_topic`` had one entry per distinct key, so a sender cycling through ids grew
    the broker without bound.  Past ``MAX_COUNTED_KEYS`` keys the packets are forwarded all the
    same and counted in ``streams_uncounted`` / ``topics_uncounted``; a topic key is cut to
    ``MAX_TOPIC_BYTES``."""
    from eventpipe.transport import broker as broker_mod

    monkeypatch.setattr(broker_mod, "MAX_COUNTED_KEYS", 3)
    ctx = zmq.Context()
    try:
        with Broker(LOOP, 1, LOOP, LOOP, hwm=100) as broker:
            pull = _pull(ctx, broker.fanout_endpoints[0])
            assert broker._wait(lambda: broker.stats.slot_peers == [1], 5)
            with Sender(broker.sender_endpoint(), sensor_size=(64, 48), context=ctx) as tx:
                for sid in range(10):
                    tx.stream_id = sid
                    tx.send(_events(5))
            got = _recv_all(pull, 10)
            assert len(got) == 10  # every packet forwarded
            st = broker.stats
            assert st.streams == {0: 1, 1: 1, 2: 1} and st.streams_uncounted == 7
            pull.close()
            sink = ZmqPubSink(broker.worker_publish(0))
            try:
                assert broker._wait(lambda: broker.stats.publisher_handshakes == 1, 5)
                assert sink.wait_subscribers(1, timeout=5)
                long_topic = "9" * 1000
                for k in range(6):
                    sink.write({"stream": long_topic if k == 0 else k, "seq": k})
                assert broker.wait_messages(6, timeout=5)
            finally:
                sink.close()
            assert broker.stats.by_topic == {"9" * broker_mod.MAX_TOPIC_BYTES: 1, "1": 1, "2": 1}
            assert broker.stats.topics_uncounted == 3
    finally:
        ctx.term()


def test_a_broker_of_many_workers_starts():
    """``--workers`` goes to 1024, but each slot is three ZeroMQ sockets and libzmq's default
    of 1023 per context ran out at ~340 workers ("Too many open files", exit 1)."""
    with Broker(LOOP, 400, LOOP, LOOP) as broker:
        assert len(set(broker.fanout_ports)) == 400
