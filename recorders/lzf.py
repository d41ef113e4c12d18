"""Our own encoder for HDF5's standard ``shuffle`` + ``lzf`` filter pair, and decoders.

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
five bits of ``c`` and the byte after).  The encoder (:mod:`recorders.lzf_encode`) is
greedy like liblzf and differs in how it searches, never in what it emits: each byte
plane on its own, a plane of one repeated byte emitted directly as 264-byte distance-1
references, a run (distance 1) tried before the hash table, matches compared 8 bytes at a
time, and after a run of misses the search skips ahead (as LZ4 does).

:class:`ChunkEncoder` encodes chunks of one column; :class:`RecordChunkEncoder` encodes a
chunk of event records into the four columns' chunks in one call (one pass lays the
13-byte records out as the 13 byte planes of x, y, t and p).  A chunk that would not
shrink is still emitted as a valid LZF stream (literal runs: at most 1/32 larger than the
chunk), so every stored chunk goes through the same two filters and no chunk depends on
HDF5's per-chunk filter mask.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from recorders.fletcher import seal_rows
from recorders.lzf_encode import (
    HASH_BITS, SLACK, encode_planes, encode_records, plane_stride, shuffle_into,
)

RECORD_COLUMNS = ("x", "y", "t", "p")   # the order of RecordChunkEncoder's outputs


def out_size(nbytes: int) -> int:
    """Room for an encoded chunk of ``nbytes``: all literals (one control byte per 32) and
    the encoder's spare bytes."""
    return nbytes + nbytes // 32 + 64 + SLACK


MAX_GAP = 1 << 14   # the table base steps past each chunk by more than an LZF distance


class _HashTable:
    """The encoder's hash table of positions (int32, L1-sized) and its base: a chunk's
    positions are stored plus the base, which then steps past the chunk, so entries of
    older chunks read as stale without clearing the table."""

    def __init__(self):
        self.htab = np.zeros(1 << HASH_BITS, np.int32)
        self.gbase = 1 << 20

    def advance(self, nbytes: int) -> None:
        self.gbase += nbytes + MAX_GAP
        if self.gbase > 1 << 30:  # clear it before the int32 positions could overflow
            self.htab[:] = 0
            self.gbase = 1 << 20


class ChunkEncoder:
    """Encodes whole chunks of one column for a dataset with filters shuffle + lzf.

    ``encode(col)`` returns the stored bytes for ``write_direct_chunk`` (filter mask 0);
    the output buffer is reused (copy it if you keep it past the next call)."""

    def __init__(self, chunk: int, dtype):
        self.dtype = np.dtype(dtype)
        self.chunk = int(chunk)
        self.nbytes = self.chunk * self.dtype.itemsize
        self._out = np.empty(out_size(self.nbytes), np.uint8)
        self._ps = plane_stride(self.chunk)
        self._planes = np.zeros(self._ps * self.dtype.itemsize + SLACK, np.uint8)
        self._table = _HashTable()
        self._pad = np.zeros(self.chunk, self.dtype)
        self._skip = np.zeros(self.dtype.itemsize, np.int64)  # planes' state across chunks

    def encode(self, col: np.ndarray) -> memoryview:
        col = np.ascontiguousarray(col, dtype=self.dtype)
        if len(col) != self.chunk:  # the last, partial chunk: HDF5 stores whole chunks
            pad = self._pad
            pad[:len(col)] = col
            pad[len(col):] = 0
            col = pad
        size = self.dtype.itemsize
        shuffle_into(col.view(np.uint8), self.chunk, size, self._ps, self._planes)
        t = self._table
        n = encode_planes(self._planes, 0, self._ps, size, self.chunk, self._out, t.htab,
                          t.gbase, self._skip, 0)
        t.advance(len(self._planes))
        if n <= 0:  # cannot happen: the buffer has room for all literals
            raise RuntimeError("lzf encoder: output buffer too small")
        return memoryview(self._out[:n])


class RecordChunkEncoder:
    """Encodes a chunk of event records (``EVENT_DTYPE``, 13 bytes each) into the stored
    chunks of the columns x, y, t, p (filters shuffle + lzf, and with ``checksum`` HDF5's
    fletcher32 after them: :mod:`recorders.fletcher`) in one call."""

    def __init__(self, chunk: int, *, checksum: bool = False):
        self.chunk = int(chunk)
        self.checksum = bool(checksum)
        self._ps = plane_stride(self.chunk)
        self._planes = np.zeros(13 * self._ps + SLACK, np.uint8)
        self._out = np.empty((4, out_size(8 * self.chunk)), np.uint8)
        self._sizes = np.zeros(4, np.int64)
        self._table = _HashTable()
        self._skip = np.zeros(13, np.int64)  # the planes' state across chunks

    def encode(self, records: np.ndarray) -> list[memoryview]:
        """The stored bytes of x, y, t, p for ``records`` (at most one chunk; a partial
        chunk is padded with zeros).  The buffers are reused by the next call."""
        n = len(records)
        if not 0 < n <= self.chunk:
            raise ValueError(f"{n} records for a chunk of {self.chunk}")
        if records.dtype.itemsize != 13:
            raise ValueError(f"records of {records.dtype.itemsize} bytes, expected 13")
        raw = np.ascontiguousarray(records).view(np.uint8)
        t = self._table
        encode_records(raw, n, self.chunk, self._ps, self._planes, self._out, self._sizes,
                       t.htab, t.gbase, self._skip)
        t.advance(len(self._planes))
        if self.checksum:  # in place: out_size leaves more than 4 spare bytes after a stream
            seal_rows(self._out, self._sizes)
        out = []
        for k in range(4):
            m = int(self._sizes[k])
            if m <= 0:  # cannot happen: the buffer has room for all literals
                raise RuntimeError("lzf encoder: output buffer too small")
            out.append(memoryview(self._out[k, :m]))
        return out


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
