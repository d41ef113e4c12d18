"""Re-batching decoded blocks into chunks of a fixed event count or time span.

Readers decode their files in bounded blocks; :func:`rebatch` turns that
sequence into the chunks a caller asked for.  Concatenating the chunks always
gives exactly the concatenation of the blocks: nothing is dropped, reordered
or duplicated, whatever the block and chunk sizes are.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from eventpipe.events import EVENT_DTYPE


def _check_positive(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def rebatch(blocks: Iterable[np.ndarray], chunk_events: int | None = None,
            chunk_us: int | None = None) -> Iterator[np.ndarray]:
    """Yield consecutive, non-empty event chunks.

    - ``chunk_events``: every chunk but the last has exactly this many events.
    - ``chunk_us``: chunks cover consecutive time windows ``[b, b + chunk_us)``
      aligned on the first event's timestamp; a chunk closes at the first event
      whose timestamp reaches the window's end (events whose time steps
      backwards stay in the window they arrive in, so order is kept).  Empty
      windows yield nothing.  An event more than ``chunk_us`` *before* the
      window's start (time jumped back: a damaged timestamp ran ahead, a clock
      was reset) also closes the chunk and starts a new window at it, so one bad
      timestamp never gathers the rest of a file into one chunk.
    - both: a chunk closes on whichever limit comes first.
    - neither: the blocks are passed through (empty ones skipped).

    Chunks may be views into the reader's block buffers; readers allocate a new
    buffer per block, so the views stay valid.

    When ``blocks`` raises (damage with ``on_error="raise"``), the events taken
    before the error are yielded first as one short chunk, then the error is
    raised: a caller sees every event decoded before the damage, as with
    ``read()`` and its ``err.partial``.
    """
    chunk_events = _check_positive("chunk_events", chunk_events)
    chunk_us = _check_positive("chunk_us", chunk_us)
    if chunk_events is None and chunk_us is None:
        for b in blocks:
            if len(b):
                yield b
        return

    pending: list[np.ndarray] = []
    n_pending = 0
    boundary: int | None = None  # end of the current time window

    def take() -> np.ndarray:
        nonlocal pending, n_pending
        out = pending[0] if len(pending) == 1 else np.concatenate(pending)
        pending = []
        n_pending = 0
        return out

    it = iter(blocks)
    while True:
        try:
            block = next(it, None)
        except Exception:
            if n_pending:  # the events before the damage reach the caller, then the error
                yield take()
            raise
        if block is None:
            break
        start = 0
        n = len(block)
        while start < n:
            cut = n
            if chunk_events is not None:
                cut = min(cut, start + chunk_events - n_pending)
            closes_on_time = False
            if chunk_us is not None:
                t = block["t"]
                if boundary is None:
                    boundary = int(t[start]) + chunk_us
                # first index in [start, cut) with t >= boundary, or far before the window
                seg = t[start:cut]
                hits = np.flatnonzero((seg >= boundary) | (seg < boundary - 2 * chunk_us))
                if hits.size:
                    cut = start + int(hits[0])
                    closes_on_time = True
            if cut > start:
                pending.append(block[start:cut])
                n_pending += cut - start
            if closes_on_time:
                if n_pending:
                    yield take()
                # advance the window past the event that closed it
                tb = int(block["t"][cut])
                if tb >= boundary:
                    boundary += ((tb - boundary) // chunk_us + 1) * chunk_us
                else:  # time jumped back: a new window at that event
                    boundary = tb + chunk_us
            elif chunk_events is not None and n_pending >= chunk_events:
                yield take()
            start = cut
    if n_pending:
        yield take()


def concat(chunks: Iterable[np.ndarray]) -> np.ndarray:
    """Concatenate event chunks (an empty array when there are none)."""
    parts = [c for c in chunks if len(c)]
    if not parts:
        return np.empty(0, dtype=EVENT_DTYPE)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)
