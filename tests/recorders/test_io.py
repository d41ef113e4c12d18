"""Recordings through eventpipe.io, convert, info and the file source, like any format."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.convert import convert
from eventpipe.events import EVENT_DTYPE
from eventpipe.info import recording_summary
from eventpipe.io import detect_format, iter_events, open_reader, read_events
from eventpipe.io.chunking import rebatch
from eventpipe.sources.file import FileSource
from recorders import EventRecorder, SliceError, open_recording
from tests.conftest import expected_events, sample_path
from tests.recorders.conftest import label_msg, random_events


def test_convert_a_real_evt3_recording_to_h5_and_back(tmp_path):
    src = sample_path("evt3_sample.raw")
    want = expected_events("evt3_sample.raw")  # an independent decoder's output
    h5 = tmp_path / "s.h5"
    assert convert(src, h5) == len(want)
    assert detect_format(h5).name == "h5"
    got = read_events(h5)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, want)
    with open_recording(h5) as rec:
        assert rec.info.sensor_size == open_reader(src).info.sensor_size
    back = tmp_path / "back.raw"
    convert(h5, back)
    np.testing.assert_array_equal(read_events(back), want)


def test_iter_events_through_eventpipe_io(tmp_path):
    ev = random_events(30, 100_000)
    path = tmp_path / "r.h5"
    with EventRecorder(path, (640, 480), chunk_events=4096) as rec:
        rec.write(ev)
    for kw in ({"chunk_events": 7777}, {"chunk_us": 3_000}, {"chunk_events": 500, "chunk_us": 900}):
        got = list(iter_events(path, **kw))
        want = list(rebatch([ev], **kw))
        assert [len(c) for c in got] == [len(c) for c in want]
        np.testing.assert_array_equal(np.concatenate(got), ev)
    # a small block size makes the reader go through many blocks: same events
    np.testing.assert_array_equal(open_reader(path, block_bytes=100_000).read(), ev)


def test_info_summary_names_labels_compression_and_index(tmp_path):
    path = tmp_path / "r.h5"
    ev = random_events(31, 5000, t0=1_000_000)
    with EventRecorder(path, (640, 480), compression="gzip:1", index_period_us=2000) as rec:
        rec.write(ev)
        rec.write_labels([label_msg(i, stream=i % 2) for i in range(7)])
    s = recording_summary(path)
    assert s["format"] == "h5" and s["events"] == 5000 and s["sensor_size"] == [640, 480]
    assert s["duration_us"] == int(ev["t"][-1] - ev["t"][0])
    ex = s["extras"]
    assert ex["labels"] == 7 and ex["label_streams"] == [0, 1] and ex["compression"] == "gzip:1"
    assert ex["complete"] is True and ex["index"].endswith("period 2000 us")
    n_periods = len(np.unique(ev["t"] // 2000))
    assert ex["index"].startswith(f"{n_periods:,} entries")


def test_reader_slices_in_seconds_from_the_first_event(tmp_path):
    path = tmp_path / "r.h5"
    ev = random_events(32, 200_000, step_max=20, t0=7_000_000)  # ~2 s of events
    with EventRecorder(path, (640, 480)) as rec:
        rec.write(ev)
    rel = ev["t"] - ev["t"][0]
    got = open_reader(path, start_s=0.5, end_s=1.25).read()
    np.testing.assert_array_equal(got, ev[(rel >= 500_000) & (rel < 1_250_000)])
    with pytest.raises(SliceError, match="outside the recording"):
        open_reader(path, start_s=100.0)


@pytest.mark.parametrize("kind", ["h5", "evt3"])
def test_file_source_replays_a_slice(tmp_path, kind):
    ev = random_events(33, 100_000, step_max=30)
    if kind == "h5":
        path = tmp_path / "r.h5"
        with EventRecorder(path, (640, 480)) as rec:
            rec.write(ev)
    else:
        path = tmp_path / "r.raw"
        convert_src = tmp_path / "r.npy"
        np.save(convert_src, ev)
        convert(convert_src, path, to="evt3", sensor_size=(640, 480))
        ev = read_events(path)
    src = FileSource(path, start_s=0.3, end_s=0.9, chunk_us=50_000)
    with src.start():
        got = np.concatenate([b.events for b in src.packets(timeout=10)])
    rel = ev["t"] - ev["t"][0]
    np.testing.assert_array_equal(got, ev[(rel >= 300_000) & (rel < 900_000)])
