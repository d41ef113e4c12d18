"""docs/recorders.md, the claims no other test held: the defaults of the layout table (chunks
of 16,384, labels S64, top-k 5, lzf + shuffle, a 1 ms index period), the 21 datasets and 15
attributes, the extent growing 64 chunks at a time, the 1 s flush period, the AsyncRecorder's
bounds (8 Mi events, 4096 batches)."""

from __future__ import annotations

import h5py
import numpy as np

from recorders import AsyncRecorder, EventRecorder, open_recording
from tests.recorders.conftest import label_msg, random_events


def _count(f: h5py.File):
    datasets, attrs = [], sum(1 for _ in f.attrs)

    def visit(name, obj):
        nonlocal attrs
        attrs += len(obj.attrs)
        if isinstance(obj, h5py.Dataset):
            datasets.append(name)

    f.visititems(visit)
    return datasets, attrs


def test_default_layout_is_the_documented_one(tmp_path):
    path = tmp_path / "r.h5"
    with EventRecorder(path, (640, 480)) as rec:
        rec.write(random_events(1, 20_000))
        rec.write_labels([label_msg(0)])
        rec.flush()
        with h5py.File(path, "r", swmr=True) as f:
            # while written the extent runs ahead: it grows 64 chunks at a time
            assert len(f["events/x"]) == 64 * 16_384
    with h5py.File(path, "r") as f:
        ev = f["events"]
        assert all(ev[k].chunks == (16_384,) for k in "xytp")  # chunk_events default 16,384
        assert ev["x"].compression == "lzf" and ev["x"].shuffle  # lzf (default), byte shuffle
        assert ev["tail_t"].shape == (2, 16_384)
        assert ev.attrs["compression"] == "lzf" and int(ev.attrs["index_period_us"]) == 1000
        assert int(ev.attrs["chunk_events"]) == 16_384
        assert f["labels/label"].dtype == "S64"  # label_bytes default 64
        assert f["labels/topk_label"].shape == (1, 5)  # topk default 5
        assert f["labels/latency_ms"].dtype == np.float32 and f["labels/wall_s"].dtype == np.float64
        assert len(ev["x"]) == 20_000  # closed: trimmed to exactly the events
        datasets, attrs = _count(f)
        # "Creating a recording's 21 datasets and 15 attributes"
        assert len(datasets) == 21, sorted(datasets)
        assert attrs == 15


def test_flushes_every_second_of_recording_time_by_default(tmp_path):
    """"Flushes happen every `flush_every_us` of recording time (event or label t, default
    1 s)"; a reader trusts only the committed counts."""
    path = tmp_path / "r.h5"
    rec = EventRecorder(path, (64, 64))
    try:
        first = random_events(2, 1000, size=(64, 64), step_max=5)  # t < 5 ms
        rec.write(first)
        t1 = int(first["t"].max())  # the period counts from the first batch's time
        rec.write(random_events(3, 10, size=(64, 64), t0=t1 + 999_000, step_max=0))  # < 1 s
        with open_recording(path) as r:
            committed = r.info.events
        rec.write(random_events(4, 10, size=(64, 64), t0=t1 + 1_000_000, step_max=0))  # 1 s
        with open_recording(path) as r:
            after = r.info.events
    finally:
        rec.close()
    assert committed == 0  # no flush yet: a reader sees none of it
    assert after == 1020


def test_async_recorder_bounds_default_to_8_mi_events_and_4096_batches(tmp_path):
    with EventRecorder(tmp_path / "r.h5", (64, 64)) as rec:
        a = AsyncRecorder(rec)
        try:
            assert a.max_queue_events == 8 << 20 and a.max_queue_items == 4096
        finally:
            a.close()


def test_cli_defaults_the_table_states():
    """`record`: file and synthetic sources go as fast as possible unless `--speed`, lzf,
    flushes every 1 s; `replay-labels`: spaced as recorded (`--speed` 1), waits
    `--wait-subscribers` 5 s."""
    import argparse

    from eventpipe.cli import record, replay_labels
    from eventpipe.sources import open_source

    sub = argparse.ArgumentParser().add_subparsers()
    rec = record.add_parser(sub).parse_args(["synthetic:", "o.h5"])
    assert rec.speed is None and rec.compression == "lzf" and rec.flush_every == 1.0
    rep = replay_labels.add_parser(sub).parse_args(["o.h5", "--publish", "tcp://127.0.0.1:0"])
    assert not rep.max_speed and rep.wait_subscribers == 5.0
    assert replay_labels.replay_speed(rep) == 1.0   # no --speed given: the recorded spacing
    src = open_source("synthetic:duration_s=0.05,size=16x16", speed=rec.speed, start=False)
    try:
        assert src._speed is None  # not paced
    finally:
        src.close()


class _TwoStreamSource:
    """A finished source holding three batches: stream 3, stream 5, stream 3."""

    live, sensor_size, error = False, (640, 480), None

    def __init__(self, batches):
        self._batches = list(batches)

    def read(self, timeout=None):
        return self._batches.pop(0) if self._batches else None

    @property
    def done(self):
        return not self._batches

    def close(self):
        pass

    def drop_advice(self):
        return []


def _batches():
    from eventpipe.sources import Batch

    parts = [random_events(s, 100 + 10 * s, t0=1000 * s) for s in range(3)]
    return parts, [Batch(3, 0, parts[0], 0.0), Batch(5, 0, parts[1], 0.0),
                   Batch(3, 1, parts[2], 0.0)]


def test_record_keeps_the_first_stream_and_reports_the_others(tmp_path, monkeypatch):
    """"The events are those of one stream: `record` and `run --record` keep the first stream
    id they see and count (and report) the events of other streams they did not record"."""
    import io
    from types import SimpleNamespace

    import eventpipe.sources
    from recorders.cli import run_record

    parts, batches = _batches()
    monkeypatch.setattr(eventpipe.sources, "open_source",
                        lambda uri, **kw: _TwoStreamSource(batches))
    out, path = io.StringIO(), tmp_path / "r.h5"
    args = SimpleNamespace(source="zmq+tcp://127.0.0.1:0", out=path, duration=None,
                           compression="lzf", overwrite=False, speed=None, flush_every=1.0)
    assert run_record(args, out, io.StringIO()) == 0
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.events(), np.concatenate([parts[0], parts[2]]))
    assert f"not recorded: {len(parts[1]):,} events of streams other than stream 3" \
        in out.getvalue()


def test_run_record_keeps_the_first_stream_and_reports_the_others(tmp_path):
    import io

    from recorders.tap import RecordingSink, RunRecording, TappedSource

    parts, batches = _batches()
    recording = RunRecording(tmp_path / "r.h5", sensor_size=(640, 480), source_uri="test:")
    tapped, err = TappedSource(_TwoStreamSource(batches), recording), io.StringIO()
    while tapped.read() is not None:
        pass
    sink = RecordingSink(recording, err)
    sink.write(label_msg(0, stream=5))  # labels of every stream are recorded
    sink.close()
    with open_recording(tmp_path / "r.h5") as rec:
        np.testing.assert_array_equal(rec.events(), np.concatenate([parts[0], parts[2]]))
        assert rec.labels()["stream"].tolist() == [5]
    assert f"; {len(parts[1]):,} events of other streams not recorded" in err.getvalue()


def _read_attempts(fapl) -> int:
    """``H5Pget_metadata_read_attempts`` of the libhdf5 h5py loaded (h5py does not wrap it)."""
    import ctypes
    import os

    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "libhdf5" in line and ".so" in line}
    lib = next(x for x in sorted(libs) if not os.path.basename(x).startswith("libhdf5_hl"))
    fn = ctypes.CDLL(lib).H5Pget_metadata_read_attempts
    fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.POINTER(ctypes.c_uint)], ctypes.c_int
    got = ctypes.c_uint()
    assert fn(fapl.id, ctypes.byref(got)) >= 0
    return got.value


def test_swmr_readers_bound_metadata_re_reads_to_8(tmp_path):
    """recorders.md's bad-input table: "SWMR readers (files being written or whose writer
    died) bound HDF5's metadata re-reads to 8 (its default of 100 ...)": the file of a writer
    that died after a flush is opened as a SWMR reader whose access list says 8."""
    import subprocess
    import sys

    from tests.conftest import REPO

    path = tmp_path / "died.h5"
    child = ("import os, sys; from recorders import EventRecorder; "
             "from tests.recorders.conftest import random_events; "
             "rec = EventRecorder(sys.argv[1], (640, 480)); rec.write(random_events(1, 1000)); "
             "rec.flush(); os._exit(0)")
    subprocess.run([sys.executable, "-c", child, str(path)], cwd=REPO, check=True, timeout=120)
    with open_recording(path) as reader:
        assert reader._f.swmr_mode and not reader.info.complete
        assert _read_attempts(reader._f.id.get_access_plist()) == 8
        np.testing.assert_array_equal(reader.events(), random_events(1, 1000))


def test_fsync_syncs_the_file_at_each_flush(tmp_path, monkeypatch):
    """"`fsync=True` also syncs the file at each flush, for power loss" (and without it,
    never)."""
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    for fsync, want in ((False, 0), (True, 3)):
        synced.clear()
        with EventRecorder(tmp_path / f"s{fsync}.h5", (640, 480), fsync=fsync) as rec:
            for k in range(2):
                rec.write(random_events(k, 100, t0=10_000 * k))
                rec.flush()
        assert len(synced) == want  # two flush() calls and the one in close()


def test_label_rows_mark_what_a_message_did_not_carry(tmp_path):
    """The layout table's `/labels`: `seq` -1 for none, `latency_ms` NaN for unknown, `truth`
    only when given, `wall_s` when it was recorded; a `null` label (below the threshold)
    stays null; the messages read back say None where the row says none."""
    import time

    path = tmp_path / "l.h5"
    before = time.time()
    with EventRecorder(path, (8, 8)) as rec:
        rec.write_labels({"stream": 2, "t_us": 5, "label": "wave", "score": 0.5,
                          "topk": [["wave", 0.5]]})
        rec.write_labels({"stream": 2, "seq": 7, "t_us": 6, "label": None, "score": 0.1,
                          "topk": [["wave", 0.1]], "latency_ms": 1.5, "truth": "clap"})
    with open_recording(path) as rec:
        rows = rec.labels()
        assert rows["seq"].tolist() == [-1, 7] and np.isnan(rows["latency_ms"][0])
        assert before <= rows["wall_s"][0] <= time.time()
        first, second = rec.label_messages()
    assert first["seq"] is None and first["latency_ms"] is None and "truth" not in first
    assert second["label"] is None and second["truth"] == "clap" and second["seq"] == 7


def test_follow_polls_every_50_ms_by_default():
    """"polls the commit record every `poll_s` (0.05 s ...)"."""
    import inspect

    from recorders.follow import follow_events
    from recorders.reader import Recording, wait_for_recording

    for fn in (Recording.iter_events, follow_events, wait_for_recording):
        assert inspect.signature(fn).parameters["poll_s"].default == 0.05, fn


def test_replay_labels_stream_option_and_max_speed(tmp_path):
    """`replay-labels ... [--speed X | --max-speed] [--stream N]`: `--stream` re-publishes one
    stream's labels in their recorded order; `--max-speed` (speed None) does not pace."""
    from eventpipe.sinks import CallbackSink
    from recorders.replay import replay_labels

    path = tmp_path / "l.h5"
    msgs = [label_msg(i, stream=i % 3) for i in range(9)]
    for i, m in enumerate(msgs):
        m["wall_s"] = 1000.0 + 3600.0 * i  # an hour apart: pacing would never finish
    with EventRecorder(path, (8, 8)) as rec:
        rec.write_labels(msgs)
    got = []
    n = replay_labels(path, CallbackSink(got.append), speed=None, stream=1)
    assert n == 3 and [m["seq"] for m in got] == [1, 4, 7]
    assert all(m["stream"] == 1 and "wall_s" not in m for m in got)


def test_info_shows_completeness_and_drop_counts(tmp_path):
    """`eventpipe info OUT.h5`: "... completeness and drop counts" (the AsyncRecorder's drops
    are written into `/status`, "`info` shows them")."""
    import json

    from tests.recorders.test_cli import cli

    path = tmp_path / "r.h5"
    with EventRecorder(path, (64, 48)) as rec:
        rec.write(random_events(2, 100, size=(64, 48)))
        rec.set_dropped(3000, 2)
    rc, out, err = cli("info", str(path), "--json")
    assert rc == 0, err
    extras = json.loads(out)["extras"]
    assert (extras["complete"], extras["dropped_events"], extras["dropped_labels"]) == (True, 3000, 2)
    rc, out, _ = cli("info", str(path))
    text = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert (text["complete"], text["dropped_events"], text["dropped_labels"]) == ("True", "3000", "2")
