"""``eventpipe record``, ``info``, ``replay-labels``, ``run --record`` and ``run --start/--end``."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
import zmq

from eventpipe.cli import main
from eventpipe.io import read_events
from recorders import EventRecorder, open_recording
from recorders.replay import record_source
from tests.conftest import expected_events, sample_path
from tests.recorders.conftest import label_msg, random_events

TINY = ["--model", "meta_spikeformer_tiny", "--set", "model.num_classes=12",
        "--set", "input.size=[32, 32]", "--set", "decoder.emit_every=1",
        "--set", "model.threads=1"]


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_record_a_file_source(tmp_path):
    src = sample_path("evt3_sample.raw")
    dst = tmp_path / "out.h5"
    rc, out, err = cli("record", f"file:{src}", str(dst), "--compression", "gzip:1")
    assert rc == 0, err
    want = expected_events("evt3_sample.raw")
    assert f"recorded {len(want):,} events" in out and "gzip:1" in out
    np.testing.assert_array_equal(read_events(dst), want)
    with open_recording(dst) as rec:
        assert rec.info.source_uri == f"file:{src}" and rec.info.complete
    before = dst.read_bytes()
    rc, out, err = cli("record", f"file:{src}", str(dst))  # exists: refused, untouched
    assert rc == 4 and "refusing to overwrite" in err and dst.read_bytes() == before


def test_record_over_an_existing_out_is_exit_4_before_the_source_opens(tmp_path, monkeypatch):
    """``record SOURCE OUT`` where OUT exists, without ``--overwrite``: one line naming OUT,
    exit 4 (a flag's value, as ``run --record`` over an existing file), before the source
    opens; the file untouched.  Before: exit 1 (RUNTIME), from inside the recorder."""
    import recorders.replay as replay

    monkeypatch.setattr(replay, "record_source", lambda *a, **k: pytest.fail("recording started"))
    dst = tmp_path / "old.h5"
    dst.write_bytes(b"keep me")
    rc, out, err = cli("record", "synthetic:", str(dst), "--duration", "0.1")
    assert rc == 4 and out == "" and err.count("\n") == 1, (rc, err)
    assert err == (f"eventpipe: error: out {dst}: already exists; refusing to overwrite it "
                   "(pass --overwrite, or choose another name)\n")
    assert dst.read_bytes() == b"keep me"


def test_record_progress_line_and_duration(tmp_path):
    # a source paced at recorded speed (a recording of 20 s of events) cut after 1 s of wall
    # time (the synthetic source, used here before, took longer than 1 s to start on a
    # loaded machine)
    src = tmp_path / "src.h5"
    with EventRecorder(src, (64, 64)) as rec:
        rec.write(random_events(2, 20_000, size=(64, 64), step_max=2000))
    # decode it once here: with a cold Numba cache the file source's thread would spend the
    # whole 1 s compiling the decoder, and close() gives it only 5 s to stop
    with open_recording(src) as rec:
        assert rec.info.events == len(rec.events()) == 20_000
    progress = io.StringIO()
    res = record_source(f"file:{src}", tmp_path / "s.h5", duration_s=1.0, speed=1.0,
                        progress=progress, progress_every_s=0.0)
    text = progress.getvalue()
    assert res["events"] > 0 and 1.0 <= res["seconds"] < 10
    assert "events, " in text and "Mev/s" in text and " MB" in text
    with open_recording(tmp_path / "s.h5") as rec:
        assert rec.info.events == res["events"] and rec.info.sensor_size == (64, 64)
        assert rec.info.t_last - rec.info.t_first < 5_000_000  # cut well before 20 s


def test_info_shows_labels_compression_and_index(tmp_path):
    path = tmp_path / "r.h5"
    with EventRecorder(path, (640, 480), compression="lzf") as rec:
        rec.write(random_events(40, 10_000))
        rec.write_labels([label_msg(i) for i in range(3)])
    rc, out, err = cli("info", str(path))
    assert rc == 0, err
    assert "h5 - eventpipe recording" in out and "events          10,000" in out
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["labels"].strip() == "3" and lines["compression"].strip() == "lzf"
    assert "entries, period 1000 us" in lines["index"]
    assert lines["duration"].endswith(" s")
    rc, out, _ = cli("info", str(path), "--json")
    assert json.loads(out)["extras"]["labels"] == 3


def test_bad_recordings_exit_with_status_3(tmp_path):
    import h5py

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    rc, out, err = cli("info", str(foreign))
    assert rc == 3 and "foreign.h5" in err and "not an eventpipe recording" in err
    rc, out, err = cli("replay-labels", str(foreign), "--publish", "tcp://127.0.0.1:0",
                       "--wait-subscribers", "0")
    assert rc == 3 and "not an eventpipe recording" in err


class _Lines(io.StringIO):
    """An err stream that reports the endpoint line the command prints."""

    def __init__(self):
        super().__init__()
        self.endpoint = None
        self.ready = threading.Event()

    def write(self, s):
        if "publishing labels on " in s:
            self.endpoint = s.split("publishing labels on ")[1].strip()
            self.ready.set()
        return super().write(s)


@pytest.mark.timeout(60)
def test_replay_labels_publishes_with_the_original_timing(tmp_path):
    path = tmp_path / "r.h5"
    msgs = [label_msg(i, stream=i % 2) for i in range(6)]
    for i, m in enumerate(msgs):
        m["wall_s"] = 5000.0 + 0.1 * i  # recorded 100 ms apart
    with EventRecorder(path, (64, 48)) as rec:
        rec.write_labels(msgs)
    err, out = _Lines(), io.StringIO()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("rc", main(
        ["replay-labels", str(path), "--publish", "tcp://127.0.0.1:0", "--wait-subscribers", "20"],
        out=out, err=err)))
    t.start()
    assert err.ready.wait(20)
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    t_connect = time.monotonic()  # the publisher starts its clock after this subscription
    sub.connect(err.endpoint)
    got, arrivals = [], []
    try:
        while len(got) < len(msgs):
            assert sub.poll(20_000), "no label within 20 s"
            topic, payload = sub.recv_multipart()
            arrivals.append(time.monotonic())
            got.append((topic, json.loads(payload)))
    finally:
        sub.close()
        t.join(20)
    assert result["rc"] == 0 and "published 6 labels" in out.getvalue()
    for (topic, m), want in zip(got, msgs):
        assert topic == str(want["stream"]).encode()
        assert (m["seq"], m["t_us"], m["label"], m["stream"]) == \
            (want["seq"], want["t_us"], want["label"], want["stream"])
        assert "wall_s" not in m
    # 5 gaps of 100 ms: the last label cannot leave before the publisher's clock start + 0.5 s
    # (measured from before the subscription, so a first label that arrives late on a
    # loaded machine does not shorten the span)
    assert arrivals[-1] - t_connect >= 0.5


@pytest.mark.timeout(300)
def test_run_records_events_and_labels_then_replays_a_slice(tmp_path):
    rec_path = tmp_path / "run.h5"
    jsonl = tmp_path / "labels.jsonl"
    rc, out, err = cli("run", "--source", "synthetic:seed=3,duration_s=1.0,size=64x64",
                       "--max-speed", "--quiet", "--jsonl", str(jsonl), "--record",
                       str(rec_path), *TINY)
    assert rc == 0, err
    assert "recorded" in err and "dropped 0 events, 0 labels" in err
    emitted = [json.loads(x) for x in jsonl.read_text().splitlines()]
    emitted = [m for m in emitted if m.get("type") != "metrics"]
    from eventpipe.synthetic import SyntheticStream
    want_ev = np.concatenate([pk.events for pk in SyntheticStream(
        seed=3, sensor_size=(64, 64), duration_s=1.0)])
    with open_recording(rec_path) as rec:
        np.testing.assert_array_equal(rec.events(), want_ev)
        labels = rec.label_messages()
        assert rec.info.sensor_size == (64, 64) and rec.complete
    assert len(labels) == len(emitted) == 20
    for g, m in zip(labels, emitted):
        assert (g["seq"], g["t_us"], g["label"], g["truth"]) == \
            (m["seq"], m["t_us"], m["label"], m["truth"])
        assert g["score"] == pytest.approx(m["score"], rel=1e-6)

    # replay a slice of the recording through the model
    jsonl2 = tmp_path / "slice.jsonl"
    rc, out, err = cli("run", "--source", f"file:{rec_path}", "--start", "0.25", "--end", "0.75",
                       "--max-speed", "--quiet", "--jsonl", str(jsonl2), *TINY)
    assert rc == 0, err
    sliced = [json.loads(x) for x in jsonl2.read_text().splitlines()]
    sliced = [m for m in sliced if m.get("type") != "metrics"]
    t0 = int(want_ev["t"][0])
    assert sliced and all(t0 + 250_000 <= m["t_us"] <= t0 + 800_000 for m in sliced)
    metrics = [json.loads(x) for x in jsonl2.read_text().splitlines()][-1]
    rel = want_ev["t"] - t0
    assert metrics["events_in"] == int(((rel >= 250_000) & (rel < 750_000)).sum())


@pytest.mark.parametrize("args, text", [
    (["--duration", "-1"], "--duration: -1.0 is out of range (must be > 0)"),
    (["--duration", "nan"], "--duration: expected a finite number, got nan"),
    (["--speed", "0"], "--speed: 0.0 is out of range (must be > 0)"),
    (["--flush-every", "0"], "--flush-every: 0.0 is out of range (must be > 0)"),
    (["--compression", "foo"], "--compression: unknown compression 'foo'"),
    (["--compression", "gzip:12"], "gzip level must be 0..9"),
])
def test_record_bad_options_are_config_errors_before_the_source_opens(tmp_path, args, text):
    # a UDP source that nobody sends to: the options must be refused before it is waited on
    rc, _, err = cli("record", "udp://127.0.0.1:0", str(tmp_path / "r.h5"), *args)
    assert rc == 4 and err.count("\n") == 1 and text in err, err
    assert not (tmp_path / "r.h5").exists()


class _Interrupted(Exception):
    """What the test's own handler raises if a signal reaches it instead of the command's."""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_record_stopped_by_a_signal_finalises_the_file(tmp_path, monkeypatch, signum):
    """Ctrl-C (or SIGTERM, e.g. from ``timeout`` or a service manager) ends ``record`` as the end
    of the source does: exit 0, the summary line, a complete recording holding every event
    written.  (Before, SIGINT was ``error: interrupted`` with exit 130 and no summary, and
    SIGTERM killed the process with the file unfinalised: ``complete False``, the events since
    the last flush lost.)"""
    import recorders.replay as replay_mod

    written = []

    class SignalAfterFirstWrite(replay_mod.EventRecorder):
        def write(self, events):
            super().write(events)
            written.append(events.copy())
            if len(written) == 1:
                os.kill(os.getpid(), signum)  # handled in this (the main) thread

    def outside(signum_, frame):
        raise _Interrupted(signum_)

    monkeypatch.setattr(replay_mod, "EventRecorder", SignalAfterFirstWrite)
    dst = tmp_path / "s.h5"
    before = signal.signal(signum, outside)
    try:
        rc, out, err = cli("record", "synthetic:duration_s=600", str(dst))
        assert signal.getsignal(signum) is outside  # the command put the handler back
    finally:
        signal.signal(signum, before)
    assert rc == 0 and "error" not in err, (rc, err)
    assert 1 <= len(written) <= 2, len(written)  # stopped at the next loop turn
    want = np.concatenate(written)
    assert f"recorded {len(want):,} events" in out, out
    with open_recording(dst) as rec:
        assert rec.info.complete
        np.testing.assert_array_equal(rec.events(), want)


def _labelled(path, streams=(0, 1), n=4):
    with EventRecorder(path, (64, 48)) as rec:
        rec.write_labels([label_msg(i, stream=streams[i % len(streams)]) for i in range(n)])
    return path


@pytest.mark.parametrize("args, status, text", [
    (["--speed", "0"], 4, "--speed: 0.0 is out of range (must be > 0)"),
    (["--speed", "-2"], 4, "--speed: -2.0 is out of range (must be > 0)"),
    (["--speed", "nan"], 4, "--speed: expected a finite number, got nan"),
    (["--speed", "inf"], 4, "--speed: expected a finite number, got inf"),
    (["--wait-subscribers", "-1"], 4, "--wait-subscribers: -1.0 is out of range (must be >= 0)"),
    (["--wait-subscribers", "nan"], 4, "--wait-subscribers: expected a finite number, got nan"),
    (["--speed", "2", "--max-speed"], 2, "--speed and --max-speed exclude each other"),
    (["--stream", "7"], 3, "no labels of stream 7 (its label streams: [0, 1])"),
])
def test_replay_labels_bad_options_before_the_endpoint_is_bound(tmp_path, args, status, text):
    path = _labelled(tmp_path / "r.h5")
    rc, out, err = cli("replay-labels", str(path), "--publish", "tcp://127.0.0.1:0",
                       "--wait-subscribers", "0", *args)
    assert rc == status and err.count("\n") == 1 and text in err, err
    assert "publishing labels" not in err and out == ""


def test_replay_labels_of_a_recording_without_labels(tmp_path):
    """``eventpipe record`` records events only: nothing to replay is said, not a silent
    'published 0 labels' after waiting for subscribers."""
    path = tmp_path / "events_only.h5"
    with EventRecorder(path, (64, 48)) as rec:
        rec.write(random_events(1, 100))
    rc, out, err = cli("replay-labels", str(path), "--publish", "tcp://127.0.0.1:0",
                       "--wait-subscribers", "0")
    assert rc == 3 and err.count("\n") == 1 and out == "", err
    assert "events_only.h5" in err and "holds no labels" in err and "run --record" in err


def test_record_into_a_folder_that_does_not_exist_says_how_to_make_it(tmp_path):
    """docs/own_actions.md's first command records into ``takes/``: without the folder the
    one line says what to run."""
    out = tmp_path / "my takes" / "take1.h5"
    rc, _, err = cli("record", "synthetic:seed=1", str(out), "--duration", "1")
    assert rc == 4 and err.count("\n") == 1, err
    assert "does not exist (mkdir -p '" + str(out.parent) + "' first)" in err


@pytest.mark.parametrize("args, text", [
    (["--start", "3", "--end", "2"], "--end 2.0 must be after --start 3.0"),
    (["--start", "2", "--end", "2"], "--end 2.0 must be after --start 2.0"),
    (["--start", "-1"], "--start: -1.0 is out of range (must be >= 0)"),
    (["--start", "nan"], "--start: expected a finite number, got nan"),
    (["--end", "inf"], "--end: expected a finite number, got inf"),
    (["--end", "0"], "--end: 0.0 is out of range (must be > 0)"),
    (["--start", "1e300"], "--start: 1e+300 is out of range (must be <= 1000000000.0)"),
])
def test_run_slice_options_are_config_errors_before_anything_loads(tmp_path, args, text):
    """``run --start/--end`` (seconds after the recording's first event): one line naming the
    flag, exit 4, before the model loads (were exit 1, an OverflowError for inf, a 300-digit
    microsecond count for 1e300, and -1 silently taken as 0)."""
    path = tmp_path / "r.h5"
    with EventRecorder(path, (64, 48)) as rec:
        rec.write(random_events(1, 1000))
    rc, _, err = cli("run", "--source", f"file:{path}", "--max-speed", "--quiet", *args)
    assert rc == 4 and err.count("\n") == 1 and text in err, err


def test_record_or_convert_over_its_own_input_is_refused(tmp_path):
    """`record file:X X --overwrite` destroyed the recording it was reading (left with 0
    events), `record video:V V --overwrite` the video; `convert X X` worked by luck. The
    output being the input is a config error naming both, and the input is untouched."""
    import shutil

    rec = tmp_path / "take.h5"
    with EventRecorder(rec, (64, 48)) as w:
        w.write(random_events(1, 5000, size=(64, 48)))
    before = rec.read_bytes()
    link = tmp_path / "alias.h5"
    link.symlink_to(rec)
    video = tmp_path / "clip.avi"
    shutil.copy(sample_path("sample_ncars.dat"), video)   # any bytes: refused before reading
    for argv in (["record", f"file:{rec}", str(rec), "--overwrite"],
                 ["record", str(rec), str(link), "--overwrite"],
                 ["record", f"video:{video}", str(video), "--overwrite"],
                 ["convert", str(rec), str(link)],
                 ["run", "--source", f"file:{rec}", "--record", str(rec), "--max-speed"],
                 # the run's other outputs: these had replaced the recording with JSON
                 ["run", "--source", f"file:{rec}", "--jsonl", str(link), "--max-speed"],
                 ["run", "--source", f"file:{rec}", "--set", f"sinks.jsonl='{rec}'"],
                 ["run", "--source", f"file:{rec}", "--metrics-json", str(rec)]):
        rc, out, err = cli(*argv)
        assert rc == 4 and err.count("\n") == 1 and "is the input" in err, (argv, err)
    assert rec.read_bytes() == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_replay_labels_stopped_by_a_signal_says_what_it_sent(tmp_path, monkeypatch, signum):
    """Ctrl-C (or SIGTERM) during ``replay-labels`` stops the sending and ends as the end of
    the recording does: exit 0 and the summary, saying how many labels were not sent.
    (Before: ``error: interrupted``, exit 130, and no word of what was published.)"""
    from eventpipe.sinks import zmq_pub

    path = _labelled(tmp_path / "r.h5", n=4)  # labels recorded 10 ms apart
    sent = []
    real_write = zmq_pub.ZmqPubSink.write

    def write_then_signal(self, msg):
        real_write(self, msg)
        sent.append(msg)
        if len(sent) == 1:
            os.kill(os.getpid(), signum)  # handled in this (the main) thread

    def outside(signum_, frame):
        raise _Interrupted(signum_)

    monkeypatch.setattr(zmq_pub.ZmqPubSink, "write", write_then_signal)
    before = signal.signal(signum, outside)
    try:
        rc, out, err = cli("replay-labels", str(path), "--publish", "tcp://127.0.0.1:0",
                           "--wait-subscribers", "0")
        assert signal.getsignal(signum) is outside  # the command put the handler back
    finally:
        signal.signal(signum, before)
    assert rc == 0 and "error" not in err, (rc, err)
    assert len(sent) == 1
    assert out == f"published 1 labels from {path} (stopped by a signal; 3 of 4 not sent)\n"


def test_replay_labels_signal_while_waiting_for_a_subscriber(tmp_path):
    """A signal during ``--wait-subscribers`` ends the wait at once and sends nothing (before:
    the wait went on, then every label was sent)."""
    path = _labelled(tmp_path / "r.h5", n=4)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        rc, out, err = cli("replay-labels", str(path), "--publish", "tcp://127.0.0.1:0",
                           "--wait-subscribers", "60")
    finally:
        timer.cancel()
    assert rc == 0 and time.monotonic() - t0 < 30, (rc, err)
    assert "no subscriber" not in err and "error" not in err, err
    assert out == f"published 0 labels from {path} (stopped by a signal; 4 of 4 not sent)\n"


@pytest.mark.parametrize("what", ["folder", "missing folder", "existing file"])
def test_run_record_output_is_checked_before_anything_loads(tmp_path, monkeypatch, what):
    """``run --record OUT`` where OUT is a folder, in a folder that does not exist, or an
    existing file: one line naming ``--record``, exit 4, before the model loads (were: exit 1
    after the model loaded, 'already exists; ... (pass overwrite=True)', a Python argument
    the command line does not have, or the folders made silently)."""
    import eventpipe.runtime.run as runtime_run

    monkeypatch.setattr(runtime_run, "run", lambda *a, **k: pytest.fail("the run started"))
    src = tmp_path / "src.h5"
    with EventRecorder(src, (64, 48)) as rec:
        rec.write(random_events(1, 100))
    out = {"folder": tmp_path, "missing folder": tmp_path / "nope" / "r.h5",
           "existing file": tmp_path / "old.h5"}[what]
    if what == "existing file":
        out.write_bytes(b"keep me")
    rc, _, err = cli("run", "--source", f"file:{src}", "--max-speed", "--quiet",
                     "--record", str(out))
    assert rc == 4 and err.count("\n") == 1 and f"--record {out}" in err, err
    assert {"folder": "is a folder", "missing folder": "does not exist (mkdir -p",
            "existing file": "exists; a recording is never overwritten"}[what] in err
    assert not (tmp_path / "nope").exists()
    if what == "existing file":
        assert out.read_bytes() == b"keep me"


def test_view_dump_onto_a_file_is_refused_before_anything_loads(tmp_path, monkeypatch):
    import eventpipe.runtime.run as runtime_run

    monkeypatch.setattr(runtime_run, "run", lambda *a, **k: pytest.fail("the run started"))
    src = tmp_path / "src.h5"
    with EventRecorder(src, (64, 48)) as rec:
        rec.write(random_events(1, 100))
    rc, _, err = cli("run", "--source", f"file:{src}", "--max-speed", "--quiet",
                     "--view-dump", str(src))
    assert rc == 4 and err.count("\n") == 1, err
    assert f"--view-dump {src}: exists and is not a folder" in err
    # a folder under a file (was exit 1, 'Not a directory', once the run had started)
    rc, _, err = cli("run", "--source", f"file:{src}", "--max-speed", "--quiet",
                     "--view-dump", str(src / "dump"))
    assert rc == 4 and err.count("\n") == 1, err
    assert f"--view-dump {src / 'dump'}: {str(src)!r} is a file, not a folder" in err


def test_run_on_a_recording_of_no_events_says_so(tmp_path):
    """A recording of zero events with no sensor size (``record`` of a socket that sent
    nothing): the one line says the recording is empty (before: 'no events decoded as h5, so
    no sensor size (not a recording?)', doubting a file our own recorder wrote)."""
    path = tmp_path / "nothing.h5"
    with EventRecorder(path, None):
        pass
    rc, _, err = cli("run", "--source", f"file:{path}", "--max-speed", "--quiet")
    assert rc == 3 and err.count("\n") == 1, err
    assert "the h5 recording holds no events and states no sensor size: nothing to run" in err
    assert "not a recording" not in err


def _back_in_time(t) -> int:
    """Events earlier than the largest time before them, one event at a time."""
    count, top = 0, None
    for v in t.tolist():
        count += top is not None and v < top
        top = v if top is None else max(top, v)
    return count


def test_record_counts_time_going_backwards(tmp_path):
    """``record`` says how many events came earlier than an event before them (before: time
    going backwards was recorded without a word); a sorted source prints no such line."""
    ev = random_events(4, 20_000, size=(64, 48), sorted_t=False)
    src = tmp_path / "unsorted.npy"
    np.save(src, ev)
    want = _back_in_time(ev["t"])
    assert want > 1000
    rc, out, err = cli("record", f"file:{src}", str(tmp_path / "u.h5"))
    assert rc == 0, err
    assert (f"time went backwards: {want:,} events earlier than an event before them (recorded "
            "as they came; slices follow the running maximum)\n") in out
    np.testing.assert_array_equal(read_events(tmp_path / "u.h5"), ev)
    rc, out, err = cli("record", f"file:{sample_path('evt3_sample.raw')}", str(tmp_path / "s.h5"))
    assert rc == 0 and "time went backwards" not in out, (out, err)


def test_index_builder_counts_back_in_time_across_batches():
    from recorders.index import IndexBuilder

    rng = np.random.default_rng(9)
    t = np.cumsum(rng.integers(-30, 50, 5000)).astype(np.int64)
    for cuts in ([], [1, 2, 3], sorted(rng.integers(1, 5000, 40).tolist())):
        b, i = IndexBuilder(100), 0
        for j in [*cuts, len(t)]:
            b.add(t[i:j], i)
            i = j
        assert b.back_in_time == _back_in_time(t), cuts
    b = IndexBuilder(100)
    b.add(np.arange(1000, dtype=np.int64), 0)  # sorted: nothing counted
    assert b.back_in_time == 0


@pytest.mark.parametrize("kind", ["dat", "h5"])
def test_a_slice_past_the_end_names_the_recordings_span_for_every_format(tmp_path, kind):
    """``run --start`` past the end of a recording: exit 3 naming the file and its span, for a
    format filtered while read (.dat) as for a recording's seek (.h5) - the N-CARS sample spans
    99,952 us.  Before: the .dat ran zero events and exited 0."""
    src = sample_path("sample_ncars.dat")
    if kind == "h5":
        assert cli("convert", str(src), str(tmp_path / "r.h5"))[0] == 0
        src = tmp_path / "r.h5"
    rc, _, err = cli("run", "--source", f"file:{src}", "--start", "50", "--quiet", *TINY)
    assert rc == 3, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"eventpipe: error: {src}") and "outside the recording" in line, err
    assert "99952]" in line, err
    # a slice inside it still runs
    rc, _, err = cli("run", "--source", f"file:{src}", "--start", "0.05", "--quiet", *TINY)
    assert rc == 0 and "events in 980 " in err, err
