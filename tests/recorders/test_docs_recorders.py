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
