"""Recording creation cost: ``EventRecorder(...)`` against h5py's high-level calls, same file.

A recording starts with 21 datasets and 15 attributes (docs/recorders.md); ``recorders/create.py``
makes them through h5py's low-level API.  The anchor, measured in the same run, makes the same
file through h5py's high-level calls: the layout is read from a recording our recorder made
(every group, dataset - type, shape, maxshape, chunks, the column filters of
``compression_args`` - and attribute), then ``h5py.File`` + ``create_group`` +
``create_dataset`` + ``attrs[name] = value`` + ``swmr_mode = True``, as the recorder does.
Each side is timed from the open to the file in SWMR mode (closing and deleting it are not
timed), best of ``--repeat`` in wall and process CPU time, for each compression; the worst
ratio (anchor CPU / ours) over the compressions is the figure.  ``ns/event`` spreads our
creation over a ``--events``-event recording; ``ms / dataset`` is the anchor's whole time
divided by the number of datasets.

    python benchmarks/recorder_create.py [--quick] [--repeat 30] [--events 5000000]
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
from recorders import EventRecorder  # noqa: E402
from recorders.layout import compression_args, load_hdf5plugin  # noqa: E402

SIZE = (1280, 720)


def compressions() -> list[str]:
    out = ["none", "lzf", "gzip:1"]
    try:
        load_hdf5plugin()  # blosc and zstd need it
        out += ["blosc:lz4", "zstd:1"]
    except ImportError:
        pass
    return out


def layout(path: Path, compression: str) -> list[tuple]:
    """The objects of the recording at ``path``, in creation order: ('group', name, attrs)
    and ('dataset', name, create_dataset kwargs, attrs)."""
    _, columns = compression_args(compression)
    with h5py.File(path, "r") as f:
        out = [("group", "/", dict(f.attrs))]
        chunk_events = int(f["events"].attrs["chunk_events"])

        def visit(name, obj):
            attrs = dict(obj.attrs)
            if isinstance(obj, h5py.Group):
                out.append(("group", name, attrs))
                return
            if obj.chunks is None:  # contiguous, written at creation (a maxshape would chunk it)
                kw = {"data": np.zeros(obj.shape, obj.dtype)}
            else:
                kw = {"shape": obj.shape, "dtype": obj.dtype, "maxshape": obj.maxshape,
                      "chunks": obj.chunks, "fletcher32": obj.fletcher32}
                if obj.chunks == (chunk_events,):
                    kw.update(columns)
            out.append(("dataset", name, kw, attrs))
        f.visititems(visit)
    return out


def high_level(path: Path, objects: list[tuple]) -> h5py.File:
    f = h5py.File(path, "w-", libver="latest", rdcc_nbytes=64 << 20)
    for kind, name, *rest in objects:
        if kind == "group":
            obj = f if name == "/" else f.create_group(name)
        else:
            obj = f.create_dataset(name, **rest[0])
        for k, v in rest[-1].items():
            obj.attrs[k] = v
    f.swmr_mode = True
    return f


def ours(path: Path, compression: str) -> EventRecorder:
    return EventRecorder(path, SIZE, compression=compression)


def best(make, path: Path, repeat: int) -> tuple[float, float]:
    """(best wall s, best CPU s) of ``make()``; the object it returns is closed off the clock."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        obj = make()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        obj.close()
        path.unlink()
    return min(wall), min(cpu)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="best of 5, none and lzf only")
    ap.add_argument("--repeat", type=at_least(1), default=30, help="best of R (default 30)")
    ap.add_argument("--events", type=at_least(1), default=5_000_000,
                    help="recording length for the ns/event column (default 5,000,000)")
    args = ap.parse_args(argv)
    comps = ["none", "lzf"] if args.quick else compressions()
    repeat = min(args.repeat, 5) if args.quick else args.repeat
    print(f"recorder_create benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
          f"best of {repeat}, {SIZE[0]}x{SIZE[1]}; h5py {h5py.__version__}, HDF5 "
          f"{h5py.version.hdf5_version}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; anchor: h5py high-level calls making the same file",
          flush=True)
    worst = None
    with tempfile.TemporaryDirectory(prefix="eventpipe-create-") as tmp:
        path = Path(tmp) / "r.h5"
        for comp in comps:
            ours(path, comp).close()
            objects = layout(path, comp)
            path.unlink()
            n_ds = sum(1 for o in objects if o[0] == "dataset")
            n_attrs = sum(len(o[-1]) for o in objects)
            w_ours, c_ours = best(lambda: ours(path, comp), path, repeat)
            w_hl, c_hl = best(lambda: high_level(path, objects), path, repeat)
            ratio = c_hl / c_ours
            worst = min(worst or (ratio, comp), (ratio, comp))
            print(f"create  {comp:<10} {n_ds} datasets, {n_attrs} attributes: ours "
                  f"{c_ours * 1e3:5.2f} ms cpu ({w_ours * 1e3:5.2f} wall, "
                  f"{c_ours / args.events * 1e9:4.2f} ns/event at {args.events:,})  high-level "
                  f"h5py {c_hl * 1e3:5.2f} ms cpu ({w_hl * 1e3:5.2f} wall, "
                  f"{c_hl / n_ds * 1e3:4.2f} ms / dataset)  ratio {ratio:4.2f}x", flush=True)
    print(f"worst ratio {worst[0]:.2f}x ({worst[1]}); load average {os.getloadavg()[0]:.1f} "
          "at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
