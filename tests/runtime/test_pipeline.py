"""The runtime end to end over real sockets, on the real recordings."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import torch

from eventpipe.runtime.config import RunConfig, load_run_config
from eventpipe.runtime.model_loader import LoadedModel
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.sources import open_source
from eventpipe.sources.sender import send_events
from snn import create_model
from tests.conftest import expected_events


def small_model(classes=4):
    torch.manual_seed(0)
    m = create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 32, 48), num_classes=classes)
    with torch.no_grad():  # weights large enough that neurons fire and logits differ
        for name, p in m.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.6)
    return LoadedModel(m.eval(), [f"c{i}" for i in range(classes)], (32, 32), "test")


def make_cfg(**over) -> RunConfig:
    cfg = load_run_config(None, [f"{k}={v}" for k, v in over.items()])
    cfg.sinks.console = False
    cfg.model.threads = 1
    return cfg


def drain_when_all_in(pipe, n_events, timeout_s=30.0):
    """Wait (on an event, with a timeout) until ``n_events`` were read, then drain and stop."""
    waiter = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if pipe.metrics.events_in >= n_events:
            break
        waiter.wait(0.05)
    pipe.stop()
    pipe.wait()


def run_pipeline(cfg, source, loaded, window_us=20_000, timeout=60):
    labels = []
    pipe = Pipeline(cfg, source, loaded, [], window_us=window_us, input_size=(32, 32),
                    frame_norm="counts", on_label=labels.append)
    pipe.start()
    return pipe, labels


def test_zmq_source_to_labels_on_a_real_recording():
    ev = expected_events("evt2_sample.raw")
    cfg = make_cfg(**{"decoder.emit_every": 1})
    loaded = small_model()
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        pipe, labels = run_pipeline(cfg, src, loaded)
        chunks = np.array_split(ev, 50)
        send_events(chunks, f"tcp://127.0.0.1:{src.port}", sensor_size=(640, 480))
        drain_when_all_in(pipe, len(ev))  # the source is open-ended
    summary = pipe.summary()
    assert summary["events_in"] == len(ev)
    n_windows = (int(ev["t"].max()) - int(ev["t"][0])) // 20_000  # closed on event time
    assert summary["frames"] >= n_windows
    assert len(labels) == summary["frames"]  # emit_every=1: one label per step
    for m in labels:
        assert {"stream", "seq", "t_us", "label", "score", "topk", "latency_ms"} <= set(m)
        assert m["label"] in loaded.class_names and 0 <= m["score"] <= 1
    assert [m["seq"] for m in labels] == list(range(len(labels)))
    ends = [m["t_us"] for m in labels]
    assert ends == sorted(ends) and ends[0] == int(ev["t"][0]) + 20_000


def test_two_streams_share_a_batch_but_not_state():
    """Labels of a stream are identical whether or not another stream runs beside it."""
    ev = expected_events("evt2_sample.raw")[:200_000]
    other = expected_events("evt3_sample.raw")
    other = other[other["x"] < 640]
    other = other[other["y"] < 480]

    def run(streams):
        cfg = make_cfg(**{"decoder.emit_every": 1, "decoder.ema": 0.0})
        loaded = small_model()
        with open_source("zmq+tcp://127.0.0.1:0", queue_size=4096) as src:
            pipe, labels = run_pipeline(cfg, src, loaded)
            total = 0
            for sid, e in streams:
                send_events(np.array_split(e, 20), f"tcp://127.0.0.1:{src.port}", stream_id=sid,
                            sensor_size=(640, 480))
                total += len(e)
            drain_when_all_in(pipe, total)
        return pipe, labels

    _, alone = run([(7, ev)])
    pipe, both = run([(7, ev), (9, other)])
    assert {m["stream"] for m in both} == {7, 9}
    mine = [(m["seq"], m["label"], round(m["score"], 5)) for m in both if m["stream"] == 7]
    assert mine == [(m["seq"], m["label"], round(m["score"], 5)) for m in alone]


def test_synthetic_source_tags_truth_and_cli_writes_jsonl(tmp_path):
    from eventpipe.cli import main

    out = tmp_path / "labels.jsonl"
    metrics = tmp_path / "metrics.json"
    argv = ["run", "--source", "synthetic:seed=3,duration_s=1.0,size=64x64",
            "--model", "meta_spikeformer_tiny", "--max-speed", "--jsonl", str(out), "--quiet",
            "--metrics-json", str(metrics), "--set", "model.num_classes=12",
            "--set", "input.size=[32, 32]", "--set", "decoder.emit_every=1",
            "--set", "model.threads=1"]
    err = io.StringIO()
    assert main(argv, out=io.StringIO(), err=err) == 0
    everything = [json.loads(x) for x in out.read_text().splitlines()]
    lines = [m for m in everything if m.get("type") != "metrics"]
    assert everything[-1]["type"] == "metrics" and everything[-1]["labels"] == 20
    from eventpipe.synthetic import SyntheticStream
    stream = SyntheticStream(seed=3, sensor_size=(64, 64))
    assert len(lines) == 20  # 1 s of 50 ms windows
    for m in lines:
        assert m["truth"] == __import__("eventpipe.synthetic", fromlist=["CLASS_NAMES"]).CLASS_NAMES[
            stream.truth_at(m["t_us"] - 1)]
    summary = json.loads(metrics.read_text())
    assert summary["labels"] == 20 and summary["events_dropped"] == 0


def test_video_records_frames_with_labels(tmp_path):
    import cv2

    from eventpipe.render import view_layout

    from eventpipe.cli import main

    video = tmp_path / "run.avi"
    argv = ["run", "--source", "synthetic:seed=5,duration_s=0.5,size=64x64", "--max-speed",
            "--model", "meta_spikeformer_tiny", "--quiet", "--video", str(video),
            "--set", "model.num_classes=12", "--set", "input.size=[32, 32]",
            "--set", "model.threads=1"]
    assert main(argv, out=io.StringIO(), err=io.StringIO()) == 0
    cap = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, im = cap.read()
        if not ok:
            break
        w, h = view_layout((32, 32)).size  # the 32x32 input scaled up, and the label panel
        assert im.shape[:2] == (h, w) and im.std() > 0
        n += 1
    assert n == 10  # 0.5 s of 50 ms windows
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20.0)  # 1e6 / stride: real time


def test_view_without_a_display_is_a_clear_error(tmp_path, monkeypatch):
    """Checked before Qt is touched (Qt aborts the process when it finds no display)."""
    from eventpipe.cli import main

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    err = io.StringIO()
    rc = main(["run", "--source", "synthetic:duration_s=0.1", "--model", "meta_spikeformer_tiny",
               "--view", "--set", "model.num_classes=12"], out=io.StringIO(), err=err)
    assert rc == 1 and "--view needs a display" in err.getvalue()


def test_unknown_config_key_is_a_clear_cli_error(tmp_path):
    from eventpipe.cli import main

    cfg = tmp_path / "bad.toml"
    cfg.write_text("[window]\nwindow_ms = 10\n")
    err = io.StringIO()
    assert main(["run", "--config", str(cfg)], out=io.StringIO(), err=err) == 4  # ExitStatus.CONFIG
    assert "window.window_ms" in err.getvalue() and "window_us" in err.getvalue()


def test_filters_run_per_stream_with_memory():
    """Pipeline filtering equals the one-shot filters on the whole recording."""
    from eventpipe.kernels import denoise, refractory_period

    ev = expected_events("evt2_sample.raw")[:100_000]
    cfg = make_cfg(**{"filters.refractory_us": 500, "filters.denoise_us": 3000})
    with open_source("zmq+tcp://127.0.0.1:0") as src:
        pipe, _ = run_pipeline(cfg, src, small_model())
        send_events(np.array_split(ev, 17), f"tcp://127.0.0.1:{src.port}", sensor_size=(640, 480))
        drain_when_all_in(pipe, len(ev))
    once = refractory_period(ev, 500, sensor_size=(640, 480))
    twice = denoise(once.events, 3000)
    assert pipe.summary()["events_filtered"] == once.n_removed + twice.n_removed


@pytest.mark.parametrize("channels", ["polarity", "halves"])
def test_runtime_frames_equal_training_frames(channels):
    """What the runtime feeds the model is what training fed it (same binning, pooling, log);
    tests/represent checks every recipe option."""
    from eventpipe.represent import InputRecipe, apply
    from eventpipe.runtime.preprocess import StreamPrep

    ev = expected_events("sample_nmnist.bin")  # 34x34 -> 17x17: sum pooling by 2, mean scale
    recipe = InputRecipe(size=(17, 17), window_us=40_000, channels=channels,
                         normalisation="log1p", pooling="mean", clip_count=255)
    prep = StreamPrep(0, (34, 34), recipe=recipe)
    got = []
    for chunk in np.array_split(ev, 13):
        got += prep.push(chunk, 0.0)
    T = len(got)
    assert T == (int(ev["t"][-1]) - int(ev["t"][0])) // 40_000
    want = apply(recipe, ev, (34, 34), t0=int(ev["t"][0]), n_windows=T)
    assert torch.equal(torch.stack([f.frame for f in got]), want)
    assert [f.t_us for f in got] == [int(ev["t"][0]) + 40_000 * (k + 1) for k in range(T)]


def test_video_source_through_the_emulator_to_labels(tmp_path):
    """video:PATH -> DVS emulator -> pipeline: a moving bar gives events, frames and labels."""
    import cv2

    path = tmp_path / "bar.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (64, 64))
    for k in range(30):
        img = np.zeros((64, 64, 3), np.uint8)
        img[:, 2 * k:2 * k + 6] = 255
        vw.write(img)
    vw.release()
    src = open_source(f"video:{path}", speed=None, sensor_size=(64, 64), start=False)
    assert src.sensor_size == (64, 64)
    cfg = make_cfg(**{"decoder.emit_every": 1})
    pipe, labels = run_pipeline(cfg, src, small_model())
    pipe.wait()
    src.close()
    s = pipe.summary()
    assert s["events_in"] > 1000 and s["frames"] >= 25  # 0.58 s of video in 20 ms windows
    assert len(labels) == s["frames"]


def test_stream_ids_past_max_streams_are_dropped_counted_and_said():
    """Each stream id that arrives gets a windower and filters (~0.6 MB at 640x480): a sender
    cycling through stream ids grew a run without bound (300 ids: +176 MB).  Past
    ``runtime.max_streams`` a new id's events are dropped, counted and said; the streams
    admitted first run on."""
    ev = expected_events("evt2_sample.raw")[:20_000]
    cfg = make_cfg(**{"runtime.max_streams": 3, "decoder.emit_every": 1})
    with open_source("zmq+tcp://127.0.0.1:0", queue_size=4096) as src:
        pipe, labels = run_pipeline(cfg, src, small_model())
        for sid in range(8):
            send_events([ev], f"tcp://127.0.0.1:{src.port}", stream_id=sid,
                        sensor_size=(640, 480))
        drain_when_all_in(pipe, 8 * len(ev))
    summary = pipe.summary()
    assert sorted(pipe.preps) == [0, 1, 2]
    assert {m["stream"] for m in labels} == {0, 1, 2}
    assert summary["events_in"] == 8 * len(ev)
    assert summary["events_over_max_streams"] == 5 * len(ev)
    assert (f"{5 * len(ev):,} events dropped: their stream ids came after the first 3 "
            "(runtime.max_streams; raise it with --set runtime.max_streams=N)") in summary["advice"]
