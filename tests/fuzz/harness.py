"""The fuzz harness: mutate seed files, decode them, classify what happens.

Allowed outcomes are a clean decode or an ``EventFormatError`` (a ValueError
naming the file).  Anything else (IndexError, struct.error, MemoryError, a
wrong dtype, a hang) is a failure; the offending input is kept for replay.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.io import iter_events, read_events
from tests.fuzz.mutate import mutate

SEED_LIMIT = 1 << 19  # fuzz the first 512 KiB of large samples (keeps each input fast)


@dataclasses.dataclass
class FuzzStats:
    format: str
    inputs: int = 0
    decoded: int = 0
    typed_errors: int = 0
    failures: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    slowest_s: float = 0.0

    def line(self) -> str:
        return (f"{self.format:<12} inputs {self.inputs:>6}  decoded {self.decoded:>6}  "
                f"typed errors {self.typed_errors:>6}  failures {len(self.failures):>3}  "
                f"{self.inputs / max(self.seconds, 1e-9):8.1f} inputs/s  slowest {self.slowest_s * 1e3:7.1f} ms")


def _check_one(path: Path, fmt: str, chunk_events: int) -> str:
    """Decode ``path`` whole and chunked; return 'ok' or 'typed'; raise otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            whole = read_events(path, format=fmt)
        except EventFormatError as exc:
            if str(path) not in str(exc):
                raise AssertionError(f"error does not name the file: {exc}") from exc
            return "typed"
        if whole.dtype != EVENT_DTYPE:
            raise AssertionError(f"wrong dtype {whole.dtype}")
        chunks = list(iter_events(path, format=fmt, chunk_events=chunk_events))
        got = np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)
        if not np.array_equal(got, whole):
            raise AssertionError("chunked iteration differs from the whole read")
    return "ok"


def fuzz_format(fmt: str, seeds: list[bytes], n: int, *, seed: int = 0,
                donors: list[bytes] | None = None, suffix: str = "",
                keep_dir: str | os.PathLike | None = None, workdir=None) -> FuzzStats:
    """Run ``n`` mutated inputs of format ``fmt``; return the tally."""
    rng = np.random.default_rng(seed)
    stats = FuzzStats(fmt)
    seeds = [s[:SEED_LIMIT] for s in seeds]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sub = Path(tmp) / "action_007"  # lets the HAR-DVS reader claim its files
        sub.mkdir()
        path = sub / f"fuzz{suffix}"
        t_start = time.perf_counter()
        for i in range(n):
            data = mutate(seeds[i % len(seeds)], rng, donors)
            path.write_bytes(data)
            t0 = time.perf_counter()
            try:
                outcome = _check_one(path, fmt, chunk_events=int(rng.integers(1, 5000)))
            except Exception as exc:  # noqa: BLE001 - classifying is the point
                stats.failures.append((i, type(exc).__name__, str(exc)[:300],
                                       traceback.format_exc(limit=3)))
                if keep_dir is not None:
                    Path(keep_dir).mkdir(parents=True, exist_ok=True)
                    (Path(keep_dir) / f"{fmt}_{seed}_{i}{suffix}").write_bytes(data)
                outcome = "fail"
            dt = time.perf_counter() - t0
            stats.slowest_s = max(stats.slowest_s, dt)
            stats.inputs += 1
            stats.decoded += outcome == "ok"
            stats.typed_errors += outcome == "typed"
        stats.seconds = time.perf_counter() - t_start
    return stats
