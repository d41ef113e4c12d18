"""Every source type end to end through the *pipeline*, on the real recordings.

source -> StreamPrep (filters, SpatialMap, StreamingBinner) -> StreamingSession
-> LabelDecoder -> labels, with a tiny random-weight model (input 32x32,
window 20 ms, one label per window).  Each test checks what really happened:

- every event of the recording went in (``events_in`` equals the expected
  array's count, or the source's counted drops explain the difference);
- one frame and one label per window spanned: ``(t_last - t_first) // W + 1``
  (the windows closed on event time plus the partial last one flushed at stop);
- per stream, label ``seq`` is 0, 1, 2, ... and ``t_us`` the window ends
  ``t_first + W * (seq + 1)``, increasing.

The wall-clock window timeout is off here (``window.timeout_s = None``) so the
number of windows depends on event time only, not on how loaded the machine is.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import zmq

from eventpipe.runtime.config import RunConfig, load_run_config
from eventpipe.runtime.model_loader import LoadedModel
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.sources import open_source
from eventpipe.sources.sender import Sender, send_events
from eventpipe.transport.wire import encode_packet
from snn import create_model
from tests.conftest import expected_events, sample_path
from tests.transport.faery_paced import send_paced
from tests.transport.helpers import free_tcp_port, peer_module, wait_for

W = 20_000            # window (us)
SIZE = (32, 32)       # model input (W, H)


def small_model(classes=4):
    """As tests/runtime/test_pipeline.py: a narrow meta_spikeformer_tiny whose neurons fire."""
    torch.manual_seed(0)
    m = create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 32, 48), num_classes=classes)
    with torch.no_grad():
        for _, p in m.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.6)
    return LoadedModel(m.eval(), [f"c{i}" for i in range(classes)], SIZE, "test")


@pytest.fixture(scope="module")
def loaded():
    return small_model()


def make_cfg(**over) -> RunConfig:
    cfg = load_run_config(None, [f"{k}={v}" for k, v in over.items()])
    cfg.sinks.console = False
    cfg.model.threads = 1
    cfg.decoder.emit_every = 1       # one label per window
    cfg.window.timeout_s = None      # windows close on event time only
    return cfg


def start(source, loaded, cfg=None) -> tuple[Pipeline, list]:
    labels: list = []
    pipe = Pipeline(cfg or make_cfg(), source, loaded, [], window_us=W, input_size=SIZE,
                    frame_norm="counts", on_label=labels.append)
    pipe.start()
    return pipe, labels


def finish(pipe: Pipeline, timeout: float = 30.0) -> dict:
    """Join both pipeline threads with a deadline (the source ended or stop() was called)."""
    deadline = time.monotonic() + timeout
    for t in pipe._threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in pipe._threads if t.is_alive()]
    if alive:
        pipe.stop(drain=False)
        pytest.fail(f"pipeline threads still running after {timeout} s: {alive}")
    if pipe.error is not None:
        raise pipe.error
    return pipe.summary()


def stop_when_all_in(pipe: Pipeline, src, n_events: int, timeout: float = 30.0) -> dict:
    """Open-ended (live) sources: wait until every event went in or was counted as
    dropped by the source, then stop (drain) and join."""
    ok = wait_for(lambda: pipe.metrics.events_in + src.stats.dropped >= n_events or
                  pipe.error is not None, timeout=timeout)
    pipe.stop()
    summary = finish(pipe)
    assert ok, f"only {pipe.metrics.events_in} of {n_events} events in after {timeout} s " \
               f"(source stats {src.stats})"
    return summary


def windows_spanned(ev) -> int:
    return (int(ev["t"][-1]) - int(ev["t"][0])) // W + 1


def check_run(summary, labels, ev, *, stream=0, n_events=None, dropped=0):
    """The counts and the label sequence of one stream over recording ``ev``."""
    n_events = len(ev) if n_events is None else n_events
    assert summary["events_in"] + dropped == n_events, summary
    assert summary["events_out_of_bounds"] == 0 and summary["events_filtered"] == 0
    mine = [m for m in labels if m["stream"] == stream]
    n = windows_spanned(ev)
    assert summary["frames"] + summary["frames_dropped"] == n, (summary, n)
    if summary["frames_dropped"] == 0:
        assert [m["seq"] for m in mine] == list(range(n))
        t0 = int(ev["t"][0])
        assert [m["t_us"] for m in mine] == [t0 + W * (i + 1) for i in range(n)]
    seqs = [m["seq"] for m in mine]
    assert seqs == sorted(set(seqs))
    ends = [m["t_us"] for m in mine]
    assert all(a < b for a, b in zip(ends, ends[1:]))
    for m in mine:
        assert m["label"] in {"c0", "c1", "c2", "c3"} and 0.0 <= m["score"] <= 1.0
        assert m["latency_ms"] is not None and m["latency_ms"] >= 0.0
    return mine


def chunks_by_time(ev, chunk_us=5_000):
    t = ev["t"]
    edges = np.searchsorted(t, np.arange(t[0], t[-1] + chunk_us, chunk_us), side="left")
    edges = np.unique(np.r_[edges, len(ev)])
    return [ev[a:b] for a, b in zip(edges[:-1], edges[1:]) if b > a]


# -- file: --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["evt2_sample.raw", "evt3_sample.raw", "sample.aedat4",
                                  "sample_nmnist.bin", "sample_ncars.dat"])
def test_file_max_speed_every_event_every_window(name, loaded):
    path = sample_path(name)
    ev = expected_events(name)
    opts = {}
    if name == "sample_ncars.dat":  # the .dat header carries no sensor size
        opts["sensor_size"] = (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1)
    src = open_source(f"file:{path}", speed=None, **opts)  # --max-speed
    try:
        pipe, labels = start(src, loaded)
        summary = finish(pipe)
    finally:
        src.close()
    assert src.state == "closed" and summary["source"]["dropped"] == 0
    assert summary["source"]["received"] == len(ev)
    check_run(summary, labels, ev)
    assert summary["labels"] == len(labels) == summary["frames"] == summary["steps"]


def test_file_real_time_is_paced(loaded):
    """speed=1.0: 50 ms of EVT2 (10.8 Mev/s) takes >= ~50 ms and still loses nothing."""
    ev = expected_events("evt2_sample.raw")
    src = open_source(f"file:{sample_path('evt2_sample.raw')}", speed=1.0)
    t = time.monotonic()
    try:
        pipe, labels = start(src, loaded)
        summary = finish(pipe)
    finally:
        src.close()
    assert time.monotonic() - t >= 0.045
    check_run(summary, labels, ev)


def test_cli_file_max_speed_jsonl(tmp_path, capsys):
    """The same through ``eventpipe run --source file:... --max-speed --jsonl``."""
    import io
    import json

    from eventpipe.cli import main

    ev = expected_events("sample.aedat4")
    out = tmp_path / "labels.jsonl"
    metrics = tmp_path / "m.json"
    argv = ["run", "--source", f"file:{sample_path('sample.aedat4')}",
            "--model", "meta_spikeformer_tiny", "--max-speed", "--jsonl", str(out), "--quiet",
            "--metrics-json", str(metrics), "--set", "model.num_classes=4",
            "--set", "model.threads=1",
            "--set", "input.size=[32, 32]", "--set", f"window.window_us={W}",
            "--set", "decoder.emit_every=1"]
    err = io.StringIO()
    assert main(argv, out=io.StringIO(), err=err) == 0, err.getvalue()
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    lines = [m for m in rows if m.get("type") != "metrics"]
    assert rows[-1]["type"] == "metrics"  # the final metrics message closes the file
    summary = json.loads(metrics.read_text())
    assert summary["events_in"] == len(ev) == 111954
    # the CLI keeps the wall-clock timeout on: a stall can close one extra (empty) window
    n = windows_spanned(ev)
    assert n <= summary["frames"] <= n + 1 and len(lines) == summary["labels"] == summary["frames"]
    assert [m["seq"] for m in lines] == list(range(len(lines)))
    # (cmd_run does not hand main()'s ``err`` to run(): the summary goes to sys.stderr)
    assert "events in 111,954 (dropped 0" in err.getvalue() + capsys.readouterr().err


# -- zmq+tcp:// (our sender) --------------------------------------------------------------

def test_zmq_real_recording(loaded):
    ev = expected_events("evt2_sample.raw")
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=4096) as src:
        pipe, labels = start(src, loaded)
        counts = send_events(chunks_by_time(ev), f"tcp://127.0.0.1:{src.port}", stream_id=3,
                             sensor_size=(640, 480))
        summary = stop_when_all_in(pipe, src, len(ev))
        st = src.stats
    assert counts["events"] == len(ev)
    assert (st.malformed, st.gaps, st.restarts) == (0, 0, 0)
    check_run(summary, labels, ev, stream=3, dropped=st.dropped)


def test_zmq_garbage_and_foreign_packets_mixed_in(loaded):
    """Garbage between real packets is counted as malformed; the pipeline keeps going."""
    ev = expected_events("sample.aedat4")
    chunks = chunks_by_time(ev, 10_000)
    good = encode_packet(chunks[0][:3], 1, 0, (320, 240))
    garbage = [b"hello world, not a packet", good[:-3], b"EVPK" + b"\x09" + good[5:],
               b"#!AER-DAT4.0\r\n" + b"\x00" * 40, b"", bytes(range(256)) * 4]
    n_bad = 0
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=4096) as src:
        pipe, labels = start(src, loaded)
        with Sender(f"tcp://127.0.0.1:{src.port}", stream_id=1, sensor_size=(320, 240)) as tx:
            for i, c in enumerate(chunks):
                if i % 4 == 1:
                    tx.send_raw(garbage[n_bad % len(garbage)])
                    n_bad += 1
                tx.send(c)
        summary = stop_when_all_in(pipe, src, len(ev))
        assert wait_for(lambda: src.stats.malformed == n_bad)
        st = src.stats
    assert n_bad >= 10 and st.malformed == n_bad and summary["source"]["malformed"] == n_bad
    assert st.packets == len(chunks) and st.gaps == 0
    check_run(summary, labels, ev, stream=1, dropped=st.dropped)


def test_zmq_sender_disconnects_and_comes_back(loaded):
    """A second sender process (new context, seq restarting at 0) continues the stream:
    the source counts one restart and the pipeline's windows carry on seamlessly."""
    ev = expected_events("sample.aedat4")
    chunks = chunks_by_time(ev, 10_000)
    half = len(chunks) // 2
    n_first = sum(len(c) for c in chunks[:half])
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=4096) as src:
        ep = f"tcp://127.0.0.1:{src.port}"
        pipe, labels = start(src, loaded)
        ctx1 = zmq.Context()
        try:
            send_events(chunks[:half], ep, stream_id=2, sensor_size=(320, 240), context=ctx1)
        finally:
            ctx1.term()  # the sender's process is gone (linger flushed its packets)
        assert wait_for(lambda: pipe.metrics.events_in + src.stats.dropped >= n_first, 20)
        ctx2 = zmq.Context()
        try:
            send_events(chunks[half:], ep, stream_id=2, sensor_size=(320, 240), context=ctx2)
        finally:
            ctx2.term()
        summary = stop_when_all_in(pipe, src, len(ev))
        st = src.stats
    assert (st.restarts, st.gaps, st.malformed) == (1, 0, 0)
    check_run(summary, labels, ev, stream=2, dropped=st.dropped)


# -- udp:// with a real faery sender ------------------------------------------------------

@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_udp_faery_sender(loaded):
    faery = peer_module("faery")
    fmt = "t64_x16_y16_on8"
    path = sample_path("evt2_sample.raw")
    ev = expected_events("evt2_sample.raw")
    with open_source(f"udp://127.0.0.1:0?format={fmt}", sensor_size=(640, 480)) as src:
        pipe, labels = start(src, loaded)
        # faery's encoder, paced on what the source took (deterministic: no kernel drops)
        send_paced(faery, path, ("127.0.0.1", src.port), fmt, src)
        summary = stop_when_all_in(pipe, src, len(ev), timeout=30)
        st = src.stats
    assert st.kernel_dropped == 0 and st.malformed == 0
    assert st.received == len(ev) and summary["events_in"] + st.dropped == len(ev)
    check_run(summary, labels, ev, dropped=st.dropped)


# -- dv:// against a real dv-processing NetworkWriter -------------------------------------

def test_dv_network_writer(loaded):
    peer_module("dv_processing")
    from tests.transport.test_dv import DvServer

    n = 12_000
    ev = expected_events("sample.aedat4")[:n]
    port = free_tcp_port()
    srv = DvServer(port, "LZ4", 0, n, per_packet=3000, clients=1)
    try:
        srv.wait_line("listening")
        with open_source(f"dv://127.0.0.1:{port}") as src:
            pipe, labels = start(src, loaded)
            assert src.wait_connected(10)
            srv.wait_line("sent")
            summary = stop_when_all_in(pipe, src, n, timeout=20)
            st = src.stats
    finally:
        srv.stop()
    assert st.malformed == 0 and st.packets == 4
    assert summary["source"]["received"] == n
    check_run(summary, labels, ev, dropped=st.dropped)


# -- synthetic: ---------------------------------------------------------------------------

def test_synthetic_labels_carry_truth(loaded):
    from eventpipe.synthetic import CLASS_NAMES, SyntheticStream

    spec = dict(seed=4, switch_every_s=0.3, sensor_size=(64, 64), duration_s=0.7)
    pkts = list(SyntheticStream(**spec))
    ev = np.concatenate([p.events for p in pkts])
    src = open_source("synthetic:seed=4,switch_s=0.3,size=64x64,duration_s=0.7", speed=None)
    try:
        pipe, labels = start(src, loaded)
        summary = finish(pipe)
    finally:
        src.close()
    mine = check_run(summary, labels, ev)
    # a window's truth is that of its newest packet (the last one starting before its end)
    starts = np.array([int(p.events["t"][0]) for p in pkts])
    truths = [m["truth"] for m in mine]
    assert truths == [pkts[int(np.searchsorted(starts, m["t_us"], "left")) - 1].truth_name
                      for m in mine]
    ref = SyntheticStream(**spec)
    assert all(p.truth_name == CLASS_NAMES[ref.truth_at(int(p.events["t"][0]))] for p in pkts)
    assert len(set(truths)) >= 2  # the action switched during the run
