"""Binning throughput: tonic vs eventpipe.kernels on >= 10 M events tiled from real data.

Run: ``python benchmarks/binning.py [--events 10000000] [--plot docs/img/binning_packet_size.png]
[--breakdown]``

Prints one line per measurement (Mev/s = million events per second, best of
``--repeat`` runs after a warm-up that compiles/loads the Numba kernels).
Everything runs in this one process.  Not a test: no assertions on speed.
``--breakdown`` adds where the single-threaded ``to_frames`` time goes.
``--workloads`` runs only the output-heavy workloads against tonic: the default call (all
cores) judged against the goal, the one-thread call beside it with the floor that any
one-thread binning returning a new array pays on this machine (:func:`floors`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventpipe.events import EVENT_DTYPE, as_events  # noqa: E402
from eventpipe.kernels import (  # noqa: E402
    OutputPool,
    StreamingBinner,
    to_frames,
    to_timesurface,
    to_voxel_grid,
)
from benchmarks._args import at_least  # noqa: E402
from benchmarks._timeline import timeline  # noqa: E402
from tests.conftest import expected_events, expected_meta  # noqa: E402

TONIC_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
TONIC_STRUCT = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])  # tonic.io


def tiled(name: str, n_min: int) -> tuple[np.ndarray, tuple[int, int]]:
    ev = expected_events(name)
    wh = tuple(expected_meta(name)["sensor_size_wh"])
    reps = -(-n_min // len(ev))
    span = int(ev["t"][-1] - ev["t"][0]) + 1
    big = np.concatenate([ev] * reps)
    big["t"] += np.repeat(np.arange(reps, dtype=np.int64) * span, len(ev))
    return big, wh


CPU = {}  # label -> best process CPU seconds of the last ``best`` call


def best(fn, repeat: int, label: str | None = None) -> float:
    """Best wall time of ``repeat`` runs; the best CPU time goes to CPU[label]."""
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if label:
        CPU[label] = min(cpus)
    return min(walls)


def breakdown(ev, wh, tw, repeat):
    """Single-threaded to_frames split into output allocation, event reading and the rest.

    Thread CPU time (user + system, so page faults count), best of ``repeat``: robust
    when other jobs share the cores, unlike wall time.
    """
    from numba import njit

    @njit(nogil=True)
    def read_all(ev):  # every field of every record: the input-bandwidth floor
        s = 0
        for i in range(np.uint64(0), np.uint64(ev.shape[0])):
            e = ev[i]
            s += e.x + e.y + e.t + e.p
        return s

    def cpu(fn):
        best_s = np.inf
        for _ in range(repeat):
            c0 = time.thread_time()
            fn()
            best_s = min(best_s, time.thread_time() - c0)
        return best_s * 1e3

    frames = to_frames(ev, wh, time_window=tw)
    read_all(ev[:10])
    mb = frames.nbytes / 1e6
    rows = [
        (f"np.zeros + touch every 4 KiB page of the {mb:.0f} MB output", cpu(
            lambda: np.zeros_like(frames).reshape(-1)[::2048].fill(1))),
        (f"refill an already-faulted {mb:.0f} MB array (out.fill(0))", cpu(lambda: frames.fill(0))),
        (f"read every event once ({ev.nbytes / 1e6:.0f} MB of 13-byte records)", cpu(
            lambda: read_all(ev))),
        ("to_frames into an already-faulted out=", cpu(
            lambda: to_frames(ev, wh, time_window=tw, out=frames, threads=1))),
        ("to_frames, new output (what the lines above measure)", cpu(
            lambda: to_frames(ev, wh, time_window=tw, threads=1))),
    ]
    print(f"# breakdown, 1 thread, best thread CPU time of {repeat}:")
    for label, ms in rows:
        print(f"  {label:<58}: {ms:6.1f} ms")


def as_tonic(ev: np.ndarray) -> np.ndarray:
    """The same events in tonic's own dtype (``tonic.io.make_structured_array``: int16 x, y,
    int64 t, bool p)."""
    out = np.empty(len(ev), TONIC_STRUCT)
    for f in "xytp":
        out[f] = ev[f]
    return out


def workloads(n_vga: int, n_128: int):
    """Output-heavy workloads: (name, events, (W, H), window_us).

    ``vga-dense``: the VGA recording (evt2_sample.raw, 640x480) tiled to ``n_vga`` events
    with time stretched 2x (~5.4 Mev/s), 10 ms windows: ~115 frames, ~141 MB of int16
    output for ~6.3 M events.  ``dvs128-sparse``: dvs.es (320x240, 0.47 Mev/s) pooled onto
    a 128x128 sensor and tiled to ``n_128`` events, 10 ms windows: thousands of small,
    sparse frames (per-window cost).  Each also in tonic's dtype (``-tonic``)."""
    vga, wh = tiled("evt2_sample.raw", n_vga)
    vga = vga[:n_vga].copy()
    vga["t"] = (vga["t"] - vga["t"][0]) * 2
    es, (w, h) = tiled("dvs.es", n_128)
    es = es[:n_128].copy()
    es["x"] = es["x"].astype(np.int64) * 128 // w
    es["y"] = es["y"].astype(np.int64) * 128 // h
    out = []
    for name, ev, size in (("vga-dense", vga, wh), ("dvs128-sparse", es, (128, 128))):
        out.append((name, ev, size, 10_000))
        out.append((name + "-tonic", as_tonic(ev), size, 10_000))
    return out


def rounds(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """``{label: (best wall s, best process CPU s)}`` over ``repeat`` rounds; each round runs
    every function once in turn, so that a burst of load from other jobs hits them alike."""
    return {k: (min(w), min(c)) for k, (w, c) in samples(fns, repeat).items()}


def samples(fns: dict, repeat: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (wall s of each round, process CPU s of each round)}``: ``repeat`` rounds,
    each running every function once in turn; round ``i`` starts at the ``i``-th function
    (rotated order), so that each runs after each of the others as often (what ran just
    before a call, e.g. a long single-threaded tonic call or a call that freed 143 MB, can
    move its time)."""
    res = {k: ([], []) for k in fns}
    keys = list(fns)
    for i in range(repeat):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            fn = fns[k]
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            w, c = time.perf_counter() - t0, time.process_time() - c0
            res[k][0].append(w)
            res[k][1].append(c)
    return {k: (np.array(w), np.array(c)) for k, (w, c) in res.items()}


def round_ratio(theirs: np.ndarray, ours: np.ndarray) -> float:
    """The median over rounds of ``theirs[i] / ours[i]`` (both timed in round ``i``).  Each
    round's ratio compares two calls made a few hundred ms apart, so a burst of load that
    hits one round moves one ratio, not the result; unlike best-of-N on each side it does
    not reward the side whose time varies more (the short call, ours, on an idle machine)
    by keeping only its luckiest run.  On a loaded machine it can favour us instead (a burst
    inside tonic's long call raises that round's ratio), so the goal judges the lower of
    this and best-of-N (:func:`run_workloads`)."""
    return float(np.median(np.asarray(theirs) / np.asarray(ours)))


def judged_ratio(theirs: np.ndarray, ours: np.ndarray) -> float:
    """What the goal judges: the lower of :func:`round_ratio` and best-of-N on each side."""
    return min(round_ratio(theirs, ours), float(np.min(theirs) / np.min(ours)))


def floors(ev, shape, repeat: int) -> dict[str, float]:
    """What any one-thread binning that returns a new ``shape`` int16 array must pay, on this
    machine in this run (best process CPU seconds of ``repeat``; each is a few ms, so the
    caller asks for many runs: a floor is a minimum, and one undisturbed run finds it):

    ``zeros``: a fresh zeroed output alone (``np.zeros``, then one write per 4 KiB page, so
    that Linux maps and zeroes every page, as it does for tonic's and our output);
    ``empty_memset``: ``np.empty`` + ``memset`` (zeroing fused into the binning kernel costs
    this: a fresh page is zeroed by the kernel first anyway); ``memset``: zeroing an already
    mapped array (the floor with a reused ``out=``); ``read``: reading the events once."""
    from numba import njit

    @njit(nogil=True, cache=False)
    def touch(a):  # one write per 4 KiB page
        for i in range(0, a.shape[0], 4096):
            a[i] = 1

    @njit(nogil=True, cache=False)
    def read(w):  # every 8-byte word of the events once (vectorised)
        s = np.uint64(0)
        for i in range(w.shape[0]):
            s += w[i]
        return s

    words = ev.view(np.uint8)[: ev.nbytes // 8 * 8].view(np.uint64)
    mapped = np.zeros(shape, np.int16)
    touch(mapped.reshape(-1).view(np.uint8)), read(words[:8])
    fns = {"zeros": lambda: touch(np.zeros(shape, np.int16).reshape(-1).view(np.uint8)),
           "empty_memset": lambda: np.empty(shape, np.int16).reshape(-1).view(np.uint8).fill(0),
           "memset": lambda: mapped.reshape(-1).view(np.uint8).fill(0),
           "read": lambda: read(words)}
    return {k: cpu for k, (_, cpu) in rounds(fns, repeat).items()}


_HALVES = None


def _halves_kernel():
    """The Numba loop of :func:`two_thread_floor` (compiled on first use)."""
    global _HALVES
    if _HALVES is None:
        from numba import njit

        from eventpipe.kernels._teamwork import claim

        @njit(nogil=True, cache=False)
        def halves(out8, words, counter):  # halves taken from the shared counter
            taken = 0
            s = np.uint64(0)
            nb, nw = out8.shape[0], words.shape[0]
            while True:
                c = claim(counter)
                if c >= 2:
                    break
                a = nb // 2 // 4096 * 4096 if c else 0
                for i in range(a, nb if c else nb // 2 // 4096 * 4096, 4096):
                    out8[i] = 1  # one write per 4 KiB page of this half
                for i in range(nw // 2 if c else 0, nw if c else nw // 2):
                    s += words[i]  # every 8-byte word of this half of the events
                taken += 1
            if s == np.uint64(12345):  # (keeps the reads)
                out8[0] = 2
            return taken

        _HALVES = halves
    return _HALVES


def two_thread_floor(ev, shape):
    """A callable: what any two-thread binning that returns a new ``shape`` int16 array must
    pay here, in wall time.  A fresh ``np.zeros`` output whose pages two threads fault in
    parallel, each one half (one write per 4 KiB page, so that Linux maps and zeroes every
    page, as it does when the binning threads first write their frames), while each also
    reads one half of the events (every 8-byte word).  The two halves are handed out as the
    binning chunks are (``_teamwork.run_chunks``: the calling thread and one helper thread,
    woken per call), so the helper's wake-up is in it too."""
    from eventpipe.kernels._teamwork import run_chunks

    halves = _halves_kernel()
    words = ev.view(np.uint8)[: ev.nbytes // 8 * 8].view(np.uint64)

    def floor2():
        out8 = np.zeros(shape, np.int16).reshape(-1).view(np.uint8)
        counter = np.zeros(1, np.int64)
        run_chunks(lambda wid: int(halves(out8, words, counter)), 2, 2)
        return out8

    halves(np.zeros(8192, np.uint8), words[:8], np.zeros(1, np.int64))  # compile
    return floor2


#: rounds of ``--workloads`` unless ``--repeat`` says otherwise (odd: one median round)
WORKLOAD_ROUNDS = 11
GOAL = 25.0  # speed-up over tonic with the default call that issue 15 asks for on these workloads


def run_workloads(n_vga: int, n_128: int, repeat: int) -> float:
    """to_frames vs tonic's to_frame_numpy on each workload, same array, same process, in
    ``repeat`` interleaved rounds (:func:`samples`: each round runs tonic, the default call,
    the one-thread call and the two-thread floor once, in turn); prints one line each, the
    floors and the verdict; returns the worst judged ratio of the default call.

    The goal is judged on the **default call** (``to_frames(ev, wh, time_window=...)``, no
    ``threads``: numba's thread count, all cores by default) by wall time: for each workload
    the lower of the median over the rounds of (tonic's time / ours in that round)
    (:func:`round_ratio`) and best-of-``repeat`` tonic / best-of-``repeat`` ours, and the
    worst of those over the workloads: neither statistic can lift the verdict alone.  The
    two-thread floor (:func:`two_thread_floor`) is timed in the same rounds; its ceiling
    (the same statistic, tonic / floor) is what no two-thread call that returns a new array
    can beat here.  The one-thread call (``threads=1``) is reported beside it with its own
    floor (:func:`floors`) and ceiling: its ratio is the lower of its best wall-time and
    CPU-time ratios.  The time into a reused ``out=`` and with an :class:`OutputPool`
    (opt-in: released outputs' memory recycled) are printed for information only."""
    import numba
    from tonic.functional import to_frame_numpy

    nth = numba.get_num_threads()
    dflt = f"default ({nth} thread{'s' if nth > 1 else ''})"
    nfl = max(15, 3 * repeat)
    print(f"# output-heavy workloads: time_window 10 ms, int16 output; same array, same process, "
          f"{repeat} interleaved rounds (each: tonic, the default call, 1 thread, the 2-thread "
          f"floor); cpus {os.cpu_count()}, numba threads {nth}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"# ratio = tonic time / ours: med = median over the rounds of that round's ratio, best "
          f"= best tonic / best ours; the goal judges the lower of the two; times are the median "
          f"of the rounds "
          f"| {dflt}: to_frames(ev, wh, time_window=10_000), wall time | 1 thread: threads=1 "
          f"(best of the rounds, lower of the wall and cpu ratios)")
    print("# floor 2 threads (wall): a fresh zeroed output whose pages 2 threads fault in "
          "parallel (half each: np.zeros + write every 4 KiB page) while each reads half the "
          "events; ceiling = tonic / that floor (the lower of med and best): no two-thread "
          "binning that returns a new array beats it; default/floor = median of the rounds' "
          "ratios")
    print(f"# floor 1 thread (CPU ms, best of {nfl}): a fresh zeroed output alone (np.zeros + "
          "write every 4 KiB page) | np.empty + memset | memset of a mapped array | read the "
          "events once; ceiling = tonic CPU / (fresh zeroed output + reading the events): no "
          "one-thread binning that returns a new array beats it (the thread waits while Linux "
          "zeroes a page); in brackets tonic / the output alone")
    rows = []  # dicts, one per workload
    for name, ev, wh, tw in workloads(n_vga, n_128):
        to_frames(ev[:200_000], wh, time_window=tw, threads=1)  # compile this dtype's kernels
        to_frames(ev[:200_000], wh, time_window=tw, threads=2)
        frames = to_frames(ev, wh, time_window=tw)
        theirs = to_frame_numpy(ev, (*wh, 2), time_window=tw)
        if frames.dtype != theirs.dtype or not np.array_equal(frames, theirs):
            raise SystemExit(f"{name}: to_frames differs from tonic")  # checked once, untimed
        del theirs
        floor2 = two_thread_floor(ev, frames.shape)
        floor2()
        m = samples({"tonic": lambda: to_frame_numpy(ev, (*wh, 2), time_window=tw),
                     "default": lambda: to_frames(ev, wh, time_window=tw),
                     "one": lambda: to_frames(ev, wh, time_window=tw, threads=1),
                     "floor2": floor2}, repeat)
        tonic_w, tonic_c = m["tonic"]
        t_tonic, cpu_tonic = tonic_w.min(), tonic_c.min()
        td, t1, cpu1, tf2 = m["default"][0], m["one"][0].min(), m["one"][1].min(), m["floor2"][0]
        pool = OutputPool(2 * frames.nbytes)  # opt-in recycling: not the default call
        to_frames(ev, wh, time_window=tw, pool=pool)  # (the first call maps fresh memory)
        mp = rounds({"reused": lambda: to_frames(ev, wh, time_window=tw, out=frames, threads=1),
                     "pool1": lambda: to_frames(ev, wh, time_window=tw, pool=pool, threads=1),
                     "pool": lambda: to_frames(ev, wh, time_window=tw, pool=pool)}, repeat)
        pool.clear()  # (its memory goes when the last output does)
        fl = floors(ev, frames.shape, nfl)
        ceiling = cpu_tonic / (fl["zeros"] + fl["read"])
        wall_r, cpu_r = t_tonic / t1, cpu_tonic / cpu1
        pool_r = min(t_tonic / mp["pool1"][0], cpu_tonic / mp["pool1"][1])
        med, bst = round_ratio(tonic_w, td), t_tonic / td.min()
        r = dict(name=name, med=med, best=bst, judged=judged_ratio(tonic_w, td),
                 one=min(wall_r, cpu_r), which="wall" if wall_r <= cpu_r else "cpu",
                 ceiling=ceiling, ceil2=judged_ratio(tonic_w, tf2),
                 ceil2_med=round_ratio(tonic_w, tf2), ceil2_best=t_tonic / tf2.min(),
                 over=float(np.median(td / tf2)), pool1=pool_r, pool=t_tonic / mp["pool"][0])
        rows.append(r)
        print(f"{name:<20}: {len(ev) / 1e6:4.1f} M ev {ev.dtype.itemsize:2d} B/ev, "
              f"{len(frames):5d} frames {frames.nbytes / 1e6:4.0f} MB {frames.dtype} | tonic "
              f"{np.median(tonic_w) * 1e3:6.1f} ms | {dflt} {np.median(td) * 1e3:5.1f} ms med "
              f"{r['med']:5.1f}x [best {r['best']:4.1f}x] | 1 thread {t1 * 1e3:5.1f} ms "
              f"{wall_r:5.1f}x [cpu {cpu_r:4.1f}x]")
        print(f"{'  floor 2 threads':<20}: {np.median(tf2) * 1e3:5.1f} ms wall: ceiling "
              f"{r['ceil2']:5.1f}x (med {r['ceil2_med']:4.1f}x, best {r['ceil2_best']:4.1f}x); "
              f"{dflt} / floor {r['over']:4.2f}")
        print(f"{'  floor 1 thread':<20}: {fl['zeros'] * 1e3:5.1f} | "
              f"{fl['empty_memset'] * 1e3:5.1f} | "
              f"{fl['memset'] * 1e3:5.1f} | {fl['read'] * 1e3:5.1f} ms; 1 thread {cpu1 * 1e3:5.1f} ms, "
              f"tonic {cpu_tonic * 1e3:6.1f} ms CPU: ceiling {ceiling:5.1f}x "
              f"[{cpu_tonic / fl['zeros']:4.1f}x]; (into a reused out=, 1 thread: "
              f"{mp['reused'][1] * 1e3:5.1f} ms, {cpu_tonic / mp['reused'][1]:4.1f}x, not in the "
              f"verdict)")
        print(f"{'  recycled (opt-in)':<20}: OutputPool, not the default call, not in the "
              f"verdict | {dflt} {mp['pool'][0] * 1e3:5.1f} ms {r['pool']:5.1f}x | "
              f"1 thread {mp['pool1'][0] * 1e3:5.1f} ms {pool_r:5.1f}x [lower of wall, cpu]")
        tl = timeline(ev, wh, tw, repeat)
        print(f"{'  timeline':<20}: {dflt}, median of {repeat} calls, ms: entry -> first chunk "
              f"{tl['pre']:.2f} | helper starts +{tl['helper_late']:.2f} | in chunks: caller "
              f"{tl['busy0']:.1f}, helper {tl['busy1']:.1f} ({tl['chunks']:.0f} chunks) | one "
              f"thread idle at the end {tl['tail']:.2f} | last chunk -> return {tl['post']:.2f} "
              f"| total {tl['total']:.1f} (floor 2 threads {np.median(tf2) * 1e3:.1f})")
        if ev.dtype != EVENT_DTYPE:  # what reading tonic's dtype directly saves
            tc = best(lambda: to_frames(as_events(ev), wh, time_window=tw, threads=1), repeat,
                      "conv")
            print(f"{'  (converted first)':<20}: as_events + to_frames, 1 thread {tc * 1e3:5.1f} ms "
                  f"{t_tonic / tc:5.1f}x [cpu {cpu_tonic / CPU['conv']:4.1f}x], as before "
                  f"the kernels read tonic's dtypes")
    wd = min(rows, key=lambda r: r["judged"])
    w1 = min(rows, key=lambda r: r["one"])
    print("# 1 thread (threads=1), every workload: "
          + ", ".join(f"{r['name']} {r['one']:.1f}x (ceiling {r['ceiling']:.1f}x)" for r in rows))
    print(f"# {dflt}, every workload, judged = lower of med and best: "
          + ", ".join(f"{r['name']} {r['judged']:.1f}x (med {r['med']:.1f}x, best "
                      f"{r['best']:.1f}x; ceiling {r['ceil2']:.1f}x)" for r in rows))
    print(f"worst ratio, {dflt}, the goal: {wd['judged']:.1f}x tonic (the lower of the median of "
          f"{repeat} rounds' ratios {wd['med']:.1f}x and best-of-{repeat} {wd['best']:.1f}x; wall "
          f"time, {wd['name']}; 2-thread ceiling {wd['ceil2']:.1f}x): goal >= {GOAL:g}x with the "
          f"default call {'met' if wd['judged'] >= GOAL else 'NOT met'}")
    low = min(rows, key=lambda r: r["ceil2"])
    print(f"lowest 2-thread ceiling: {low['ceil2']:.1f}x tonic ({low['name']}, the lower of med "
          f"and best): {'below' if low['ceil2'] < GOAL else 'at or above'} {GOAL:g}x")
    if w1["one"] >= GOAL:
        why = "met on one thread too"
    elif w1["ceiling"] < GOAL:
        why = (f"the ceiling is below {GOAL:g}x: no one-thread binning that returns a new array "
               f"reaches {GOAL:g}x there on this machine")
    else:
        why = f"NOT met on one thread although the ceiling allows {GOAL:g}x"
    print(f"worst ratio, 1 thread (beside the goal, not judged): {w1['one']:.1f}x tonic "
          f"({w1['which']} time, {w1['name']}), measured ceiling {w1['ceiling']:.1f}x: {why}")
    print(f"# recycled memory (OutputPool, opt-in, not the default call, not in the verdict): "
          f"worst {dflt} {min(r['pool'] for r in rows):.1f}x, 1 thread "
          f"{min(r['pool1'] for r in rows):.1f}x")
    return wd["judged"]


def stream(ev, wh, window, packet, n_events=None):
    ev = ev if n_events is None else ev[:n_events]
    b = StreamingBinner(wh, window)
    n = 0
    for i in range(0, len(ev), packet):
        n += len(b.push(ev[i:i + packet], copy=False))
    n += len(b.flush())
    return n


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; ``--repeat`` defaults to 3, or to ``WORKLOAD_ROUNDS`` with
    ``--workloads``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--recording", default="evt2_sample.raw")
    ap.add_argument("--window-us", type=int, default=10_000)
    ap.add_argument("--packet", type=int, default=10_000)
    ap.add_argument("--repeat", type=at_least(1), default=None,
                    help="runs (rounds with --workloads) per measurement; default 3, "
                         f"{WORKLOAD_ROUNDS} with --workloads")
    ap.add_argument("--plot", default=str(REPO / "docs" / "img" / "binning_packet_size.png"))
    ap.add_argument("--no-tonic", action="store_true")
    ap.add_argument("--breakdown", action="store_true", help="where the to_frames time goes")
    ap.add_argument("--workloads", action="store_true",
                    help="only the output-heavy workloads (VGA dense, DVS128 sparse, tonic dtypes)")
    ap.add_argument("--vga-events", type=int, default=6_300_000)
    ap.add_argument("--dvs128-events", type=int, default=3_000_000)
    args = ap.parse_args(argv)
    if args.repeat is None:
        args.repeat = WORKLOAD_ROUNDS if args.workloads else 3
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.workloads:
        run_workloads(args.vga_events, args.dvs128_events, args.repeat)
        return 0

    from tonic.functional import to_frame_numpy, to_timesurface_numpy, to_voxel_grid_numpy

    ev, wh = tiled(args.recording, args.events)
    n = len(ev)
    tw = args.window_us
    mev = lambda dt, k=n: k / dt / 1e6  # noqa: E731
    print(f"# {n:,} events tiled from {args.recording} {wh[0]}x{wh[1]}, "
          f"{(ev['t'][-1] - ev['t'][0]) / 1e6:.2f} s, window {tw} us, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("# Mev/s from the best wall time; [cpu: Mev/s per CPU-second of this process, "
          "robust when other jobs share the cores]")

    # warm-up: load/compile every kernel specialisation used below
    small = ev[:50_000]
    to_frames(small, wh, time_window=tw)
    to_frames(small, wh, time_window=tw, threads=2)
    to_voxel_grid(small, wh, 10)
    to_timesurface(small, wh, 50_000, 5000.0)
    stream(small, wh, tw, 1000)

    out = np.zeros_like(to_frames(ev, wh, time_window=tw))
    res = {}
    if not args.no_tonic:
        res["tonic"] = mev(best(lambda: to_frame_numpy(ev, (*wh, 2), time_window=tw), 2, "tonic"))
        print(f"tonic to_frame_numpy            : {res['tonic']:8.1f} Mev/s  [cpu {mev(CPU['tonic']):.1f}]")
    for th in (1, 2):
        res[f"ours{th}"] = mev(best(lambda th=th: to_frames(ev, wh, time_window=tw, threads=th),
                                    args.repeat, f"ours{th}"))
        res[f"out{th}"] = mev(best(lambda th=th: to_frames(ev, wh, time_window=tw, threads=th,
                                                           out=out), args.repeat))
        ratio = (f"  ({res[f'ours{th}'] / res['tonic']:5.1f}x tonic) [cpu {mev(CPU[f'ours{th}']):.1f}, "
                 f"{CPU['tonic'] / CPU[f'ours{th}']:.1f}x tonic]" if "tonic" in res else "")
        print(f"eventpipe to_frames {th} thread{'s' if th > 1 else ' '}   : {res[f'ours{th}']:8.1f} Mev/s"
              f"{ratio}; with out= {res[f'out{th}']:.1f} Mev/s")
    if args.breakdown:
        breakdown(ev, wh, tw, max(args.repeat, 5))
    res["stream"] = mev(best(lambda: stream(ev, wh, tw, args.packet), args.repeat, "stream"))
    print(f"StreamingBinner {args.packet} ev/packet: {res['stream']:8.1f} Mev/s  "
          f"(streaming/one-shot time = {res['ours1'] / res['stream']:.2f}x) [cpu "
          f"{mev(CPU['stream']):.1f}, {CPU['stream'] / CPU['ours1']:.2f}x]")

    tev = np.empty(n, TONIC_DTYPE)
    for f in "xytp":
        tev[f] = ev[f]
    res["voxel"] = mev(best(lambda: to_voxel_grid(ev, wh, 10), args.repeat, "voxel"))
    if not args.no_tonic:
        res["tvoxel"] = mev(best(lambda: to_voxel_grid_numpy(tev.copy(), (*wh, 2), 10), 1, "tvoxel"))
    print(f"voxel grid (10 bins)            : {res['voxel']:8.1f} Mev/s"
          + (f"  tonic {res['tvoxel']:.1f} Mev/s ({res['voxel'] / res['tvoxel']:.1f}x) "
             f"[cpu {CPU['tvoxel'] / CPU['voxel']:.1f}x]" if "tvoxel" in res else ""))
    dt, tau = 50_000, 5000.0
    res["ts"] = mev(best(lambda: to_timesurface(ev, wh, dt, tau), args.repeat, "ts"))
    if not args.no_tonic:
        res["tts"] = mev(best(lambda: to_timesurface_numpy(tev, (*wh, 2), dt, tau), 1, "tts"))
    print(f"time surface (dt {dt} us)      : {res['ts']:8.1f} Mev/s"
          + (f"  tonic {res['tts']:.1f} Mev/s ({res['ts'] / res['tts']:.1f}x) "
             f"[cpu {CPU['tts'] / CPU['ts']:.1f}x]" if "tts" in res else ""))
    tev = None  # (free the copy before the streaming runs)

    sizes = [100, 1_000, 10_000, 100_000, 1_000_000]
    thr = []
    for size in sizes:
        k = min(n, size * 3000)
        thr.append(mev(best(lambda size=size, k=k: stream(ev, wh, tw, size, k), 2, "pk"), k))
        print(f"streaming packet {size:>9,} ev : {thr[-1]:8.1f} Mev/s  [cpu {mev(CPU['pk'], k):.1f}]")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.semilogx(sizes, thr, "o-", label="StreamingBinner.push")
        ax.axhline(res["ours1"], color="C1", ls="--", label="to_frames one-shot, 1 thread")
        ax.axhline(res["ours2"], color="C2", ls=":", label="to_frames one-shot, 2 threads")
        if "tonic" in res:
            ax.axhline(res["tonic"], color="C3", ls="-.", label="tonic to_frame_numpy")
        ax.set_xlabel("events per packet")
        ax.set_ylabel("throughput (Mev/s)")
        ax.set_title(f"Binning {wh[0]}x{wh[1]}, {tw / 1000:g} ms windows")
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"# plot written to {os.path.relpath(args.plot, REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
