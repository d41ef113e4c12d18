"""`eventpipe send` confirms delivery: it fails clearly after --timeout with nobody
listening (it used to say "sent {...}" and exit 0), and prints JSON on success."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from eventpipe.errors import ExitStatus
from eventpipe.sources import open_source
from tests.cli.conftest import assert_one_error_line
from tests.conftest import expected_events, sample_path
from tests.transport.helpers import collect, free_tcp_port


def test_send_with_no_receiver_fails_after_the_timeout(cli):
    port = free_tcp_port()  # nothing listens here
    t0 = time.monotonic()
    res = cli(["send", sample_path("sample_ncars.dat"), "--to", f"tcp://127.0.0.1:{port}",
               "--timeout", "0.5"])
    elapsed = time.monotonic() - t0
    assert_one_error_line(res, ExitStatus.RUNTIME, f"no receiver at tcp://127.0.0.1:{port}",
                          "0.5 s")
    assert res.out == "" and elapsed < 10


def test_send_delivers_and_prints_json(cli):
    want = expected_events("sample_ncars.dat")
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        res = cli(["send", sample_path("sample_ncars.dat"), "--to",
                   f"tcp://127.0.0.1:{src.port}", "--stream", "7"])
        assert res.rc == 0 and res.err == "", res
        counts = json.loads(res.out)  # JSON, not a Python dict's repr
        assert counts["to"] == f"tcp://127.0.0.1:{src.port}"
        assert counts["events"] == len(want) == 2009 and counts["packets"] >= 1
        got = collect(src, len(want), timeout=10)
    assert np.array_equal(got, want)


def test_send_bad_endpoint_is_a_config_error(cli):
    res = cli(["send", sample_path("sample_ncars.dat"), "--to", "udp://127.0.0.1:5"])
    assert_one_error_line(res, ExitStatus.CONFIG, "--to", "expected tcp://HOST:PORT")


def test_send_flags_out_of_range(cli):
    path = sample_path("sample_ncars.dat")
    for flag, value in (("--speed", "0"), ("--speed", "nan"), ("--timeout", "-1"),
                        ("--timeout", "1e300"),  # was an OverflowError 'internal error'
                        ("--stream", "-3")):
        res = cli(["send", path, "--to", "tcp://127.0.0.1:9", flag, value])
        assert_one_error_line(res, ExitStatus.CONFIG, flag)


def test_confirming_sender_fails_when_the_receiver_goes_away():
    """A receiver that disappears mid-stream: sends stop being accepted and the sender says
    so (TimeoutError naming the endpoint and what was sent) instead of queueing forever."""
    import zmq

    from eventpipe.events import make_events
    from eventpipe.sources.sender import Sender

    ctx = zmq.Context()
    rx = ctx.socket(zmq.PULL)
    rx.setsockopt(zmq.RCVHWM, 1)
    rx.bind("tcp://127.0.0.1:0")
    endpoint = rx.getsockopt(zmq.LAST_ENDPOINT).decode()
    ev = make_events(np.arange(1000) % 64, np.arange(1000) % 48, np.arange(1000), np.ones(1000))
    tx = Sender(endpoint, sensor_size=(64, 48), confirm=True, sndhwm=1, send_timeout_s=0.5,
                linger_s=0.5)
    tx.send(ev)
    assert rx.poll(5000) and rx.recv()  # delivered while the receiver is there
    rx.close(0)
    ctx.term()
    try:
        with pytest.raises(TimeoutError, match=endpoint):
            for _ in range(100_000):  # the kernel buffers fill, then sends are refused
                tx.send(ev)
    finally:
        try:
            tx.close()
        except TimeoutError:
            pass
    assert tx.counts["packets"] >= 1


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_send_stopped_by_a_signal_prints_what_was_delivered(cli, monkeypatch, signame):
    """Ctrl-C (or SIGTERM) during ``send`` stops before the next packet: what was sent is
    delivered, the counts are printed with ``"stopped": true``, exit 0 (before: ``error:
    interrupted``, exit 130, and no word of what had been sent)."""
    import os
    import signal

    from eventpipe.sources import sender as sender_mod

    signum = getattr(signal, signame)
    real_send = sender_mod.Sender.send

    def send_then_signal(self, events):
        seq = real_send(self, events)
        if self.counts["packets"] == 1:
            os.kill(os.getpid(), signum)  # handled in this (the main) thread
        return seq

    monkeypatch.setattr(sender_mod.Sender, "send", send_then_signal)
    want = expected_events("sample_ncars.dat")

    def outside(signum_, frame):  # a signal reaching the test instead of the command
        raise RuntimeError(f"signal {signum_} was not handled by the command")

    before = signal.signal(signum, outside)
    try:
        with open_source("zmq+tcp://127.0.0.1:0") as src:
            res = cli(["send", sample_path("sample_ncars.dat"), "--to",
                       f"tcp://127.0.0.1:{src.port}", "--speed", "1"])
            assert signal.getsignal(signum) is outside  # the command put the handler back
            counts = json.loads(res.out)
            got = collect(src, counts["events"], timeout=10)
    finally:
        signal.signal(signum, before)
    assert res.rc == 0 and res.err == "", res
    assert counts["stopped"] is True and counts["packets"] == 1
    assert 0 < counts["events"] < len(want)
    assert np.array_equal(got, want[:counts["events"]])
