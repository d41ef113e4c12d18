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
