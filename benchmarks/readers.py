"""Reader speed for the formats decode.py leaves out: AEDAT 2.0, AEDAT 3.1, ATIS .bin, ES, CSV.

Each format is read from files of three shapes, >= ``--events`` events each, built in a
temporary directory (the real recordings are read from ../shared/data/events, never copied):

- ``sample``: the real recording of that format, its body tiled (AEDAT 2.0: the DAVIS240 file
  with its APS and IMU words; ATIS .bin: the N-MNIST file with its overflow markers) or its
  events repeated later in time and encoded again (ES: the faery sample; AEDAT 3.1 and CSV,
  which have no real sample here: the events of the AEDAT 2.0 recording);
- ``dvs128 dense``: uniformly random events on 128x128 at 10 Mev/s (mean 0.1 us apart);
- ``vga sparse``: uniformly random events on 640x480 at 5 kev/s (mean 200 us apart); ATIS .bin
  holds x < 256 and y < 240 only, so its sparse shape is ``dvs128 sparse``.

Every line times our ``read_events`` (after one untimed read: Numba cache load) and the format's
anchor, best of ``--repeat``, in the same run and on the same file; an anchor that has spent 5 s
stops repeating (the line says how many runs it had):

- AEDAT 2.0: tonic ``read_dvs_128`` (DVS128 files) or ``read_davis_346`` (DAVIS files), and
- AEDAT 3.1: tonic ``read_dvs_ibm`` (the DVS Gesture reader), all three with their header call
  fixed (in tonic 1.7 ``read_dvs_128`` and ``read_dvs_ibm`` raise ``ValueError: too many values
  to unpack``): ``np.fromfile`` of the words, masks, no filtering (APS, IMU and invalid words
  come out as events), no checks;
- ATIS .bin: tonic ``read_mnist_file``;
- ES: faery ``events_stream_from_file(...).to_array()``;
- CSV: ``np.loadtxt`` of the four integer columns.

``ratio`` = the anchor's time / ours (> 1: ours is faster), in process CPU time (steadier than
wall time on a shared machine; the wall-time ratio follows in brackets; faery may use more than
one thread, which CPU time counts).  For each format the worst ratio over the shapes is the
figure; the last line is the worst over all.

    python benchmarks/readers.py [--quick] [--events 2000000] [--repeat 3] [--only aedat2 es ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import at_least  # noqa: E402
from benchmarks._tiling import mev_s  # noqa: E402
from eventpipe.events import EVENT_DTYPE  # noqa: E402
from eventpipe.io import read_events  # noqa: E402
from eventpipe.io.aedat2 import encode_aedat2  # noqa: E402
from eventpipe.io.aedat3 import encode_aedat31  # noqa: E402
from eventpipe.io.atis_bin import encode_atis_bin  # noqa: E402
from eventpipe.io.csv_text import write_csv  # noqa: E402
from eventpipe.io.es import encode_es  # noqa: E402

EVENTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "events"
AEDAT2_SAMPLE = EVENTS / "aedat2" / "IMU_translBoxes.aedat"
BIN_SAMPLE = EVENTS / "bin" / "sample_nmnist.bin"
ES_SAMPLE = EVENTS / "es" / "dvs.es"
FORMATS = ("aedat2", "aedat3", "atis_bin", "es", "csv")
SUFFIX = {"aedat2": ".aedat", "aedat3": ".aedat", "atis_bin": ".bin", "es": ".es", "csv": ".csv"}
DENSE_DT_US, SPARSE_DT_US = 0.1, 200.0


def synthetic(n: int, size: tuple[int, int], mean_dt_us: float, seed: int) -> np.ndarray:
    """Uniformly random events on ``size`` (W, H), Poisson arrivals ``mean_dt_us`` apart."""
    rng = np.random.default_rng(seed)
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, size[0], n)
    ev["y"] = rng.integers(0, size[1], n)
    ev["t"] = np.cumsum(rng.exponential(mean_dt_us, n)).astype(np.int64)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def repeated(ev: np.ndarray, n: int) -> np.ndarray:
    """``ev`` repeated until >= n events, each copy later in time than the one before."""
    ev = ev[np.argsort(ev["t"], kind="stable")]
    span = int(ev["t"][-1] - ev["t"][0]) + 1
    k = -(-n // len(ev))
    out = np.tile(ev, k)
    out["t"] = out["t"] - ev["t"][0] + np.repeat(np.arange(k, dtype=np.int64) * span, len(ev))
    return out


def tiled_body(src: Path, dst: Path, header_end: int, n_src: int, n: int) -> Path:
    data = src.read_bytes()
    k = -(-n // n_src)
    with open(dst, "wb") as f:
        f.write(data[:header_end])
        for _ in range(k):
            f.write(data[header_end:])
    return dst


def aedat2_header_end(data: bytes) -> int:
    pos = 0
    while data[pos:pos + 1] == b"#":
        pos = data.index(b"\n", pos) + 1
    return pos


def shapes(fmt: str, n: int, tmp: Path) -> list[tuple[str, Path]]:
    """(shape name, file) for ``fmt``, >= n events each."""
    dense = synthetic(n, (128, 128), DENSE_DT_US, 1)
    sparse = synthetic(n, (640, 480), SPARSE_DT_US, 2)
    out = []

    def put(name: str, data: bytes | None = None, events=None) -> None:
        path = tmp / f"{fmt}_{name.split()[0]}_{name.split()[1]}{SUFFIX[fmt]}"
        if events is not None:
            write_csv(path, events)
        else:
            path.write_bytes(data)
        out.append((name, path))
    if fmt == "aedat2":
        data = AEDAT2_SAMPLE.read_bytes()
        n_src = len(read_events(AEDAT2_SAMPLE))
        out.append(("sample davis240 (tiled)", tiled_body(
            AEDAT2_SAMPLE, tmp / "aedat2_sample.aedat", aedat2_header_end(data), n_src, n)))
        put("dvs128 dense", encode_aedat2(dense, "dvs128"))
        put("vga sparse", encode_aedat2(sparse, "davis640"))
    elif fmt == "aedat3":
        put("sample davis240 events", encode_aedat31(repeated(read_events(AEDAT2_SAMPLE), n),
                                                    "DAVIS240C"))
        put("dvs128 dense", encode_aedat31(dense, "DVS128"))
        put("vga sparse", encode_aedat31(sparse, "DAVIS640"))
    elif fmt == "atis_bin":
        n_src = len(read_events(BIN_SAMPLE))
        out.append(("sample n-mnist (tiled)", tiled_body(BIN_SAMPLE, tmp / "bin_sample.bin", 0,
                                                         n_src, n)))
        put("dvs128 dense", encode_atis_bin(dense))
        put("dvs128 sparse", encode_atis_bin(synthetic(n, (128, 128), SPARSE_DT_US, 2)))
    elif fmt == "es":
        put("sample 320x240 (repeated)", encode_es(repeated(read_events(ES_SAMPLE), n), (320, 240)))
        put("dvs128 dense", encode_es(dense, (128, 128)))
        put("vga sparse", encode_es(sparse, (640, 480)))
    else:
        put("sample davis240 events", events=repeated(read_events(AEDAT2_SAMPLE), n))
        put("dvs128 dense", events=dense)
        put("vga sparse", events=sparse)
    return out


def tonic_aedat(path: Path, layout: str) -> int:
    """tonic 1.7's ``read_dvs_128`` / ``read_davis_346`` / ``read_dvs_ibm`` with their header call
    fixed (``read_aedat_header_from_file`` returns three values; two of those readers unpack two
    and raise ``ValueError``): the words by ``get_aer_events_from_file``, tonic's masks, and
    ``make_structured_array``.  Number of events (tonic keeps every word: APS, IMU, invalid)."""
    import tonic.io as tio
    version, start, _ = tio.read_aedat_header_from_file(str(path))
    words = tio.get_aer_events_from_file(str(path), version, start)
    addr, t = words["address"], words["timeStamp"]
    if layout == "dvs128":
        x, y, p = (addr >> 8) & 0x007F, (addr >> 1) & 0x007F, addr & 0x1
    elif layout == "davis":
        x = (346 - 1) - ((addr & 4190208) >> 12)
        y = (260 - 1) - ((addr & 2143289344) >> 22)
        p = (addr & 2048) >> 11
    else:
        x, y, p = (addr >> 17) & 0x00001FFF, (addr >> 2) & 0x00001FFF, (addr >> 1) & 0x00000001
    return len(tio.make_structured_array(x, y, t, p))


def anchor(fmt: str, shape: str):
    """(name, function path -> number of events) of ``fmt``'s anchor on ``shape``."""
    if fmt == "aedat2":
        layout = "dvs128" if shape.startswith("dvs128") else "davis"
        name = "tonic read_dvs_128" if layout == "dvs128" else "tonic read_davis_346"
        return name, lambda path: tonic_aedat(path, layout)
    if fmt == "aedat3":
        return "tonic read_dvs_ibm", lambda path: tonic_aedat(path, "aedat3")
    if fmt == "atis_bin":
        import tonic.io
        from tonic.datasets import NMNIST
        return "tonic read_mnist_file", lambda path: len(tonic.io.read_mnist_file(str(path),
                                                                                   NMNIST.dtype))
    if fmt == "es":
        import faery
        return "faery", lambda path: len(faery.events_stream_from_file(path).to_array())
    return "np.loadtxt", lambda path: len(np.loadtxt(path, delimiter=",", skiprows=1,
                                                     dtype=np.int64))


def best_within(fn, repeat: int, budget_s: float = float("inf")):
    """(best wall seconds, best CPU seconds of this process, last result, runs): up to
    ``repeat`` runs, no more once ``budget_s`` of wall time is spent (a slow anchor: tonic's
    overflow loop is quadratic on sparse .bin files)."""
    wall, cpu, result = [], [], None
    while len(wall) < repeat and sum(wall) < budget_s:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu), result, len(wall)


def measure(fmt: str, n: int, repeat: int, tmp: Path) -> list[tuple[str, float]]:
    """Print one line per shape; return [(shape, CPU-time ratio)]."""
    ratios = []
    for shape, path in shapes(fmt, n, tmp):
        name, run_anchor = anchor(fmt, shape)
        read_events(path, format=fmt)  # Numba cache load
        w_ours, c_ours, ev, _ = best_within(lambda: read_events(path, format=fmt), repeat)
        w_anchor, c_anchor, n_anchor, runs = best_within(lambda: run_anchor(path), repeat, 5.0)
        ratio = c_anchor / c_ours
        ratios.append((shape, ratio))
        print(f"{fmt:<8} {shape:<26} events {len(ev):>10,}  ours {mev_s(len(ev), c_ours):6.1f} "
              f"Mev/s cpu ({mev_s(len(ev), w_ours):5.1f} wall)  {name} "
              f"{mev_s(n_anchor, c_anchor):6.1f} cpu ({mev_s(n_anchor, w_anchor):5.1f} wall)  "
              f"ratio {ratio:5.2f}x (wall {w_anchor / w_ours:4.2f}x)"
              + (f"  (anchor: {runs} run{'s' * (runs > 1)})" if runs < repeat else ""), flush=True)
        path.unlink()
    return ratios


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200,000 events and best of 2")
    ap.add_argument("--events", type=at_least(1000), default=2_000_000,
                    help="events per file (default 2,000,000)")
    ap.add_argument("--repeat", type=at_least(1), default=3, help="best of R reads (default 3)")
    ap.add_argument("--only", nargs="+", choices=FORMATS, default=list(FORMATS), metavar="FMT",
                    help=f"formats to measure, of {', '.join(FORMATS)}")
    args = ap.parse_args(argv)
    n, repeat = (min(args.events, 200_000), min(args.repeat, 2)) if args.quick else (
        args.events, args.repeat)
    print(f"readers benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
          f">= {n:,} events per file, best of {repeat}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs", flush=True)
    worst = []
    with tempfile.TemporaryDirectory(prefix="eventpipe-readers-") as tmp:
        for fmt in args.only:
            ratios = measure(fmt, n, repeat, Path(tmp))
            shape, ratio = min(ratios, key=lambda r: r[1])
            worst.append((fmt, shape, ratio))
            print(f"{fmt:<8} worst ratio {ratio:5.2f}x ({shape})", flush=True)
    fmt, shape, ratio = min(worst, key=lambda r: r[2])
    print(f"worst over all: {ratio:.2f}x ({fmt}, {shape}); load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
