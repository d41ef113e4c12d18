"""HDF5's ``fletcher32`` filter (filter id 3), for the chunks we store and read ourselves.

HDF5's filter appends to each stored chunk (after compression) the Fletcher-32 checksum of
the chunk's bytes as HDF5 computes it (``H5_checksum_fletcher32``: big-endian 16-bit words,
sums folded every 360 words, a last odd byte as the high byte of a word) as 4 little-endian
bytes, and on read refuses a chunk whose checksum does not match (also accepting the
byte-swapped form HDF5 before 1.6.3 wrote).  The recorder writes the event columns' chunks
with ``write_direct_chunk`` (:mod:`recorders.columns`), past HDF5's pipeline, so it seals
them here; the chunk reader (:mod:`recorders.chunks`) checks them here.  Any HDF5 reader
checks them too: the datasets name the filter in their pipelines.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FLETCHER32 = 3   # HDF5's filter id (H5Z_FILTER_FLETCHER32)


@njit(cache=True, nogil=True)
def _sums(w16, data, n):  # pragma: no cover - jitted
    """HDF5's loop (per word: ``sum1 += w; sum2 += sum1``, folded every 360 words) computed a
    block at a time: ``sum1 += S``, ``sum2 += L * sum1 + sum((L - i) * w_i)`` - the same
    integers (HDF5's 32-bit sums never wrap inside a block), in two independent sums that
    vectorise.  ``w16``: ``data``'s bytes as native uint16 (the big-endian word is its
    byte swap)."""
    sum1 = np.int64(0)
    sum2 = np.int64(0)
    words = n // 2
    j = 0
    while words > 0:
        block = min(words, 360)
        words -= block
        s1 = np.int64(0)
        s2 = np.int64(0)
        for i in range(block):
            v = np.int64(w16[j + i])
            w = ((v & 0xFF) << 8) | (v >> 8)
            s1 += w
            s2 += (block - i) * w
        j += block
        sum2 += block * sum1 + s2
        sum1 += s1
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    if n % 2:
        sum1 += np.int64(data[n - 1]) << 8
        sum2 += sum1
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return (sum2 << 16) | sum1


@njit(cache=True, nogil=True)
def fletcher32(data, n):  # pragma: no cover - jitted
    """HDF5's Fletcher-32 of ``data[:n]`` (a C-contiguous uint8 array)."""
    return _sums(data[:n // 2 * 2].view(np.uint16), data, n)


@njit(cache=True, nogil=True)
def _append(buf, n):  # pragma: no cover - jitted
    """Write the checksum of ``buf[:n]`` at ``buf[n:n + 4]`` (little-endian); returns ``n + 4``."""
    c = fletcher32(buf, n)
    for k in range(4):
        buf[n + k] = (c >> (8 * k)) & 0xFF
    return n + 4


@njit(cache=True, nogil=True)
def seal_rows(out, sizes):  # pragma: no cover - jitted
    """Append the checksum to each row ``k`` of ``out`` after its ``sizes[k]`` bytes (room
    for 4 more is the caller's), in place; ``sizes`` grow by 4."""
    for k in range(out.shape[0]):
        sizes[k] = _append(out[k], sizes[k])


@njit(cache=True, nogil=True)
def _intact(stored, n):  # pragma: no cover - jitted
    if n < 4:
        return False
    m = n - 4
    kept = (np.int64(stored[m]) | (np.int64(stored[m + 1]) << 8) | (np.int64(stored[m + 2]) << 16)
            | (np.int64(stored[m + 3]) << 24))
    c = fletcher32(stored, m)
    swapped = ((c & 0x00FF00FF) << 8) | ((c >> 8) & 0x00FF00FF)   # HDF5 < 1.6.3's byte order
    return kept == c or kept == swapped


class Sealer:
    """Appends the checksum to stored chunks: ``seal(data)`` returns a view of a reused buffer
    (valid until the next call) holding ``data`` and its 4 checksum bytes."""

    def __init__(self, max_bytes: int):
        self._buf = np.empty(int(max_bytes) + 4, np.uint8)

    def seal(self, data) -> memoryview:
        src = np.frombuffer(data, np.uint8)
        n = len(src)
        if n + 4 > len(self._buf):
            self._buf = np.empty(2 * n + 4, np.uint8)
        self._buf[:n] = src  # numpy's copy (a memcpy); the checksum then reads our aligned copy
        return memoryview(self._buf[:_append(self._buf, n)])


def intact(stored: np.ndarray, n: int) -> bool:
    """Whether ``stored[:n]`` (a chunk with its checksum) ends with the checksum of the rest."""
    return bool(_intact(stored, n))
