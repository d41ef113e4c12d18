"""Where an lzf recording's write time goes: the recorder's stages timed apart, per event.

On two event shapes, as in benchmarks/recorder.py (the real EVT3 sample tiled in time, and
uniformly random events at 5 Mev/s on its 1280x720 sensor, which compress worst), ``--events``
each, best of ``--repeat`` in process CPU time:

- anchor: ``np.copy`` of the event records' bytes (13 per event: what touching them costs;
  a copy of the structured array goes field by field and costs several times more);
- ``encoder``: ``RecordChunkEncoder`` on every 16,384-event chunk (records -> the four columns'
  stored lzf chunks, no file), with the stored bytes per event;
- ``checksum``: HDF5's fletcher32 of every stored chunk appended to it (``seal_rows``: what
  the recorder's encoder does in place after each chunk);
- ``index``: ``IndexBuilder.add`` (1 ms period) on every 65,536-event write batch;
- ``direct chunks``: ``write_direct_chunk`` of the encoded and sealed chunks (before the clock
  starts) into four lzf + fletcher32 columns of a fresh file, per event and per call;
- ``create+close``: ``EventRecorder(...)`` and ``close()`` of an empty recording (ms);
- ``whole``: the whole recording (created, written in 65,536-event batches, closed).

Each stage is printed in ns/event and as a multiple of the anchor; the worst shape (the larger
ns/event) of each stage is the figure.

    python benchmarks/recorder_stages.py [--quick] [--events 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import at_least  # noqa: E402
from benchmarks.recorder import best_cpu, random_events, tiled_events, write_recording  # noqa: E402
from recorders import EventRecorder  # noqa: E402
from recorders.create import dataset_plist, new_dataset  # noqa: E402
from recorders.index import IndexBuilder  # noqa: E402
from recorders.layout import DEFAULT_CHUNK_EVENTS, EVENT_COLUMNS, compression_args  # noqa: E402
from recorders.fletcher import seal_rows  # noqa: E402
from recorders.lzf import RecordChunkEncoder, out_size  # noqa: E402

BATCH = 65_536


def encoded_chunks(ev: np.ndarray, chunk: int) -> tuple[list[list[bytes]], float]:
    """Every chunk's four encoded columns (copies, without their checksums), and CPU seconds
    of the encoder alone."""
    enc = RecordChunkEncoder(chunk)
    enc.encode(ev[:chunk])  # compile / cache load
    kept = []
    c0 = time.process_time()
    for i in range(0, len(ev), chunk):
        enc.encode(ev[i:i + chunk])
    cpu = time.process_time() - c0
    enc = RecordChunkEncoder(chunk)  # the same stream, kept for the direct-chunk stage
    for i in range(0, len(ev), chunk):
        kept.append([bytes(b) for b in enc.encode(ev[i:i + chunk])])
    return kept, cpu


def sealed(chunks: list[list[bytes]], chunk: int) -> tuple[list[list[bytes]], float]:
    """``chunks`` with their fletcher32 checksums appended (copies), and CPU seconds of
    ``seal_rows`` alone: what the recorder's encoder does in place after each chunk."""
    width = out_size(8 * chunk)
    rows = []
    for cols in chunks:
        out = np.zeros((4, width), np.uint8)
        for k, data in enumerate(cols):
            out[k, :len(data)] = np.frombuffer(data, np.uint8)
        rows.append((out, np.array([len(d) for d in cols], np.int64)))
    seal_rows(*rows[0])  # compile / cache load
    rows[0][1][:] -= 4
    c0 = time.process_time()
    for out, sizes in rows:
        seal_rows(out, sizes)
    cpu = time.process_time() - c0
    return [[out[k, :sizes[k]].tobytes() for k in range(4)] for out, sizes in rows], cpu


def direct_chunks(path: Path, chunks: list[list[bytes]], n: int, chunk: int) -> float:
    """CPU seconds of write_direct_chunk of sealed ``chunks`` into a fresh file's lzf +
    fletcher32 columns (the recorder's)."""
    _, kw = compression_args("lzf")
    with h5py.File(path, "w", libver="latest") as f:
        ids = [new_dataset(f, name, dt, (n,), maxshape=(None,),
                           plist=dataset_plist((chunk,), fletcher32=True, **kw)).id
               for name, dt in EVENT_COLUMNS]
        c0 = time.process_time()
        for k, cols in enumerate(chunks):
            for dsid, data in zip(ids, cols):
                dsid.write_direct_chunk((k * chunk,), data)
        f.flush()
        cpu = time.process_time() - c0
    path.unlink()
    return cpu


def index_cpu(ev: np.ndarray) -> None:
    ib = IndexBuilder(1000)
    for i in range(0, len(ev), BATCH):
        ib.add(ev["t"][i:i + BATCH], i)


def stages(ev: np.ndarray, size, repeat: int, tmp: Path) -> dict:
    """{stage: CPU seconds}, plus the stored bytes and the number of chunk writes."""
    n, chunk = len(ev), DEFAULT_CHUNK_EVENTS
    raw = ev.view(np.uint8)
    out = {"np.copy": best_cpu(lambda: np.copy(raw), repeat)[1]}
    runs = [encoded_chunks(ev, chunk) for _ in range(repeat)]
    out["encoder"] = min(cpu for _, cpu in runs)
    chunks = runs[0][0]
    out["bytes"] = sum(len(b) + 4 for cols in chunks for b in cols)
    out["calls"] = 4 * len(chunks)
    seals = [sealed(chunks, chunk) for _ in range(repeat)]
    out["checksum"] = min(cpu for _, cpu in seals)
    chunks = seals[0][0]
    index_cpu(ev[:BATCH])
    out["index"] = best_cpu(lambda: index_cpu(ev), repeat)[1]
    out["direct chunks"] = min(direct_chunks(tmp / "d.h5", chunks, n, chunk)
                               for _ in range(repeat))
    path = tmp / "r.h5"
    out["create+close"] = best_cpu(lambda: EventRecorder(path, size).close(), repeat,
                                   setup=lambda: path.unlink(missing_ok=True))[1]
    out["whole"] = best_cpu(lambda: write_recording(path, ev, size, "lzf", BATCH), repeat,
                            setup=lambda: path.unlink(missing_ok=True))[1]
    path.unlink(missing_ok=True)
    return out


def report(shape: str, n: int, s: dict) -> dict:
    """Print the shape's line; return {stage: ns/event}."""
    ns = {k: s[k] / n * 1e9 for k in ("np.copy", "encoder", "checksum", "index", "direct chunks", "whole")}
    anchor = ns["np.copy"]
    print(f"stages  {shape:<7} anchor np.copy {anchor:5.2f} ns/ev | encoder {ns['encoder']:5.2f} "
          f"ns/ev (x{ns['encoder'] / anchor:4.1f}, {s['bytes'] / n:4.2f} B/ev) | checksum "
          f"{ns['checksum']:5.2f} ns/ev (x{ns['checksum'] / anchor:4.1f}) | index "
          f"{ns['index']:5.2f} ns/ev (x{ns['index'] / anchor:4.1f}) | direct chunks "
          f"{ns['direct chunks']:5.2f} ns/ev (x{ns['direct chunks'] / anchor:4.1f}, "
          f"{s['direct chunks'] / s['calls'] * 1e6:4.1f} us/call) | create+close "
          f"{s['create+close'] * 1e3:4.2f} ms | whole {ns['whole']:5.2f} ns/ev "
          f"(x{ns['whole'] / anchor:4.1f})", flush=True)
    ns["create+close"] = s["create+close"] * 1e3
    return ns


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000,000 events, best of 2")
    ap.add_argument("--events", type=at_least(DEFAULT_CHUNK_EVENTS), default=5_000_000,
                    help="events per shape (default 5,000,000)")
    ap.add_argument("--repeat", type=at_least(1), default=3, help="best of R (default 3)")
    args = ap.parse_args(argv)
    n, repeat = (min(args.events, 1_000_000), min(args.repeat, 2)) if args.quick else (
        args.events, args.repeat)
    ev, size = tiled_events(n)
    print(f"recorder_stages benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
          f"{len(ev):,} events per shape, lzf, chunks of {DEFAULT_CHUNK_EVENTS:,}, batches of "
          f"{BATCH:,}, best of {repeat}, process CPU time; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; anchor: np.copy of the records' "
          "bytes",
          flush=True)
    worst: dict[str, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="eventpipe-stages-") as tmp:
        for shape, events in (("sample", ev), ("random", random_events(len(ev), size))):
            for k, v in report(shape, len(events), stages(events, size, repeat,
                                                          Path(tmp))).items():
                worst[k] = max(worst.get(k, (v, shape)), (v, shape))
    print("worst   " + " | ".join(
        f"{k} {v:.2f} {'ms' if k == 'create+close' else 'ns/ev'} ({s})"
        for k, (v, s) in worst.items() if k != "np.copy")
          + f"; load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
