"""Synthetic action set speed: rendering, make_clip (render + emulate) and the live stream.

The workloads of docs/synthetic.md "Speed", each against the anchor of real time (the
1 s of the clip, or the stream's own duration: ``rt`` = seconds of action per second of
wall time, >= 1 keeps up with a live sensor):

- ``render_clip`` of a 1 s clip at 128x128 and 200 fps (201 frames), one clip per class,
  seeds 0..11 (the first call, which builds nothing, is timed like the others);
- ``make_clip`` of the same clips (render + emulate with the seed's sensor settings);
- ``SyntheticStream`` at 128x128 (default 3 s switches, 10 ms packets, STREAM_CONFIG),
  ``--stream-s`` seconds of packets.

One warm-up ``make_clip`` first (Numba compile / cache load).

    python benchmarks/synthetic.py [--quick] [--stream-s 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import positive_seconds  # noqa: E402
from eventpipe.synthetic import CLASS_NAMES, SyntheticStream, make_clip, render_clip  # noqa: E402

SIZE = (128, 128)
CLIP_US = 1_000_000



def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summary(name: str, secs: list[float], span_s: float) -> str:
    mean = sum(secs) / len(secs)
    return (f"{name:<24} min {min(secs) * 1e3:7.1f} ms  mean {mean * 1e3:7.1f} ms  "
            f"max {max(secs) * 1e3:7.1f} ms  rt (mean) {span_s / mean:6.1f}x  "
            f"rt (max) {span_s / max(secs):6.1f}x")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 classes and 3 s of stream")
    ap.add_argument("--stream-s", type=positive_seconds, default=9.0, help="seconds of stream")
    ap.add_argument("--size", type=int, default=SIZE[0], help="square sensor side (px)")
    ap.add_argument("--clip-ms", type=int, default=CLIP_US // 1000, help="clip length (ms)")
    args = ap.parse_args(argv)
    if args.size < 1 or args.clip_ms < 1:
        ap.error("--size and --clip-ms must be >= 1")
    size, clip_us = (args.size, args.size), args.clip_ms * 1000
    classes = CLASS_NAMES[:4] if args.quick else CLASS_NAMES
    stream_s = min(args.stream_s, 3.0) if args.quick else args.stream_s
    print(f"synthetic benchmark: {size[0]}x{size[1]}, {clip_us // 1000} ms clips at 200 fps, "
          f"{len(classes)} classes, {stream_s:g} s of stream; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; anchor: real time", flush=True)
    make_clip("clap", 99, size, 20_000)  # warm-up
    render = [timed(lambda: render_clip(c, k, size, clip_us)) for k, c in enumerate(classes)]
    print(summary("render_clip", render, clip_us * 1e-6), flush=True)
    clips = [timed(lambda: make_clip(c, k, size, clip_us)) for k, c in enumerate(classes)]
    print(summary("make_clip", clips, clip_us * 1e-6), flush=True)
    stream = SyntheticStream(seed=0, sensor_size=size, duration_s=stream_s)
    n_ev = [0]

    def run_stream():
        n_ev[0] = sum(len(pk.events) for pk in stream)
    secs = timed(run_stream)
    print(f"{'SyntheticStream':<24} {stream_s:g} s in {secs:6.2f} s  rt {stream_s / secs:6.1f}x  "
          f"{n_ev[0] / stream_s / 1e3:7.1f} k events/s of stream")
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
