"""Decode speed: our readers against expelliarmus (EVT2, EVT3, DAT) and aedat (AEDAT4).

Tiles the real samples in ../shared/data/events to >= 10 M events each, then
measures in one run: full read and chunked iteration, ours and the anchor's,
and prints Mev/s with ratios.  Usage:

    python benchmarks/decode.py [--events 10000000] [--repeat 3] [--chunk 8192]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiling import best_of, mev_s, same_xyp, tile_aedat4, tile_prophesee  # noqa: E402

from eventpipe.io import iter_events, read_events  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO.parent / "shared" / "data" / "events"

CASES = [  # name, sample, source events, anchor
    ("evt2", "evt2/evt2_sample.raw", 539_481, "expelliarmus"),
    ("evt3", "evt3/evt3_sample.raw", 219_596, "expelliarmus"),
    ("dat", "dat/sample_ncars.dat", 2_009, "expelliarmus"),
    ("aedat4", "aedat4/sample.aedat4", 111_954, "aedat"),
]


def anchor_full(fmt: str, path: Path):
    if fmt == "aedat4":
        import aedat
        parts = [p["events"] for p in aedat.Decoder(str(path)) if "events" in p]
        return np.concatenate(parts)
    from expelliarmus import Wizard
    return Wizard(encoding=fmt).read(path)


def anchor_chunked(fmt: str, path: Path, chunk: int) -> int:
    if fmt == "aedat4":
        import aedat
        return sum(len(p["events"]) for p in aedat.Decoder(str(path)) if "events" in p)
    from expelliarmus import Wizard
    w = Wizard(encoding=fmt, fpath=path, chunk_size=chunk)
    return sum(len(c) for c in w.read_chunk())


def ours_chunked(path: Path, fmt: str, chunk: int) -> int:
    return sum(len(c) for c in iter_events(path, format=fmt, chunk_events=chunk))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    print(f"decode benchmark: >= {args.events:,} events per format, best of {args.repeat}, "
          f"chunk {args.chunk}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, rel, n_src, anchor in CASES:
            if args.only and fmt not in args.only:
                continue
            src = EVENTS / rel
            dst = Path(tmp) / f"tiled_{src.name}"
            if fmt == "aedat4":
                n = tile_aedat4(src, dst, n_src, args.events)
            else:
                n = tile_prophesee(src, dst, n_src, args.events, dat=(fmt == "dat"))
            read_events(dst, format=fmt)  # warm-up (numba compile / cache load)
            t_ours, ours = best_of(lambda: read_events(dst, format=fmt), args.repeat)
            try:
                t_anchor, theirs = best_of(lambda: anchor_full(fmt, dst), args.repeat)
            except ImportError:
                print(f"{fmt:<7} anchor {anchor} not installed: pip install '.[bench]'")
                continue
            agree = same_xyp(ours, theirs)
            t_ours_c, n_c = best_of(lambda: ours_chunked(dst, fmt, args.chunk), args.repeat)
            t_anchor_c, n_ac = best_of(lambda: anchor_chunked(fmt, dst, args.chunk), args.repeat)
            print(f"{fmt:<7} events {len(ours):>11,}  full read: ours {mev_s(n, t_ours):7.1f} Mev/s  "
                  f"{anchor} {mev_s(n, t_anchor):7.1f} Mev/s  ratio {t_anchor / t_ours:5.2f}x  "
                  f"(x/y/p agree: {agree})")
            print(f"{fmt:<7} chunked ({args.chunk}): ours {mev_s(n_c, t_ours_c):7.1f} Mev/s  "
                  f"{anchor} {'read_chunk' if anchor == 'expelliarmus' else 'packets'} "
                  f"{mev_s(n_ac, t_anchor_c):7.1f} Mev/s  ratio {(n_c / t_ours_c) / (n_ac / t_anchor_c):5.2f}x")
            dst.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
