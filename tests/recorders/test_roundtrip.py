"""Write -> read: events, slices through the index, chunked iteration, labels, metadata."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.io.chunking import rebatch
from recorders import EventRecorder, open_recording
from recorders.index import IndexBuilder
from tests.recorders.conftest import label_msg, random_events


def write(path, ev, *, batch_sizes_seed=0, **kw) -> None:
    rng = np.random.default_rng(batch_sizes_seed)
    with EventRecorder(path, (640, 480), **kw) as rec:
        i = 0
        while i < len(ev):
            k = int(rng.integers(1, 50_000))
            rec.write(ev[i:i + k])
            i += k


@pytest.mark.parametrize("compression", ["none", "lzf", "gzip:1", "blosc:lz4", "zstd:1"])
def test_events_round_trip_bit_exact(tmp_path, compression):
    if compression.startswith(("blosc", "zstd")):
        pytest.importorskip("hdf5plugin")
    ev = random_events(1, 300_000)
    path = tmp_path / "r.h5"
    write(path, ev, compression=compression, chunk_events=4096)
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.events(), ev)
        assert rec.info.compression == compression
        assert rec.info.events == len(ev)
        assert rec.complete


def test_slices_equal_a_mask_over_all_events(tmp_path):
    ev = random_events(2, 200_000, step_max=40)  # gaps longer than the index period
    path = tmp_path / "r.h5"
    write(path, ev, chunk_events=1000, index_period_us=700)
    rng = np.random.default_rng(5)
    t_lo, t_hi = int(ev["t"][0]), int(ev["t"][-1])
    with open_recording(path) as rec:
        bounds = [(int(a), int(a + w)) for a, w in zip(rng.integers(t_lo - 10, t_hi, 200),
                                                      rng.integers(1, 50_000, 200))]
        bounds += [(t_lo, t_lo + 1), (t_hi, t_hi + 1), (t_lo - 5, t_hi + 5), (700, 1400)]
        for a, b in bounds:
            want = ev[(ev["t"] >= a) & (ev["t"] < b)]
            np.testing.assert_array_equal(rec.events(a, b), want, err_msg=f"[{a}, {b})")
        np.testing.assert_array_equal(rec.events(start_us=t_hi - 100), ev[ev["t"] >= t_hi - 100])
        np.testing.assert_array_equal(rec.events(end_us=t_lo + 100), ev[ev["t"] < t_lo + 100])


def test_unsorted_times_slice_by_running_maximum(tmp_path):
    """Slightly unsorted input: a slice returns the events in [a, b) between the positions
    where the running maximum of t crosses a and b (documented in docs/recorders.md)."""
    ev = random_events(3, 20_000, step_max=5, sorted_t=False)
    path = tmp_path / "r.h5"
    write(path, ev, chunk_events=512, index_period_us=100)
    cm = np.maximum.accumulate(ev["t"])
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.events(), ev)
        for a, b in [(1000, 2000), (5000, 5001), (int(ev["t"].min()), 30_000)]:
            i, j = np.searchsorted(cm, a), np.searchsorted(cm, b)
            seg = ev[i:j]
            np.testing.assert_array_equal(rec.events(a, b), seg[(seg["t"] >= a) & (seg["t"] < b)])


def test_index_builder_matches_a_per_event_reference():
    rng = np.random.default_rng(3)
    for trial in range(300):
        n, period = int(rng.integers(1, 400)), int(rng.integers(1, 50))
        t = np.cumsum(rng.integers(0, 40, n)) - int(rng.integers(0, 100))
        if trial % 3 == 0:
            t = t + rng.integers(-30, 30, n)
        k = np.maximum.accumulate(t) // period
        want_pos = [i for i in range(n) if i == 0 or k[i] != k[i - 1]]
        b = IndexBuilder(period)
        got_t, got_pos = [], []
        cuts = sorted(set(rng.integers(0, n, 3).tolist() + [0, n]))
        for a, c in zip(cuts[:-1], cuts[1:]):
            it, io = b.add(t[a:c], a)
            got_t += it.tolist()
            got_pos += io.tolist()
        assert got_pos == want_pos
        assert got_t == [int(k[i]) * period for i in want_pos]


def test_index_builder_on_dense_and_sparse_periods():
    """Thousands of events per period (the search gallops over them), one event per
    period, and gaps of many periods, in batches cut anywhere: the per-event reference."""
    rng = np.random.default_rng(4)
    for trial in range(40):
        n, period = int(rng.integers(1, 60_000)), int(rng.choice([1, 7, 1000]))
        step = rng.choice([0, 1, 3, 50, 5000], n, p=[0.5, 0.3, 0.15, 0.04, 0.01])
        t = np.cumsum(step) + int(rng.integers(-10_000, 10_000))
        k = t // period
        want = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        b = IndexBuilder(period)
        got_t, got_pos = [], []
        cuts = sorted(set(rng.integers(0, n, 5).tolist() + [0, n]))
        for a, c in zip(cuts[:-1], cuts[1:]):
            it, io = b.add(t[a:c], a)
            got_t += it.tolist()
            got_pos += io.tolist()
        assert got_pos == want.tolist()
        assert got_t == (k[want] * period).tolist()


@pytest.mark.parametrize("chunk_events,chunk_us", [(1000, None), (None, 7_000), (333, 2_000)])
def test_iter_events_cuts_like_every_reader(tmp_path, chunk_events, chunk_us):
    ev = random_events(4, 50_000, step_max=4)
    path = tmp_path / "r.h5"
    write(path, ev, chunk_events=4096)
    want = list(rebatch([ev], chunk_events=chunk_events, chunk_us=chunk_us))
    with open_recording(path) as rec:
        got = list(rec.iter_events(chunk_events=chunk_events, chunk_us=chunk_us))
        assert [len(c) for c in got] == [len(c) for c in want]
        np.testing.assert_array_equal(np.concatenate(got), ev)
        a, b = int(ev["t"][1000]), int(ev["t"][30_000])
        sl = np.concatenate(list(rec.iter_events(chunk_events=999, start_us=a, end_us=b)))
        np.testing.assert_array_equal(sl, ev[(ev["t"] >= a) & (ev["t"] < b)])


def test_labels_round_trip_with_streams_and_filters(tmp_path):
    path = tmp_path / "r.h5"
    msgs = [label_msg(i, stream=i % 3) for i in range(5000)]  # more than one label chunk
    with EventRecorder(path, (64, 48), topk=2) as rec:
        rec.write(random_events(5, 1000, size=(64, 48)))
        rec.write_labels(msgs[:10])
        rec.write_labels(msgs[10])
        rec.write_labels(msgs[11:])
        rec.write_labels([{"type": "metrics", "events_in": 5}])  # not a label: ignored
    with open_recording(path) as rec:
        got = rec.label_messages()
        assert len(got) == 5000
        for g, m in zip(got, msgs):
            assert g["stream"] == m["stream"] and g["seq"] == m["seq"]
            assert g["t_us"] == m["t_us"] and g["label"] == m["label"]
            assert g["score"] == pytest.approx(m["score"]) and g["truth"] == "act0"
            assert g["topk"][0][0] == m["topk"][0][0] and len(g["topk"]) == 2
            assert g["latency_ms"] == pytest.approx(m["latency_ms"]) and g["wall_s"] == m["wall_s"]
        rows = rec.labels(start_us=1000 * 100, end_us=1000 * 200, stream=1)
        assert rows["seq"].tolist() == [i for i in range(100, 200) if i % 3 == 1]
        assert rec.info.streams == [0, 1, 2] and rec.info.labels == 5000


def test_label_longer_than_its_field_is_an_error_naming_the_row(tmp_path):
    with EventRecorder(tmp_path / "r.h5", (8, 8), label_bytes=8) as rec:
        with pytest.raises(ValueError, match="row 1: label .* 9 bytes.*label_bytes=8"):
            rec.write_labels([{"t_us": 1, "label": "ok"}, {"t_us": 2, "label": "x" * 9}])


def test_metadata_attributes(tmp_path):
    path = tmp_path / "r.h5"
    with EventRecorder(path, (346, 260), source_uri="dv://127.0.0.1:7777",
                       camera_serial="DVX-42", compression="gzip", index_period_us=250) as rec:
        rec.write(random_events(6, 100, size=(346, 260), t0=5_000_000))
    with open_recording(path) as rec:
        info = rec.info
    assert info.sensor_size == (346, 260) and info.time_unit == "us"
    assert info.source_uri == "dv://127.0.0.1:7777" and info.camera_serial == "DVX-42"
    assert info.compression == "gzip:4" and info.index_period_us == 250
    assert info.schema_version == 1 and info.t_first >= 5_000_000 and info.complete
    assert info.created_utc.endswith("+00:00") and info.wall_clock_start_unix > 1.6e9


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "r.h5"
    with EventRecorder(path, (8, 8)) as rec:
        rec.write(random_events(7, 10, size=(8, 8)))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        EventRecorder(path, (8, 8))
    assert path.read_bytes() == before
    with EventRecorder(path, (8, 8), overwrite=True) as rec:
        pass
    with open_recording(path) as rec:
        assert rec.info.events == 0


def test_flush_every_us_commits_by_recording_time(tmp_path):
    path = tmp_path / "r.h5"
    rec = EventRecorder(path, (640, 480), flush_every_us=100_000)
    ev = random_events(8, 100_000, step_max=5)  # ~250 ms of events
    for i in range(0, len(ev), 1000):
        rec.write(ev[i:i + 1000])
    assert rec.flushes == 2  # at ~100 ms and ~200 ms of event time
    with open_recording(path) as r:  # while the writer is still open (SWMR reader)
        assert 0 < r.n_events == rec.events_committed < len(ev)
        assert not r.complete
        np.testing.assert_array_equal(r.events(), ev[:rec.events_committed])
    rec.close()


def test_layout_is_as_documented(tmp_path):
    """The datasets, dtypes, shapes and attributes docs/recorders.md lists."""
    import h5py

    path = tmp_path / "r.h5"
    with EventRecorder(path, (640, 480), chunk_events=1024, topk=3, label_bytes=16,
                       fsync=True) as rec:
        rec.write(random_events(9, 2500))
        rec.write_labels([label_msg(0)])
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "eventpipe-recording" and f.attrs["schema_version"] == 1
        ev = f["events"]
        assert {k: (ev[k].dtype.str, ev[k].chunks) for k in "xytp"} == {
            "x": ("<u2", (1024,)), "y": ("<u2", (1024,)), "t": ("<i8", (1024,)),
            "p": ("|u1", (1024,))}
        assert all(ev[f"tail_{k}"].shape == (2, 1024) and ev[f"tail_{k}"].chunks is None
                   and ev[f"tail_{k}"].compression is None for k in "xytp")
        assert ev["x"].compression == "lzf" and ev["x"].shuffle
        from recorders.chunks import pipeline
        assert pipeline(ev["x"]) == (2, 32000, 3)  # shuffle, lzf, fletcher32 (docs' order)
        assert ev["index_t"].compression is None and f["labels/label"].compression is None
        assert list(ev.attrs["sensor_size"]) == [640, 480] and ev.attrs["time_unit"] == "us"
        assert f["labels/topk_label"].shape == (1, 3) and f["labels/label"].dtype == "S16"
        assert f["status"].attrs["fields"] == ("closed,events,labels,index,dropped_events,"
                                               "dropped_labels,flushes,tail_slot")
        assert f["status"][0] == 1 and f["status"][1] == 2500
        assert len(ev["x"]) == 2500  # closed: every event in the columns


def test_tail_slots_hold_the_events_after_the_last_whole_chunk(tmp_path):
    """Unclosed: whole chunks in the columns, the rest in the slot the status names; each
    flush alternates slots (a crash mid-flush leaves the previous slot and count)."""
    import h5py

    path = tmp_path / "r.h5"
    ev = random_events(10, 5000)
    rec = EventRecorder(path, (640, 480), chunk_events=1024, flush_every_us=None)
    slots = []
    for a, b in ((0, 1500), (1500, 1700), (1700, 5000)):
        rec.write(ev[a:b])
        rec.flush()
        with h5py.File(path, "r", swmr=True) as f:
            st = f["status"][()]
            slots.append(int(st[7]))
            n_main = int(st[1]) // 1024 * 1024
            assert int(st[1]) == b and len(f["events/x"]) >= n_main
            np.testing.assert_array_equal(f["events/t"][:n_main], ev["t"][:n_main])
            np.testing.assert_array_equal(f["events/tail_t"][slots[-1], :b - n_main],
                                          ev["t"][n_main:b])
    assert slots == [1, 0, 1]
    rec.close()


def test_public_names_exist():
    import recorders

    for name in recorders.__all__:
        assert getattr(recorders, name) is not None
