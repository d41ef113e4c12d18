"""Our own encoder for HDF5's standard ``shuffle`` + ``lzf`` filter pair (Numba).

HDF5 runs a dataset's filters in the writing thread, one chunk at a time, through its
chunk cache; with h5py's bundled liblzf that pipeline compresses our event columns at
about the speed of liblzf itself, far below what a recorder needs.  This module produces
*the same stored format* faster, and the writer hands the finished chunks to HDF5 with
``write_direct_chunk``: the datasets keep the standard filter ids (shuffle = 2, lzf =
32000) in their pipelines, so h5py (or any reader with the lzf filter) decodes them like
chunks HDF5 compressed itself.

The stored bytes of a chunk are ``lzf(shuffle(chunk))``: shuffle puts byte ``b`` of every
element in plane ``b`` (a no-op for one-byte elements); LZF is a byte stream of literal
runs (control byte ``c < 32``: ``c + 1`` literal bytes follow) and back-references
(``c >> 5`` = length - 2, 7 meaning "plus the next byte"; 13-bit distance - 1 in the low
five bits of ``c`` and the byte after).  The encoder here is greedy like liblzf and
differs in how it searches, never in what it emits:

- each byte plane is encoded on its own, read with a stride straight from the column (no
  shuffled copy is made); a back-reference never reaches into another plane;
- a plane whose bytes are all equal (the high bytes of t, of x and y on small sensors) is
  emitted directly as one literal and back-references of distance 1, 264 bytes each;
- elsewhere a run of a repeated byte is taken as a distance-1 match before hashing, and
  after a run of misses the search skips ahead progressively (as LZ4 does), so
  near-random planes (the low byte of x) cost little; the skipped bytes become literals.

A chunk that would not shrink is still emitted as a valid LZF stream (literal runs: at most
1/32 larger than the chunk), so every stored chunk goes through the same two filters and
no chunk depends on HDF5's per-chunk filter mask.
"""

from __future__ import annotations

import numpy as np
from numba import njit

HASH_BITS = 13
MAX_OFF = 8192      # the farthest an LZF back-reference reaches
MAX_LEN = 264       # the longest LZF back-reference
SKIP_SHIFT = 4      # after 16 misses in a row step 2 bytes, after 32 three, ...


@njit(cache=True, nogil=True, inline="always")
def _literals(src, a, b, dst, op, cap):
    """Emit src[a:b] as literal runs of <= 32 bytes; return the new op or -1 (no room)."""
    while a < b:
        k = min(b - a, 32)
        if op + 1 + k > cap:
            return -1
        dst[op] = k - 1
        op += 1
        for j in range(k):
            dst[op + j] = src[a + j]
        op += k
        a += k
    return op


@njit(cache=True, nogil=True, inline="always")
def _backref(dst, op, cap, dist, length):
    """Emit a back-reference of ``length`` (3..264) bytes at ``dist`` (1..8192)."""
    if op + 3 > cap:
        return -1
    off = dist - 1
    ln = length - 2
    if ln < 7:
        dst[op] = (ln << 5) | (off >> 8)
        op += 1
    else:
        dst[op] = (7 << 5) | (off >> 8)
        dst[op + 1] = ln - 7
        op += 2
    dst[op] = off & 0xFF
    return op + 1


@njit(cache=True, nogil=True)
def _encode_run(src, dst, op, cap):
    """A plane of one repeated byte: one literal, then distance-1 back-references."""
    n = src.shape[0]
    if op + 2 > cap:
        return -1
    dst[op] = 0
    dst[op + 1] = src[0]
    op += 2
    i = 1
    while n - i >= 3:
        k = min(n - i, MAX_LEN)
        op = _backref(dst, op, cap, 1, k)
        if op < 0:
            return -1
        i += k
    return _literals(src, i, n, dst, op, cap)


@njit(cache=True, nogil=True)
def _encode_plane(src, dst, op, cap, htab, hbase):
    """LZF-encode one byte plane ``src`` (any stride) after ``dst[:op]``; -1 if no room.
    ``htab`` holds positions offset by ``hbase``: entries below ``hbase`` are stale."""
    n = src.shape[0]
    if n == 0:
        return op
    b0 = src[0]
    same = True
    for i in range(1, n):
        if src[i] != b0:
            same = False
            break
    if same:
        return _encode_run(src, dst, op, cap)
    hmask = htab.shape[0] - 1
    ip = 0
    lit = 0
    miss = 0
    while ip + 2 < n:
        c0 = src[ip]
        c1 = src[ip + 1]
        c2 = src[ip + 2]
        if ip > 0 and c0 == src[ip - 1] and c1 == c0 and c2 == c0:
            ref = ip - 1
        else:
            h = (np.uint32(c0) << 16) | (np.uint32(c1) << 8) | np.uint32(c2)
            h = ((h * np.uint32(2654435761)) >> np.uint32(32 - HASH_BITS)) & hmask
            ref = htab[h] - hbase
            htab[h] = ip + hbase
            if ref < 0 or ip - ref > MAX_OFF or src[ref] != c0 or src[ref + 1] != c1 \
                    or src[ref + 2] != c2:
                miss += 1
                ip += 1 + (miss >> SKIP_SHIFT)
                continue
        maxlen = min(n - ip, MAX_LEN)
        length = 3
        while length < maxlen and src[ref + length] == src[ip + length]:
            length += 1
        op = _literals(src, lit, ip, dst, op, cap)
        if op < 0:
            return -1
        op = _backref(dst, op, cap, ip - ref, length)
        if op < 0:
            return -1
        ip += length
        lit = ip
        miss = 0
    return _literals(src, lit, n, dst, op, cap)


@njit(cache=True, nogil=True)
def _encode(planes, first_const, dst, htab, hbase):
    """``planes``: (itemsize, n) strided view of the chunk's bytes, plane-major; planes
    from ``first_const`` on are known to hold one repeated byte each.  ``hbase``: the
    first hash-table position of this call (all older entries are below it)."""
    cap = dst.shape[0]
    op = 0
    n = planes.shape[1]
    for b in range(planes.shape[0]):
        if b >= first_const:
            op = _encode_run(planes[b], dst, op, cap)
        else:
            op = _encode_plane(planes[b], dst, op, cap, htab, hbase + b * n)
        if op < 0:
            return 0
    return op


class ChunkEncoder:
    """Encodes whole chunks of one column for a dataset with filters shuffle + lzf.

    ``encode(col)`` returns the stored bytes for ``write_direct_chunk`` (filter mask 0);
    the output buffer is reused (copy it if you keep it past the next call)."""

    def __init__(self, chunk: int, dtype):
        self.dtype = np.dtype(dtype)
        self.chunk = int(chunk)
        self.nbytes = self.chunk * self.dtype.itemsize
        # room for the worst case: all literals, one control byte per 32 (+1 per plane)
        self._out = np.empty(self.nbytes + self.nbytes // 32 + 2 * self.dtype.itemsize + 8,
                             np.uint8)
        self._htab = np.full(1 << HASH_BITS, -1, np.int64)
        self._hbase = 0  # grows by the bytes of each chunk: older table entries are stale
        self._pad = np.zeros(self.chunk, self.dtype)

    def encode(self, col: np.ndarray) -> memoryview:
        col = np.ascontiguousarray(col, dtype=self.dtype)
        if len(col) != self.chunk:  # the last, partial chunk: HDF5 stores whole chunks
            pad = self._pad
            pad[:len(col)] = col
            pad[len(col):] = 0
            col = pad
        raw = col.view(np.uint8)
        planes = raw.reshape(self.chunk, self.dtype.itemsize).T
        n = _encode(planes, self._first_const(col), self._out, self._htab, self._hbase)
        self._hbase += self.nbytes
        if n == 0:  # cannot happen: the buffer has room for all literals
            raise RuntimeError("lzf encoder: output buffer too small")
        return memoryview(self._out[:n])

    def _first_const(self, col: np.ndarray) -> int:
        """The first byte plane from which every plane holds one repeated byte, found from
        the chunk's minimum and maximum: values between them share the bits above any
        bit where the two agree upwards (for t: all bytes above the low two or three).
        Narrow columns skip this (the encoder's own scan finds a constant plane)."""
        size = self.dtype.itemsize
        if size < 4:
            return size
        lo, hi = int(col.min()), int(col.max())
        for b in range(size):
            if lo >> (8 * b) == hi >> (8 * b):
                return b
        return size


def shuffle_lzf_decode(data: bytes, dtype, chunk: int) -> np.ndarray:
    """Decode one stored chunk (pure numpy/Python; for tests and tools, not for speed)."""
    dtype = np.dtype(dtype)
    out = bytearray()
    ip, src = 0, memoryview(data)
    while ip < len(src):
        c = src[ip]
        ip += 1
        if c < 32:
            out += src[ip:ip + c + 1]
            ip += c + 1
            continue
        length = c >> 5
        if length == 7:
            length += src[ip]
            ip += 1
        ref = len(out) - ((c & 0x1F) << 8) - 1 - src[ip]
        ip += 1
        if ref < 0:
            raise ValueError("LZF back-reference before the start of the chunk")
        for _ in range(length + 2):
            out.append(out[ref])
            ref += 1
    planes = np.frombuffer(bytes(out), np.uint8).reshape(dtype.itemsize, chunk)
    return np.ascontiguousarray(planes.T).reshape(-1).view(dtype)


@njit(cache=True, nogil=True)
def lzf_decode(src, n_in, dst):
    """Decode the LZF stream ``src[:n_in]`` into ``dst``; return the bytes written, or -1
    for a stream that is not valid LZF or does not fit (damage never reads or writes out
    of bounds)."""
    ip = 0
    op = 0
    cap = dst.shape[0]
    while ip < n_in:
        c = np.int64(src[ip])
        ip += 1
        if c < 32:
            k = c + 1
            if ip + k > n_in or op + k > cap:
                return -1
            dst[op:op + k] = src[ip:ip + k]
            ip += k
            op += k
        else:
            length = c >> 5
            if length == 7:
                if ip >= n_in:
                    return -1
                length += np.int64(src[ip])
                ip += 1
            if ip >= n_in:
                return -1
            ref = op - ((c & 0x1F) << 8) - 1 - np.int64(src[ip])
            ip += 1
            length += 2
            if ref < 0 or op + length > cap:
                return -1
            if op - ref == 1:  # a run of one byte (the high bytes of t): a fill
                dst[op:op + length] = dst[ref]
            else:  # overlapping copies repeat the pattern, byte by byte
                for j in range(length):
                    dst[op + j] = dst[ref + j]
            op += length
    return op


@njit(cache=True, nogil=True)
def scatter(raw, size, chunk, shuffled, first, count, out):
    """Elements ``first .. first + count`` of a decoded chunk ``raw`` (``chunk`` elements of
    ``size`` bytes; byte planes when ``shuffled``) into ``out``, a (count, size) byte view
    of the destination field (any strides)."""
    if shuffled:  # plane by plane (measured faster than element by element)
        for b in range(size):
            base = b * chunk + first
            for i in range(count):
                out[i, b] = raw[base + i]
    else:
        for i in range(count):
            base = (first + i) * size
            for b in range(size):
                out[i, b] = raw[base + b]
