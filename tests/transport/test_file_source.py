"""file: source: exact replay, real-time pacing, loop, back-pressure; URI parsing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from eventpipe.sources import Source, open_source, parse_uri
from tests.conftest import expected_events, sample_path
from tests.transport.helpers import collect, wait_for


def readable(name):
    """The sample's path; a reader that cannot read it fails the test (no skip)."""
    return sample_path(name)


def test_max_speed_replays_exactly():
    path = readable("sample_nmnist.bin")
    ev = expected_events("sample_nmnist.bin")
    with open_source(f"file:{path}", chunk_us=20_000, stream_id=3) as src:
        assert src.sensor_size == (34, 34)
        batches = list(src.packets(timeout=10))
        assert src.state == "finished" and src.done
    np.testing.assert_array_equal(np.concatenate([b.events for b in batches]), ev)
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert {b.stream_id for b in batches} == {3}
    assert src.stats.dropped == 0 and src.stats.received == len(ev)


def test_real_time_pacing():
    path = readable("sample_ncars.dat")  # 100 ms of events
    ev = expected_events("sample_ncars.dat")
    t0 = time.monotonic()
    with open_source(f"file:{path}", speed=1.0, chunk_us=10_000) as src:
        got = collect(src, len(ev), timeout=10)
    elapsed = time.monotonic() - t0
    np.testing.assert_array_equal(got, ev)
    assert 0.08 <= elapsed < 3.0


def test_loop_shifts_time_and_back_pressure_never_drops():
    path = readable("sample_ncars.dat")
    ev = expected_events("sample_ncars.dat")
    with open_source(f"file:{path}", loop=True, chunk_us=10_000, queue_size=2) as src:
        assert wait_for(lambda: len(src._queue) == 2)  # full: the reader thread waits
        got = collect(src, 3 * len(ev), timeout=20)
        assert src.stats.dropped == 0
    got = got[:3 * len(ev)]
    span = int(ev["t"][-1] - ev["t"][0] + 1)
    for k in range(3):
        part = got[k * len(ev):(k + 1) * len(ev)]
        np.testing.assert_array_equal(part[["x", "y", "p"]], ev[["x", "y", "p"]])
        np.testing.assert_array_equal(part["t"], ev["t"] + k * span)


def test_bad_file_options(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_source(f"file:{tmp_path / 'missing.dat'}")
    path = readable("sample_ncars.dat")
    with pytest.raises(ValueError):
        open_source(f"file:{path}", speed=0)


@pytest.mark.parametrize("uri,expect", [
    ("zmq+tcp://127.0.0.1:5555", ("zmq+tcp", "127.0.0.1", 5555, None, {})),
    ("tcp://localhost:0", ("zmq+tcp", "localhost", 0, None, {})),
    ("udp://0.0.0.0:7777?format=t32_x16_y15_on1",
     ("udp", "0.0.0.0", 7777, None, {"format": "t32_x16_y15_on1"})),
    ("dv://[::1]:7777", ("dv", "::1", 7777, None, {})),
    ("file:/data/rec.raw", ("file", None, None, "/data/rec.raw", {})),
    ("file:///data/rec.raw", ("file", None, None, "/data/rec.raw", {})),
])
def test_parse_uri(uri, expect):
    assert tuple(parse_uri(uri)) == expect


@pytest.mark.parametrize("uri", ["", "127.0.0.1:5555", "http://x:1", "udp://host",
                                 "udp://h:99999", "udp://h:abc", "udp://h:1?speed=2", "file:"])
def test_bad_uris(uri):
    with pytest.raises(ValueError):
        parse_uri(uri)


def test_public_names_exist():
    import eventpipe.sinks as sinks
    import eventpipe.sources as sources
    import eventpipe.transport.wire as wire
    for mod in (sources, sinks, wire):
        for name in mod.__all__:
            assert hasattr(mod, name), f"{mod.__name__}.{name}"
    assert issubclass(sources.Source, object) and Source is sources.Source
