"""End-to-end runtime benchmark: a >= 10 Mev/s stream in real time through the pipeline.

The feed is the real EVT2 sample (539,481 events in 50 ms = 10.8 Mev/s) tiled
in time: a ``file:`` source with ``loop=True`` replays it back to back, each
pass shifted by the recording's span, paced at ``speed=1.0``.  By default the
sample is written once as ``.npy`` (so the benchmark measures the runtime, not
the EVT2 decoder); ``--feed evt2`` replays the .raw file itself, decoding it live.

The pipeline: ``meta_spikeformer_tiny`` (random weights, 12 classes, folded),
input 64x64, window 20 ms, one label per window (``emit_every=1``) => 50 labels/s
is real time.  Printed: labels/s, events in/dropped, the achieved event rate
(a file source never drops: if the pipeline is slow, back-pressure slows the
replay instead, so the event rate is the honest "dropped" figure for a file),
latency p50/p99 from the pipeline's metrics, process CPU time / wall, and the
goal check (2 cores: >= 50 labels/s, 0 events dropped, p99 <= 50 ms).

Then a per-stage timing of one window's work on the same data (read, spatial
map, binning, normalise, model step, label decoding), single-threaded.

    python benchmarks/e2e.py [--seconds 15] [--size 64] [--threads 1] [--feed npy|evt2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WINDOW_US = 20_000


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def load_sample():
    from tests.conftest import EVENTS_DIR, SAMPLES, expected_events

    return expected_events("evt2_sample.raw"), EVENTS_DIR / SAMPLES["evt2_sample.raw"]


def run_pipeline(uri: str, args) -> dict:
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.run import build_pipeline

    cfg = load_run_config(None, [
        f'source.uri="{uri}"', "source.loop=true", "source.speed=1.0",
        "source.sensor_size=[640, 480]",
        'model.name="meta_spikeformer_tiny"', "model.num_classes=12",
        f"model.threads={args.threads}", f"input.size=[{args.size}, {args.size}]",
        f"window.window_us={WINDOW_US}", "decoder.emit_every=1", "sinks.console=false",
        "runtime.metrics_every_s=0",
    ])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights" is expected here
        pipe = build_pipeline(cfg, out=sys.stdout)
    pipe.warm_up()  # as `eventpipe run` does: kernels loaded, one blank model step
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    pipe.start()
    try:
        pipe.wait(args.seconds)
    finally:
        pipe.stop()
        pipe.source.close()
    wall = time.monotonic() - wall0
    cpu = cpu_seconds() - cpu0
    s = pipe.summary()
    s["wall_s"], s["cpu_s"] = wall, cpu
    lat = np.asarray(pipe.metrics._latencies)
    if lat.size:
        first_s = lat[: int(1e6 / WINDOW_US)]  # the first second of labels
        s["latency_first_s_max_ms"] = float(first_s.max())
        s["latency_after_first_s_p99_ms"] = float(np.percentile(lat[len(first_s):], 99)) \
            if lat.size > len(first_s) else None
    return s


def report(s: dict, args, rate_src: float) -> bool:
    lag_events = s["source"].get("received", 0) - s["events_in"]
    ev_rate = s["events_in"] / s["wall_s"]
    print(f"feed: {args.feed} tiled EVT2 sample ({rate_src / 1e6:.2f} Mev/s of event time), "
          f"speed 1.0, {args.seconds:.0f} s; model meta_spikeformer_tiny {args.size}x{args.size}, "
          f"window {WINDOW_US // 1000} ms, threads {args.threads}; "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}")
    print(f"labels/s: {s['labels'] / s['wall_s']:.1f} ({s['labels']} labels, {s['steps']} steps "
          f"in {s['wall_s']:.1f} s)")
    print(f"events in: {s['events_in']:,} ({ev_rate / 1e6:.2f} Mev/s achieved, "
          f"{ev_rate / rate_src * 100:.1f}% of real time); dropped: {s['events_dropped']:,} "
          f"events, {s['frames_dropped']} frames; left in queues: {lag_events:,}")
    p50, p99 = s["latency_p50_ms"], s["latency_p99_ms"]
    print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms" if p50 is not None else "latency: -")
    if s.get("latency_after_first_s_p99_ms") is not None:
        print(f"latency: max over the first second {s['latency_first_s_max_ms']:.1f} ms, "
              f"p99 after it {s['latency_after_first_s_p99_ms']:.1f} ms")
    print(f"CPU: {s['cpu_s']:.1f} s CPU / {s['wall_s']:.1f} s wall = "
          f"{s['cpu_s'] / s['wall_s'] * 100:.0f}% (of one core)")
    lps = s["labels"] / s["wall_s"]
    real_time = ev_rate >= 0.98 * rate_src
    ok = lps >= 0.98 * 1e6 / WINDOW_US and s["events_dropped"] == 0 and \
        s["frames_dropped"] == 0 and real_time and p99 is not None and p99 <= 50.0
    print(f"goal (>= 50 labels/s, 0 dropped, kept real time, p99 <= 50 ms): "
          f"{'MET' if ok else 'NOT MET'} (labels/s {lps:.1f}, dropped {s['events_dropped']}, "
          f"real time {'yes' if real_time else 'no'}, p99 "
          f"{'-' if p99 is None else f'{p99:.1f}'} ms)")
    return ok


def stage_timing(ev: np.ndarray, args, n_windows: int = 60) -> None:
    """One window's work, stage by stage, single-threaded, on the sample's events."""
    import torch

    from eventpipe.labels import LabelDecoder
    from eventpipe.runtime.model_loader import load_model
    from eventpipe.represent import InputRecipe, normalise
    from eventpipe.runtime.preprocess import StreamPrep
    from snn.stepper import make_stepper
    from snn.streaming import StreamingSession

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model("meta_spikeformer_tiny", num_classes=12)
    torch.set_num_threads(args.threads)
    model = make_stepper(loaded.model, "cpu")
    session = StreamingSession(model)
    dec = LabelDecoder(loaded.class_names, emit_every=1)
    recipe = InputRecipe(size=(args.size, args.size), window_us=WINDOW_US)
    prep = StreamPrep(0, (640, 480), recipe=recipe)
    span = int(ev["t"][-1]) - int(ev["t"][0]) + 1
    per_window = int(len(ev) * WINDOW_US / span)
    t = {"spatial map": 0.0, "binning": 0.0, "normalise": 0.0, "model step": 0.0,
         "label decode": 0.0}
    # 10 ms packets as the file source delivers them
    edges = np.searchsorted(ev["t"], np.arange(ev["t"][0], ev["t"][-1] + 10_000, 10_000))
    packets = [ev[a:b] for a, b in zip(edges[:-1], np.r_[edges[1:-1], len(ev)]) if b > a]
    k = 0
    shift = 0
    for w in range(n_windows):
        frames = None
        while True:
            p = packets[k % len(packets)]
            if k and k % len(packets) == 0:
                shift += span
            k += 1
            if shift:
                p = p.copy()
                p["t"] += shift
            t0 = time.perf_counter()
            mapped, _ = prep.map.apply(p)
            t1 = time.perf_counter()
            out = prep.input.binner.push(mapped)
            t2 = time.perf_counter()
            t["spatial map"] += t1 - t0
            t["binning"] += t2 - t1
            if len(out):
                frames = out
                break
        t0 = time.perf_counter()
        x = normalise(recipe, frames[:1])[0]
        t1 = time.perf_counter()
        logits = session.step({0: x})
        t2 = time.perf_counter()
        dec.step(logits[0][None], streams=[0], seq=w, t_us=0, t_arrival=time.monotonic())
        t3 = time.perf_counter()
        t["normalise"] += t1 - t0
        t["model step"] += t2 - t1
        t["label decode"] += t3 - t2
    total = sum(t.values())
    print(f"per-stage time per 20 ms window ({per_window:,} events/window, {n_windows} windows, "
          f"threads {args.threads}):")
    for name, v in t.items():
        print(f"  {name:<13} {v / n_windows * 1e3:7.2f} ms  ({v / total * 100:4.1f}%)")
    print(f"  {'total':<13} {total / n_windows * 1e3:7.2f} ms  (budget 20 ms per window)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--feed", choices=("npy", "evt2"), default="npy")
    ap.add_argument("--no-stages", action="store_true", help="skip the per-stage timing")
    args = ap.parse_args(argv)

    ev, raw_path = load_sample()
    span_us = int(ev["t"][-1]) - int(ev["t"][0]) + 1  # the loop shift
    rate = len(ev) / (span_us * 1e-6)
    with tempfile.TemporaryDirectory() as tmp:
        if args.feed == "npy":
            from eventpipe.io.plain import write_npy
            path = Path(tmp) / "evt2_sample.npy"
            write_npy(path, ev)
        else:
            path = raw_path
        s = run_pipeline(f"file:{path}", args)
    ok = report(s, args, rate)
    if not args.no_stages:
        stage_timing(ev, args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
