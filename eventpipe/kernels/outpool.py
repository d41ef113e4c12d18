"""A bounded pool that recycles the memory of released outputs (opt-in, explicit).

A new 143 MB ``np.zeros`` output costs ~18-20 ms on this machine before a single event is
binned: Linux maps and zeroes each page at its first touch, in the page fault.  Memory a
process already has mapped costs no fault.  ``OutputPool`` keeps the memory of outputs the
caller has dropped (up to ``max_bytes``) and hands it to the next call that asks for an
output of that size::

    pool = OutputPool(max_bytes=512 << 20)
    for ev in recordings:
        frames = to_frames(ev, (W, H), time_window=10_000, pool=pool)
        consume(frames)            # frames is an ordinary writable ndarray
        del frames                 # (or let it go): its memory goes back to the pool

* The arrays are ordinary C-contiguous writable ``numpy.ndarray`` objects (``torch.from_numpy``
  works); while the array or any view of it is alive its memory is never handed out again.
  When the last reference goes, the buffer returns to the pool, or is unmapped if keeping it
  would take the pool over ``max_bytes`` (the oldest buffers go first).  ``max_bytes=0``
  keeps nothing (every array is unmapped when dropped): recycling off.
* A recycled buffer holds the old contents; :func:`~eventpipe.kernels.to_frames` writes every
  byte of it (each frame binned in a cached scratch frame and copied out once, see
  ``_writeonce``), so the result is exactly what the default call returns.
* Memory held by the pool while no output is alive is at most ``max_bytes`` (+ the
  scratch frames, one per thread); ``clear()`` unmaps all of it.
* Thread-safe.  Not the default of ``to_frames``: a default call returns fresh ``np.zeros``
  memory and holds nothing behind the caller's back.
"""

from __future__ import annotations

import mmap
import threading
import weakref

import numpy as np

#: pooled buffers are whole multiples of this (one transparent huge page)
GRANULE = 2 << 20


def _new_buffer(nbytes: int) -> np.ndarray:
    """``nbytes`` of fresh anonymous memory (asked for as transparent huge pages) as a flat
    uint8 array that owns the mapping: unmapped when the array is freed."""
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        m.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(m, np.uint8)


class _Lease:
    """The base object of an array handed out: gives its buffer back when it is freed."""

    __slots__ = ("__array_interface__", "_buf", "_pool", "__weakref__")

    def __init__(self, buf: np.ndarray, shape, dtype, pool: OutputPool):
        self._buf = buf
        self._pool = weakref.ref(pool)
        self.__array_interface__ = {"shape": tuple(shape), "typestr": dtype.str,
                                    "descr": dtype.descr, "data": (buf.ctypes.data, False),
                                    "strides": None, "version": 3}

    def __del__(self):
        pool = self._pool()
        if pool is not None and self._buf is not None:
            pool._give_back(self._buf)
        self._buf = None


class OutputPool:
    """Recycles released output memory, keeping at most ``max_bytes`` of it (see the module
    docstring).  ``hits``/``misses`` count :meth:`empty` calls served from the pool / with
    fresh memory."""

    def __init__(self, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ValueError(f"OutputPool max_bytes must be an integer >= 0 (bytes), got {max_bytes!r}")
        max_bytes = int(max_bytes)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._free: list[np.ndarray] = []  # oldest first
        self._scratch: dict[tuple, list[np.ndarray]] = {}
        # re-entrant: an output freed by a garbage collection that runs inside a pool
        # method, on the same thread, gives its buffer back from there
        self._lock = threading.RLock()

    @property
    def retained_bytes(self) -> int:
        """Bytes of released outputs the pool holds now (at most ``max_bytes``)."""
        with self._lock:
            return sum(b.nbytes for b in self._free)

    def empty(self, shape, dtype) -> tuple[np.ndarray, bool]:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype`` and whether its
        memory was recycled (then it holds old data, else zeros)."""
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = max(GRANULE, -(-nbytes // GRANULE) * GRANULE)
        with self._lock:
            buf = min((b for b in self._free if size <= b.nbytes <= 2 * size),
                      key=lambda b: b.nbytes, default=None)
            if buf is not None:
                # (by identity; a buffer given back meanwhile, from a garbage collection
                # run by this thread, may have evicted it: it is ours either way)
                for i, b in enumerate(self._free):
                    if b is buf:
                        del self._free[i]
                        break
                self.hits += 1
            else:
                self.misses += 1
        recycled = buf is not None
        if buf is None:
            buf = _new_buffer(size)
        return np.asarray(_Lease(buf, shape, dtype, self)), recycled

    def _give_back(self, buf: np.ndarray) -> None:
        with self._lock:
            if buf.nbytes > self.max_bytes:
                return  # (dropped here: unmapped)
            self._free.append(buf)
            while sum(b.nbytes for b in self._free) > self.max_bytes:
                self._free.pop(0)

    def take_scratch(self, rows: int, elems: int, dtype) -> np.ndarray:
        """Zeroed scratch frames ``(rows, elems)`` (recycled; give them back zeroed)."""
        key = (int(rows), int(elems), np.dtype(dtype).str)
        with self._lock:
            free = self._scratch.get(key)
            if free:
                return free.pop()
        return np.zeros((rows, elems), dtype)

    def give_scratch(self, scratch: np.ndarray) -> None:
        key = (scratch.shape[0], scratch.shape[1], scratch.dtype.str)
        with self._lock:
            free = self._scratch.setdefault(key, [])
            if not free and self.max_bytes > 0:  # one set per shape is enough for one caller at a time
                free.append(scratch)

    def clear(self) -> None:
        """Unmap every buffer the pool holds (arrays still alive are not affected)."""
        with self._lock:
            self._free.clear()
            self._scratch.clear()

    def __repr__(self) -> str:
        return (f"OutputPool(max_bytes={self.max_bytes}, retained_bytes={self.retained_bytes}, "
                f"hits={self.hits}, misses={self.misses})")
