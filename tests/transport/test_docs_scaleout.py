"""docs/scaleout.md, the claims no other test held: a slot's queue is `hwm` messages (default
1000) and `Broker.close()` joins both threads and terminates the broker's own context; the
threads poll every 50 ms, which is what bounds the stop."""

from __future__ import annotations

import zmq

from eventpipe.transport import broker as broker_mod
from eventpipe.transport.broker import Broker

LOOP = "tcp://127.0.0.1:0"


def test_slot_hwm_default_and_close_joins_everything():
    b = Broker(LOOP, 2, LOOP, LOOP)
    try:
        b.start()
        assert b.running
        assert all(s.getsockopt(zmq.SNDHWM) == 1000 for s in b._slots)
        threads = list(b._threads)
        assert len(threads) == 2  # fan-out and label proxy
    finally:
        b.close()
    assert not any(t.is_alive() for t in threads)
    assert b._ctx.closed
    assert broker_mod.POLL_MS == 50  # "stops both threads within ~50 ms"


def test_only_the_header_is_checked_payload_errors_reach_the_worker():
    """"Only the 36-byte header is checked; payload errors (CRC, coordinates) are found and
    counted by the worker's source (`malformed` in its summary)": a packet whose CRC is wrong
    is forwarded, and the worker's source counts and drops it."""
    import numpy as np

    from eventpipe.events import make_events
    from eventpipe.sources import open_source
    from eventpipe.sources.sender import Sender
    from eventpipe.transport.wire import encode_packet
    from tests.transport.helpers import collect, wait_for

    good = make_events([1, 2], [3, 4], [10, 20], [1, 0])
    bad = bytearray(encode_packet(good, 0, 0, (64, 48)))
    bad[-1] ^= 0xFF  # the CRC32 trailer: the header stays valid
    with Broker(LOOP, 1, LOOP, LOOP) as b:
        with open_source(b.worker_source(0)) as worker:
            assert b._wait(lambda: b.stats.slot_peers == [1] and b.stats.slot_handshakes[0] >= 1, 5)
            with Sender(b.sender_endpoint(), sensor_size=(64, 48)) as tx:
                tx.send_raw(bytes(bad))
                tx.send(good)
                np.testing.assert_array_equal(collect(worker, 2), good)
            assert wait_for(lambda: worker.stats.malformed == 1)
            assert b._wait(lambda: b.stats.forwarded == [2], 5)  # counted after the send
            assert b.stats.malformed == 0


def test_the_pub_sink_lingers_1_s():
    """"they ... publish their last labels and metrics (1 s linger)"."""
    import inspect

    from eventpipe.sinks.zmq_pub import ZmqPubSink

    assert inspect.signature(ZmqPubSink).parameters["linger_s"].default == 1.0


def test_run_broker_prints_its_stats_every_s_seconds_and_at_the_end():
    """`eventpipe broker ... --stats-every S`: "its stats every `S` seconds and at the end"
    (stderr), after the endpoints and one worker command per slot."""
    import io

    from eventpipe.transport.scaleout import run_broker

    err = io.StringIO()
    out = run_broker(LOOP, 2, LOOP, LOOP, duration_s=1.0, stats_every_s=0.2, err=err)
    lines = err.getvalue().splitlines()
    stats = [i for i, line in enumerate(lines) if line.startswith("eventpipe broker: received")]
    assert lines[0].startswith("eventpipe broker: senders -> tcp://127.0.0.1:")
    assert sum("worker" in line and "eventpipe run --source" in line for line in lines) == 2
    assert len(stats) >= 2 and stats[-1] == len(lines) - 1  # periodic, then the final line
    assert out["n_workers"] == 2 and out["received"] == 0
