"""DVS emulator speed: frames/s and events/s of :class:`eventpipe.emulator.DvsEmulator`.

The workloads of docs/emulator.md "Measured speed": 100 frames of a scrolling texture,
5 ms apart (a seeded random texture moved one pixel to the left per frame, about 0.6
events per pixel per frame), at
128x128, 346x260 and 640x480; the same with shot noise, leak, refractory period and the
photoreceptor low-pass on; and a static scene (100 copies of one frame: the per-frame
overhead).  Each is printed against two anchors measured in the same run:

- ``rt``: the real-time factor, frames/s over the 200 frames/s the 5 ms frame interval
  asks for (>= 1 keeps up with such a camera);
- ``numpy``: :func:`numpy_step`, a plain NumPy per-frame implementation of the same
  log-intensity threshold-crossing model (lin-log response, every crossing of the
  per-pixel thresholds interpolated in time, the reference moved by one threshold per
  crossing, events sorted by time with ties in raster order) written here, without
  noise, leak, refractory period or low-pass.  Its events are compared with the
  emulator's on the plain workloads (``same events: True``); with the extras on, the
  anchor still runs the plain model (it does less work than the emulator there).

The clock covers ``push`` of frames 2..N (the first frame initialises); frame rendering is
outside it.  Best of ``--repeat`` runs, after one warm-up run (Numba compile / cache load).

    python benchmarks/emulator.py [--quick] [--frames 100] [--repeat 3] [--sizes 128x128 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import at_least  # noqa: E402
from eventpipe.emulator import DvsEmulator  # noqa: E402
from eventpipe.emulator.kernel import lin_log_reference  # noqa: E402
from eventpipe.events import EVENT_DTYPE  # noqa: E402

SIZES = ["128x128", "346x260", "640x480"]
FRAME_US = 5_000
EXTRAS = {"shot_noise_rate_hz": 0.1, "leak_rate_hz": 0.05, "refractory_us": 500,
          "cutoff_hz": 200.0}
TOL = 1e-9  # the kernel's round-off tolerance on "exactly k thresholds"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 128x128, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be >= 1, got {text!r}")
    return w, h



def scrolling_frames(size, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 frames of a random texture (Gaussian-blurred white noise, sigma 0.7 px, stretched
    to levels 30-230) moving 1 px left per frame: about 0.6 events per pixel per frame."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w + n)).astype(np.float32), (0, 0), 0.7)
    tex = (tex - tex.min()) / max(float(tex.max() - tex.min()), 1e-9)
    tex = (30 + 200 * tex).astype(np.uint8)
    return [np.ascontiguousarray(tex[:, k:k + w]) for k in range(n)]


def numpy_step(intensity, lp0, ref, pos_thr, neg_thr, t0: int, t1: int, width: int,
               lin_threshold: float = 20.0):
    """One frame of the plain model in NumPy: returns ``(events, lp1)``; moves ``ref`` in place."""
    lp1 = lin_log_reference(intensity, lin_threshold, 1e-3)
    d0, d1 = lp0 - ref, lp1 - ref
    thr = np.where(d1 >= 0, pos_thr, neg_thr)
    q = d1 / thr
    n = np.where(q >= 1 - TOL, np.floor(q + TOL), np.where(q <= -1 + TOL, np.floor(-q + TOL), 0))
    n = n.astype(np.int64)
    sign = np.where(d1 >= 0, 1.0, -1.0)
    pix = np.repeat(np.arange(len(n)), n)
    starts = np.cumsum(n) - n
    k = np.arange(len(pix)) - np.repeat(starts, n) + 1
    slope = (d1 - d0)[pix]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(slope != 0, (sign[pix] * k * thr[pix] - d0[pix]) / slope, 1.0)
    t = t0 + np.round(np.clip(s, 0.0, 1.0) * (t1 - t0)).astype(np.int64)
    t = np.clip(t, t0 + 1, t1)
    ref += sign * n * thr
    order = np.argsort(t, kind="stable")  # pix is ascending: ties keep raster order
    ev = np.empty(len(t), EVENT_DTYPE)
    ev["x"] = pix[order] % width
    ev["y"] = pix[order] // width
    ev["t"] = t[order]
    ev["p"] = sign[pix[order]] > 0
    return ev, lp1


def run_emulator(frames, size, config) -> tuple[float, int, list]:
    emu = DvsEmulator(size, config, seed=0)
    emu.push(frames[0], 0)
    out = []
    t0 = time.perf_counter()
    for i in range(1, len(frames)):
        out.append(emu.push(frames[i], i * FRAME_US))
    return time.perf_counter() - t0, sum(len(e) for e in out), out


def run_numpy(frames, size) -> tuple[float, int, list]:
    params = DvsEmulator(size, None, seed=0).params  # the same per-pixel thresholds
    lp = lin_log_reference(frames[0].reshape(-1).astype(np.float64), 20.0, 1e-3)
    ref = lp.copy()
    out = []
    t0 = time.perf_counter()
    for i in range(1, len(frames)):
        ev, lp = numpy_step(frames[i].reshape(-1).astype(np.float64), lp, ref, params.pos_thr,
                            params.neg_thr, (i - 1) * FRAME_US, i * FRAME_US, size[0])
        out.append(ev)
    return time.perf_counter() - t0, sum(len(e) for e in out), out


def best(fn, repeat: int):
    runs = [fn() for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def measure(size, frames, config, repeat: int, compare: bool) -> str:
    run_emulator(frames[:3], size, config)  # warm-up
    secs, n_ev, evs = best(lambda: run_emulator(frames, size, config), repeat)
    a_secs, _, a_evs = best(lambda: run_numpy(frames, size), repeat)
    steps = len(frames) - 1
    fps, a_fps = steps / secs, steps / a_secs
    same = ""
    if compare:
        ok = all(np.array_equal(a, b) for a, b in zip(evs, a_evs))
        same = f"  same events: {ok}"
    return (f"{fps:7.0f} frames/s {n_ev / secs / 1e6:5.2f} M events/s "
            f"{n_ev / steps / 1e3:6.1f} k events/frame  rt {fps * FRAME_US / 1e6:5.2f}x  "
            f"numpy {a_fps:6.0f} frames/s  ratio {fps / a_fps:5.2f}x{same}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one timed run per workload")
    ap.add_argument("--frames", type=at_least(2), default=100)
    ap.add_argument("--repeat", type=at_least(1), default=3)
    ap.add_argument("--sizes", type=_size, nargs="+", default=[_size(s) for s in SIZES])
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    print(f"emulator benchmark: {args.frames} frames {FRAME_US // 1000} ms apart, best of {repeat}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; anchors: rt = "
          f"frames/s / {1e6 / FRAME_US:.0f}, numpy = plain NumPy model in this file", flush=True)
    for size in args.sizes:
        label = f"{size[0]}x{size[1]}"
        moving = scrolling_frames(size, args.frames)
        static = [moving[0]] * args.frames
        for name, frames, config, compare in (
                ("moving texture", moving, None, True),
                ("moving + noise/leak/refr/lp", moving, EXTRAS, False),
                ("static scene", static, None, True)):
            line = measure(size, frames, config, repeat, compare)
            print(f"{label:>8} {name:<28}{line}", flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f} at the end; extras: {EXTRAS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
