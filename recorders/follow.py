"""Following a recording while another process writes it (HDF5 SWMR readers).

The reader re-reads the writer's commit record every ``poll_s`` (bounded polling: a file
has no change notification that works across processes and filesystems) and yields the
newly committed events.  It ends when the writer closes the file (complete or not), when an event
reaches ``end_us``, or when nothing new is committed for ``idle_timeout_s`` (a writer
that died); in the last case ``recording.follow_timed_out`` is set.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator

import numpy as np

from eventpipe.io.chunking import rebatch

if TYPE_CHECKING:  # annotations only (reader.py imports this module)
    from recorders.reader import Recording


def _follow_blocks(rec: "Recording", start_us, end_us, poll_s: float, idle_timeout_s: float
                   ) -> Iterator[np.ndarray]:
    pos = None
    last_growth = time.monotonic()
    rec.follow_timed_out = False
    while True:
        rec.refresh()
        n = rec.n_events
        if pos is None:
            pos = rec.position(start_us) if start_us is not None else 0
        if n > pos:
            reached_end = False
            m = rec.n_main
            if pos < m:  # whole chunks: written once, never change
                yield from rec.blocks(pos, min(n, m), start_us, end_us)
            if n > max(pos, m):
                yield from _tail(rec, max(pos, m), n, start_us, end_us)
            if end_us is not None:
                reached_end = int(rec._read_t(n - 1, n)[0]) >= int(end_us)
            pos = n
            last_growth = time.monotonic()
            if reached_end:
                return
            continue
        if rec.closed_by_writer:
            return
        if time.monotonic() - last_growth > idle_timeout_s:
            rec.follow_timed_out = True
            return
        time.sleep(poll_s)


def _tail(rec: "Recording", a: int, n: int, start_us, end_us) -> Iterator[np.ndarray]:
    """Events [a, n) read from the writer's tail slot.  The writer overwrites a slot two
    flushes after the status named it, and it writes the new tail *before* the status that
    names it: so while flush k + 2 overwrites our slot the status may still say k + 1.  A
    read that any flush overtook is therefore read again (from the chunks or the current
    slot: committed positions never change).  (Requiring two flushes, as a first version
    did, returned overwritten events under load: tests/recorders/test_follow.py.)"""
    flushes = rec.status["flushes"]
    while True:
        ev = rec._read(a, n)
        rec.refresh()
        if rec.status["flushes"] == flushes:
            break
        flushes = rec.status["flushes"]
    ev = rec._filter(ev, start_us, end_us)
    if len(ev):
        yield ev


def follow_events(rec: "Recording", *, chunk_events=None, chunk_us=None, start_us=None,
                  end_us=None, poll_s: float = 0.05, idle_timeout_s: float = 10.0
                  ) -> Iterator[np.ndarray]:
    if not poll_s > 0 or not idle_timeout_s > 0:
        raise ValueError("poll_s and idle_timeout_s must be > 0")
    return rebatch(_follow_blocks(rec, start_us, end_us, float(poll_s), float(idle_timeout_s)),
                   chunk_events=chunk_events, chunk_us=chunk_us)
