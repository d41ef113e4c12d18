"""Recorder benchmark: write rate, file size, seek latency and read speed of HDF5 recordings.

Events are the real EVT3 sample's (decoded by our reader), tiled end to end in time to
``--events``.  In one run it measures:

- sustained write rate of :class:`recorders.EventRecorder` per compression, on one thread
  (the recorder encodes lzf chunks itself and HDF5 runs the other filters in the calling
  thread), in wall time and in CPU time (the one-core rate; on a loaded machine the wall
  rate also counts time the process waited for a core), against anchors measured in the
  same run: the columns copied in memory (``np.copy``), written raw with ``ndarray.tofile``
  (what the disk and memcpy allow), written by bare h5py with the same filters in one call
  per column (what HDF5 itself allows), and for lzf the raw compression speed of liblzf
  (h5py's bundled copy, the code HDF5's lzf filter runs) and of our encoder
  (:mod:`recorders.lzf`) on the same shuffled column chunks, without any file, and of our
  encoder on chunks of event records (what the recorder runs: one call makes the four
  columns' chunks);
- the lzf write rate on two event shapes: the real sample, and uniformly random events
  (random x, y, p; sorted t), which compress worst; the worse of the two is the figure;
  for each also the sustained rate (the file created before the clock starts: the
  write() calls and close() alone, what a long recording runs at);
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


def best_cpu(fn, repeat: int, setup=None) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds of this process) over ``repeat`` runs;
    ``setup()`` runs before each, off the clock."""
    wall, cpu = [], []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def random_events(n: int, size, rate_hz: float = 5e6) -> np.ndarray:
    """Uniformly random x, y, p over the sensor; sorted t at ``rate_hz``."""
    rng = np.random.default_rng(3)
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, size[0], n)
    ev["y"] = rng.integers(0, size[1], n)
    ev["t"] = np.sort(rng.integers(0, int(n / rate_hz * 1e6) + 1, n))
    ev["p"] = rng.integers(0, 2, n)
    return ev


def _liblzf():
    """h5py's bundled ``lzf_compress`` (what HDF5's lzf filter calls), or None."""
    import ctypes
    import glob

    import h5py

    for so in glob.glob(os.path.join(os.path.dirname(h5py.__file__), "h5z*.so")):
        try:
            fn = ctypes.CDLL(so).lzf_compress
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_uint]
        fn.restype = ctypes.c_uint
        return fn
    return None


def lzf_ceilings(ev: np.ndarray, chunk: int, repeat: int) -> dict:
    """CPU seconds to compress the shuffled columns chunk by chunk, no file: liblzf (with
    numpy's shuffle, as HDF5's filters do) and our encoder; and to copy the columns."""
    from recorders.lzf import ChunkEncoder, RecordChunkEncoder

    cols = [np.ascontiguousarray(ev[name]) for name in ("x", "y", "t", "p")]
    out = {}
    fn = _liblzf()
    if fn is not None:
        buf = np.empty(chunk * 9 + 64, np.uint8)

        def c_lzf():
            for col in cols:
                s = col.dtype.itemsize
                for i in range(0, len(col), chunk):
                    b = np.ascontiguousarray(col[i:i + chunk].view(np.uint8).reshape(-1, s).T)
                    fn(b.ctypes.data, b.nbytes, buf.ctypes.data, buf.nbytes)
        out["liblzf"] = best_cpu(c_lzf, repeat)[1]
    encs = [ChunkEncoder(chunk, col.dtype) for col in cols]
    for e, col in zip(encs, cols):
        e.encode(col[:chunk])  # compile

    def ours():
        for e, col in zip(encs, cols):
            for i in range(0, len(col), chunk):
                e.encode(col[i:i + chunk])
    out["ours"] = best_cpu(ours, repeat)[1]
    rec = RecordChunkEncoder(chunk)
    rec.encode(ev[:chunk])  # compile
    nbytes = [0]

    def records():
        nbytes[0] = 0
        for i in range(0, len(ev), chunk):
            nbytes[0] += sum(len(b) for b in rec.encode(ev[i:i + chunk]))
    out["records"] = best_cpu(records, repeat)[1]
    out["records_bytes"] = nbytes[0] / len(ev)
    out["copy"] = best_cpu(lambda: [np.copy(c) for c in cols], repeat)[1]
    return out


def write_recording(path: Path, ev: np.ndarray, size, compression: str, batch: int) -> None:
    """A whole recording: the file created, written and closed (``path`` must not exist:
    deleting the previous run's file is not timed)."""
    with EventRecorder(path, size, compression=compression) as rec:
        for i in range(0, len(ev), batch):
            rec.write(ev[i:i + batch])


def sustained_write(path: Path, ev: np.ndarray, size, compression: str, batch: int,
                    repeat: int) -> tuple[float, float]:
    """(best wall, best CPU seconds) of the write() calls and close() alone: the file is
    created (21 datasets, a few ms) before the clock starts."""
    wall, cpu = [], []
    for _ in range(repeat):
        if path.exists():
            path.unlink()
        rec = EventRecorder(path, size, compression=compression)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(ev), batch):
            rec.write(ev[i:i + batch])
        rec.close()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


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
    from recorders.layout import DEFAULT_CHUNK_EVENTS

    ev, size = tiled_events(args.events)
    n = len(ev)
    dur = (int(ev["t"][-1]) - int(ev["t"][0])) / 1e6
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"recorder benchmark: {n:,} events (the EVT3 sample tiled, {dur:.1f} s, {size[0]}x"
          f"{size[1]}), write batches of {args.batch:,}, chunks of {DEFAULT_CHUNK_EVENTS:,}, "
          f"best of {args.repeat}; load average {load:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        from eventpipe.io.aedat4 import encode_aedat4
        from eventpipe.io.evt3 import encode_evt3

        evt3 = tmp / "e.raw"
        evt3.write_bytes(encode_evt3(ev, size))
        aedat4 = tmp / "e.aedat4"
        aedat4.write_bytes(encode_aedat4(ev, size))
        t_raw, c_raw = best_cpu(lambda: write_raw(tmp / "raw.bin", ev), args.repeat,
                                setup=lambda: (tmp / "raw.bin").unlink(missing_ok=True))
        ceil = lzf_ceilings(ev, DEFAULT_CHUNK_EVENTS, args.repeat)
        print(f"anchor  np.copy of the columns     {n / ceil['copy'] / 1e6:7.1f} Mev/s cpu")
        print(f"anchor  raw columns (tofile)       {n / t_raw / 1e6:7.1f} Mev/s wall "
              f"{n / c_raw / 1e6:7.1f} cpu   13.00 B/ev")
        if "liblzf" in ceil:
            print(f"anchor  liblzf alone (h5py's), shuffled chunks, no file "
                  f"{n / ceil['liblzf'] / 1e6:7.1f} Mev/s cpu")
        print(f"anchor  our lzf encoder alone, column chunks, no file "
              f"{n / ceil['ours'] / 1e6:7.1f} Mev/s cpu"
              + (f"   (x{ceil['liblzf'] / ceil['ours']:.2f} of liblzf)" if "liblzf" in ceil
                 else ""))
        print(f"anchor  our lzf encoder alone, record chunks (as the recorder), no file "
              f"{n / ceil['records'] / 1e6:7.1f} Mev/s cpu  {ceil['records_bytes']:5.2f} B/ev")
        print(f"size    EVT3                                      "
              f"{evt3.stat().st_size / n:5.2f} B/ev")
        print(f"size    AEDAT4                                    "
              f"{aedat4.stat().st_size / n:5.2f} B/ev")
        h5 = {}
        shapes = [("sample", ev), ("random", random_events(n, size))]
        for comp in COMPRESSIONS:
            if args.only and comp not in args.only:
                continue
            for shape, events in shapes if comp == "lzf" else shapes[:1]:
                path = tmp / f"r_{comp.replace(':', '_')}_{shape}.h5"
                try:
                    t, c = best_cpu(lambda: write_recording(path, events, size, comp,
                                                            args.batch), args.repeat,
                                    setup=lambda: path.unlink(missing_ok=True))
                except ImportError as exc:
                    print(f"write   {comp:<10} skipped: {exc}")
                    break
                b = path.stat().st_size / n
                t_bare, c_bare = best_cpu(lambda: write_bare_h5(tmp / "bare.h5", events, comp),
                                          args.repeat,
                                          setup=lambda: (tmp / "bare.h5").unlink(missing_ok=True))
                what = f"h5 {comp}" + (f" ({shape})" if comp == "lzf" else "")
                print(f"write   {what:<22} {n / t / 1e6:7.1f} Mev/s wall {n / c / 1e6:7.1f} "
                      f"cpu {b:6.2f} B/ev   (cpu x{c_bare / c:.2f} of bare h5py "
                      f"{n / c_bare / 1e6:.1f}, x{c_raw / c:.2f} of raw; size "
                      f"x{b / (evt3.stat().st_size / n):.2f} of EVT3, "
                      f"x{b / (aedat4.stat().st_size / n):.2f} of AEDAT4)")
                if comp == "lzf":
                    ts, cs = sustained_write(tmp / "sustained.h5", events, size, comp,
                                             args.batch, args.repeat)
                    print(f"write   {what + ' sustained':<22} {n / ts / 1e6:7.1f} Mev/s wall "
                          f"{n / cs / 1e6:7.1f} cpu   (file created before the clock "
                          f"starts; write() calls and close() timed)")
                if shape == "sample":
                    h5[comp] = path

        read_events(evt3)  # warm-up (numba)
        t_evt3, c_evt3 = best_cpu(lambda: read_events(evt3), args.repeat)
        print(f"read    EVT3 (our reader)          {n / t_evt3 / 1e6:7.1f} Mev/s wall "
              f"{n / c_evt3 / 1e6:7.1f} cpu")
        for comp in ("lzf", "none"):
            if comp not in h5:
                continue
            got = read_events(h5[comp])
            assert np.array_equal(got, ev)
            t_h5, c_h5 = best_cpu(lambda: read_events(h5[comp]), args.repeat)
            print(f"read    h5 {comp:<4} (read_events)    {n / t_h5 / 1e6:7.1f} Mev/s wall "
                  f"{n / c_h5 / 1e6:7.1f} cpu   (cpu x{c_evt3 / c_h5:.2f} of EVT3)")
        t_ci, c_ci = best_cpu(lambda: sum(len(c) for c in iter_events(evt3, chunk_events=65_536)),
                              args.repeat)
        print(f"read    EVT3 chunks of 65,536      {n / t_ci / 1e6:7.1f} Mev/s wall "
              f"{n / c_ci / 1e6:7.1f} cpu")
        if "lzf" in h5:
            t_hi, c_hi = best_cpu(lambda: sum(len(c) for c in iter_events(h5["lzf"],
                                                                          chunk_events=65_536)),
                                  args.repeat)
            print(f"read    h5 lzf chunks of 65,536    {n / t_hi / 1e6:7.1f} Mev/s wall "
                  f"{n / c_hi / 1e6:7.1f} cpu   (cpu x{c_ci / c_hi:.2f} of EVT3)")

        hour = tmp / "hour.h5"
        t0 = time.perf_counter()
        hour_recording(hour, args.hour_rate, size)
        t_write = time.perf_counter() - t0
        rng = np.random.default_rng(1)
        t_open = time.perf_counter()
        rec = open_recording(hour)
        t_open = time.perf_counter() - t_open
        lat, lat_cpu, counts = [], [], []
        with rec:
            for s in rng.integers(0, 3599, args.seeks):
                a = int(s) * 1_000_000 + int(rng.integers(0, 1_000_000))
                t0, c0 = time.perf_counter(), time.process_time()
                sl = rec.events(a, a + 1_000_000)
                lat.append(time.perf_counter() - t0)
                lat_cpu.append(time.process_time() - c0)
                counts.append(len(sl))
                assert len(sl) == 0 or (sl["t"][0] >= a and sl["t"][-1] < a + 1_000_000)
            t0 = time.perf_counter()
            rec.position(1_800_000_000)
            t_locate = time.perf_counter() - t0
        lat = np.array(lat) * 1e3
        print(f"seek    1 s slice of a 1-hour recording ({3600 * args.hour_rate:,} events, "
              f"{hour.stat().st_size / 1e6:.0f} MB lzf, written in {t_write:.1f} s): median "
              f"{np.median(lat):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms, max "
              f"{lat.max():.2f} ms, cpu median {np.median(lat_cpu) * 1e3:.2f} ms "
              f"({int(np.mean(counts)):,} events per slice; open "
              f"{t_open * 1e3:.1f} ms; index lookup alone {t_locate * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
