"""The long fuzz run: >= 2,000 mutated inputs per format, each format in its own process.

Mutations of the real samples and of spec vectors (bit flips, overwrites,
truncation, spliced headers from other formats, zeroed/duplicated/deleted
regions, insertions).  Allowed outcomes: a clean decode (whole == chunked) or
an EventFormatError naming the file.  Each child runs under an address-space
limit (bounded memory) and a per-input hang watchdog.  Usage:

    python benchmarks/fuzz.py [--n 2000] [--seed 7] [--mem-gib 4] [--only evt3 ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _child(fmt: str, n: int, seed: int, mem_gib: float, hang_s: float, keep: str, q) -> None:
    import faulthandler
    import resource

    limit = int(mem_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tests.fuzz.corpus import SUFFIX, donors, seeds
    from tests.fuzz.harness import fuzz_format

    faulthandler.dump_traceback_later(hang_s * n, exit=True)
    stats = fuzz_format(fmt, seeds(fmt), n, seed=seed, donors=donors(), suffix=SUFFIX[fmt],
                        keep_dir=keep)
    q.put((stats.line(), [(i, name, msg) for i, name, msg, _ in stats.failures[:5]],
           len(stats.failures)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mem-gib", type=float, default=4.0)
    ap.add_argument("--hang-s", type=float, default=2.0, help="average seconds allowed per input")
    ap.add_argument("--keep", default="/tmp/eventpipe-fuzz-failures")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    from eventpipe.io.formats import format_names

    ctx = mp.get_context("spawn")
    total_fail = 0
    print(f"fuzz: {args.n} inputs per format, seed {args.seed}, memory limit {args.mem_gib} GiB")
    for fmt in format_names():
        if args.only and fmt not in args.only:
            continue
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(fmt, args.n, args.seed, args.mem_gib, args.hang_s,
                                             args.keep, q))
        p.start()
        p.join()
        if p.exitcode != 0:
            print(f"{fmt:<12} CHILD DIED (exit {p.exitcode}): crash, hang or memory limit")
            total_fail += 1
            continue
        line, examples, n_fail = q.get()
        print(line, flush=True)
        for ex in examples:
            print("    ", ex)
        total_fail += n_fail
    print(f"fuzz total failures: {total_fail}")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
