"""Recorder benchmark: write rate, file size, seek latency and read speed of HDF5 recordings.

Events are the real EVT3 sample's (decoded by our reader), tiled end to end in time to
``--events``.  In one run it measures:

- sustained write rate of :class:`recorders.EventRecorder` per compression (one thread:
  HDF5 runs its filters in the calling thread), against two anchors: the same columns
  written raw with ``ndarray.tofile`` (what the disk and memcpy allow) and written by bare
  h5py with the same filters in one call per column (what HDF5 itself allows);
- file size per event against EVT3 and AEDAT4 encodings of the same events;
- seek latency of a 1 s slice in a 1-hour recording (``--hour-rate`` events/s), opened once;
- full-read and chunked-read speed against our EVT3 reader on the same events.

    python benchmarks/recorder.py [--events 5000000] [--hour-rate 20000] [--repeat 3]
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

from eventpipe.events import EVENT_DTYPE  # noqa: E402
from eventpipe.io import iter_events, read_events  # noqa: E402
from recorders import EventRecorder, open_recording  # noqa: E402

EVT3_SAMPLE = REPO.parent / "shared" / "data" / "events" / "evt3" / "evt3_sample.raw"
COMPRESSIONS = ["none", "lzf", "gzip:1", "blosc:lz4", "zstd:1"]


def tiled_events(n: int) -> tuple[np.ndarray, tuple[int, int]]:
    from eventpipe.io import open_reader

    reader = open_reader(EVT3_SAMPLE)
    base = reader.read()
    size = reader.info.sensor_size or (1280, 720)
    span = int(base["t"][-1] - base["t"][0]) + 1
    k = -(-n // len(base))
    out = np.empty(k * len(base), EVENT_DTYPE)
    for i in range(k):
        part = out[i * len(base):(i + 1) * len(base)]
        part[:] = base
        part["t"] += i * span - int(base["t"][0])
    return out[:n], size


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def write_recording(path: Path, ev: np.ndarray, size, compression: str, batch: int) -> None:
    if path.exists():
        path.unlink()
    with EventRecorder(path, size, compression=compression) as rec:
        for i in range(0, len(ev), batch):
            rec.write(ev[i:i + batch])


def write_raw(path: Path, ev: np.ndarray) -> None:
    with open(path, "wb") as f:
        for name in ("x", "y", "t", "p"):
            np.ascontiguousarray(ev[name]).tofile(f)
        f.flush()


def write_bare_h5(path: Path, ev: np.ndarray, compression: str) -> None:
    """The second anchor: h5py alone, one whole-column write per column (no recorder)."""
    import h5py

    from recorders.layout import compression_args

    _, kw = compression_args(compression)
    with h5py.File(path, "w", libver="latest") as f:
        for name in ("x", "y", "t", "p"):
            col = np.ascontiguousarray(ev[name])
            f.create_dataset(name, data=col, chunks=(1 << 16,), **kw)


def hour_recording(path: Path, rate_hz: int, size) -> np.ndarray:
    """One hour of uniformly random events at ``rate_hz`` (written in 1 s batches)."""
    rng = np.random.default_rng(0)
    w, h = size
    with EventRecorder(path, size, compression="lzf") as rec:
        for s in range(3600):
            t = np.sort(rng.integers(s * 1_000_000, (s + 1) * 1_000_000, rate_hz))
            ev = np.empty(rate_hz, EVENT_DTYPE)
            ev["x"] = rng.integers(0, w, rate_hz)
            ev["y"] = rng.integers(0, h, rate_hz)
            ev["t"] = t
            ev["p"] = rng.integers(0, 2, rate_hz)
            rec.write(ev)
    return ev


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--batch", type=int, default=65_536, help="events per write() call")
    ap.add_argument("--hour-rate", type=int, default=20_000, help="events/s of the 1-hour file")
    ap.add_argument("--seeks", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, help="compressions to measure")
    args = ap.parse_args(argv)
    ev, size = tiled_events(args.events)
    n = len(ev)
    dur = (int(ev["t"][-1]) - int(ev["t"][0])) / 1e6
    print(f"recorder benchmark: {n:,} events (the EVT3 sample tiled, {dur:.1f} s, {size[0]}x"
          f"{size[1]}), write batches of {args.batch:,}, best of {args.repeat}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        from eventpipe.io.aedat4 import encode_aedat4
        from eventpipe.io.evt3 import encode_evt3

        evt3 = tmp / "e.raw"
        evt3.write_bytes(encode_evt3(ev, size))
        aedat4 = tmp / "e.aedat4"
        aedat4.write_bytes(encode_aedat4(ev, size))
        t_raw, _ = best(lambda: write_raw(tmp / "raw.bin", ev), args.repeat)
        print(f"anchor  raw columns (tofile)      {n / t_raw / 1e6:7.1f} Mev/s   13.00 B/ev")
        print(f"size    EVT3                                      "
              f"{evt3.stat().st_size / n:5.2f} B/ev")
        print(f"size    AEDAT4                                    "
              f"{aedat4.stat().st_size / n:5.2f} B/ev")
        h5_lzf = None
        for comp in COMPRESSIONS:
            if args.only and comp not in args.only:
                continue
            path = tmp / f"r_{comp.replace(':', '_')}.h5"
            try:
                t, _ = best(lambda: write_recording(path, ev, size, comp, args.batch),
                            args.repeat)
            except ImportError as exc:
                print(f"write   {comp:<10} skipped: {exc}")
                continue
            b = path.stat().st_size / n
            t_bare, _ = best(lambda: write_bare_h5(tmp / "bare.h5", ev, comp), args.repeat)
            print(f"write   h5 {comp:<10}              {n / t / 1e6:7.1f} Mev/s  {b:6.2f} B/ev"
                  f"   (x{t_raw / t:.2f} of raw, x{t_bare / t:.2f} of bare h5py; size "
                  f"x{b / (evt3.stat().st_size / n):.2f} "
                  f"of EVT3, x{b / (aedat4.stat().st_size / n):.2f} of AEDAT4)")
            if comp == "lzf":
                h5_lzf = path

        if h5_lzf is not None:
            read_events(evt3)  # warm-up (numba)
            t_evt3, a = best(lambda: read_events(evt3), args.repeat)
            t_h5, b = best(lambda: read_events(h5_lzf), args.repeat)
            assert np.array_equal(a["t"], b["t"])
            print(f"read    EVT3 (our reader)          {n / t_evt3 / 1e6:7.1f} Mev/s")
            print(f"read    h5 lzf (read_events)       {n / t_h5 / 1e6:7.1f} Mev/s   "
                  f"(x{t_evt3 / t_h5:.2f} of EVT3)")
            t_ci, _ = best(lambda: sum(len(c) for c in iter_events(evt3, chunk_events=65_536)),
                           args.repeat)
            t_hi, _ = best(lambda: sum(len(c) for c in iter_events(h5_lzf, chunk_events=65_536)),
                           args.repeat)
            print(f"read    EVT3 chunks of 65,536      {n / t_ci / 1e6:7.1f} Mev/s")
            print(f"read    h5 lzf chunks of 65,536    {n / t_hi / 1e6:7.1f} Mev/s   "
                  f"(x{t_ci / t_hi:.2f} of EVT3)")

        hour = tmp / "hour.h5"
        t0 = time.perf_counter()
        hour_recording(hour, args.hour_rate, size)
        t_write = time.perf_counter() - t0
        rng = np.random.default_rng(1)
        t_open = time.perf_counter()
        rec = open_recording(hour)
        t_open = time.perf_counter() - t_open
        lat, counts = [], []
        with rec:
            for s in rng.integers(0, 3599, args.seeks):
                a = int(s) * 1_000_000 + int(rng.integers(0, 1_000_000))
                t0 = time.perf_counter()
                sl = rec.events(a, a + 1_000_000)
                lat.append(time.perf_counter() - t0)
                counts.append(len(sl))
                assert len(sl) == 0 or (sl["t"][0] >= a and sl["t"][-1] < a + 1_000_000)
            t0 = time.perf_counter()
            rec.position(1_800_000_000)
            t_locate = time.perf_counter() - t0
        lat = np.array(lat) * 1e3
        print(f"seek    1 s slice of a 1-hour recording ({3600 * args.hour_rate:,} events, "
              f"{hour.stat().st_size / 1e6:.0f} MB lzf, written in {t_write:.1f} s): median "
              f"{np.median(lat):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms, max "
              f"{lat.max():.2f} ms ({int(np.mean(counts)):,} events per slice; open "
              f"{t_open * 1e3:.1f} ms; index lookup alone {t_locate * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
