"""One dispatcher, one table: every scheme in ``SCHEMES`` opens, says whether it is live,
and an unknown scheme's error lists them all."""

from __future__ import annotations

import pytest

from eventpipe.sources import SCHEMES, Source, known_schemes, open_source, parse_uri
from tests.conftest import sample_path


def test_every_scheme_is_listed_in_unknown_scheme_errors():
    for uri in ("http://127.0.0.1:1", "ftp:thing", "webcam:0"):
        with pytest.raises(ValueError) as err:
            open_source(uri)
        for scheme in SCHEMES:
            assert scheme in str(err.value), (uri, scheme)
    assert "tcp" in known_schemes()  # the alias


@pytest.mark.parametrize("uri,scheme,path", [
    ("synthetic:seed=3", "synthetic", "seed=3"), ("camera:", "camera", ""),
    ("video:/tmp/a.mp4", "video", "/tmp/a.mp4"), ("dvcam:", "dvcam", ""),
    ("recording.raw", "file", "recording.raw"), ("file:a:b.raw", "file", "a:b.raw")])
def test_non_network_uris(uri, scheme, path):
    u = parse_uri(uri)
    assert (u.scheme, u.path) == (scheme, path)


@pytest.mark.parametrize("uri", ["udp:127.0.0.1:5", "synthetic://h:1", "video:"])
def test_misshapen_uris(uri):
    with pytest.raises(ValueError, match="expected|not a network scheme|needs a path"):
        parse_uri(uri)


def test_sources_say_whether_they_are_live():
    opened = {
        "file": open_source(f"file:{sample_path('sample_ncars.dat')}", start=False,
                            sensor_size=(128, 128)),
        "zmq+tcp": open_source("zmq+tcp://127.0.0.1:0", start=False),
        "udp": open_source("udp://127.0.0.1:0", start=False),
        "synthetic": open_source("synthetic:duration_s=0.1", start=False),
    }
    try:
        assert {k: s.live for k, s in opened.items()} == {
            "file": False, "zmq+tcp": True, "udp": True, "synthetic": False}
        for s in opened.values():
            assert isinstance(s, Source)
            assert s.policy == ("drop_oldest" if s.live else "block")
    finally:
        for s in opened.values():
            s.close()


def test_paced_file_keeps_a_short_queue_and_sockets_count_events():
    path = sample_path("sample_ncars.dat")
    f = open_source(f"file:{path}", speed=1.0, start=False, sensor_size=(128, 128))
    u = open_source("udp://127.0.0.1:0", start=False, queue_events=1000)
    try:
        assert f._queue.maxlen == 16 and f._queue.max_events is None
        assert f.chunk_us == 10_000 and f.chunk_events == 1 << 20
        assert u._queue.max_events == 1000 and u._queue.maxlen == 65536
    finally:
        f.close()
        u.close()


def test_queue_bound_in_events():
    import threading

    from eventpipe.sources import BoundedQueue, SourceStats

    st = SourceStats()
    q = BoundedQueue(10, "drop_oldest", st, max_events=100)
    assert q.put("a", 60) and q.put("b", 60)       # a goes: 120 > 100
    assert (st.dropped, st.dropped_packets, q.n_events) == (60, 1, 60)
    assert q.put("c", 500)                         # larger than the bound: alone
    assert (st.dropped, q.n_events, len(q)) == (120, 500, 1)
    assert q.get_many(0, 10) == ["c"] and q.n_events == 0
    qb = BoundedQueue(10, "block", SourceStats(), max_events=100)
    qb.put("x", 80)
    done = threading.Event()
    t = threading.Thread(target=lambda: (qb.put("y", 30), done.set()))
    t.start()
    assert not done.wait(0.2)                      # waits for room (back-pressure)
    assert qb.get_many(0, 1) == ["x"]
    assert done.wait(2) and qb.get_many(0, 1) == ["y"]
    t.join()
    with pytest.raises(ValueError, match="queue_events"):
        BoundedQueue(10, "block", SourceStats(), max_events=0)


def test_video_without_a_size_gets_the_emulator_default(tmp_path):
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    path = tmp_path / "bar.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (32, 32))
    for k in range(6):
        img = np.zeros((32, 32, 3), np.uint8)
        img[:, 4 * k:4 * k + 4] = 255
        vw.write(img)
    vw.release()
    src = open_source(f"video:{path}", speed=None, start=False)
    try:
        assert src.sensor_size == (128, 128) and not src.live
    finally:
        src.close()
