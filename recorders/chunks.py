"""Reading the event columns a whole stored chunk at a time, decoded by us.

h5py reads a selection through HDF5's filter pipeline and chunk cache into a new array,
which the reader then copies into the event records.  For lzf columns (filter pipeline
``shuffle + lzf`` or ``lzf``) :class:`ChunkReader` instead fetches each stored
chunk with ``read_direct_chunk`` into a reused buffer, decodes the LZF stream
(:func:`recorders.lzf.lzf_decode`, bounds-checked: a damaged chunk is an error, never a
read out of bounds) and un-shuffles the wanted elements straight into the destination
field of the event array; a chunk that carries HDF5's fletcher32 checksum (recordings
written since the checksum came) is checked first.  The chunk's filter mask is honoured (HDF5 stores a chunk its
optional lzf filter could not shrink without it).  Other pipelines (none, gzip, blosc,
zstd) read through h5py, and so do reads shorter than a chunk (a time slice), which
reuse the chunks HDF5's cache kept from the index lookup.
"""

from __future__ import annotations

import numpy as np

from recorders.fletcher import FLETCHER32, intact
from recorders.lzf import lzf_decode, scatter

SHUFFLE, LZF = 2, 32000


class ChunkDamaged(ValueError):
    """A stored chunk that does not decode: ``column`` and element ``position``."""

    def __init__(self, column: str, position: int, what: str):
        self.column, self.position = column, int(position)
        super().__init__(f"column {column!r}, chunk at position {position:,}: {what}")


def pipeline(ds) -> tuple[int, ...]:
    plist = ds.id.get_create_plist()
    return tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))


class ChunkReader:
    """Reads ``[a, b)`` of one chunked 1-D column ``ds`` into a (possibly strided) field."""

    def __init__(self, ds, name: str):
        self.ds, self.id, self.name = ds, ds.id, name
        self.chunk = int(ds.chunks[0])
        self.size = ds.dtype.itemsize
        self.nbytes = self.chunk * self.size
        self.filters = pipeline(ds)
        # room for a stored chunk somewhat larger than its data (an incompressible one)
        self._stored = np.empty(self.nbytes + self.nbytes // 16 + 4096 + 4, np.uint8)
        self._raw = np.empty(self.nbytes, np.uint8)

    @staticmethod
    def supports(ds) -> bool:
        """lzf columns, with or without HDF5's checksum after the lzf (h5py reads unfiltered
        chunks faster than we copy them)."""
        if ds.chunks is None or len(ds.shape) != 1:
            return False
        filters = pipeline(ds)
        if filters[-1:] == (FLETCHER32,):
            filters = filters[:-1]
        return filters in ((SHUFFLE, LZF), (LZF,))

    def _decoded(self, start: int) -> tuple[np.ndarray, bool]:
        """The chunk at element ``start``: (its bytes, whether they are byte planes)."""
        try:
            mask, data = self.id.read_direct_chunk((start,), out=self._stored)
        except ValueError as exc:  # h5py: the stored size does not fit the buffer
            raise ChunkDamaged(self.name, start, f"stored size is implausible ({exc})") from None
        except (OSError, RuntimeError) as exc:  # HDF5: damaged chunk index or metadata
            raise ChunkDamaged(self.name, start, str(exc)) from None
        stored = np.frombuffer(data, np.uint8)
        applied = [f for i, f in enumerate(self.filters) if not mask >> i & 1]
        if FLETCHER32 in applied:
            if not intact(stored, len(stored)):
                raise ChunkDamaged(self.name, start, "checksum mismatch (fletcher32): the stored "
                                                     "bytes changed after they were written")
            stored = stored[:-4]
        shuffled = SHUFFLE in applied and self.size > 1
        if LZF in applied:
            n = lzf_decode(stored, len(stored), self._raw)
            if n != self.nbytes:
                raise ChunkDamaged(self.name, start, "lzf data does not decode to a chunk")
            return self._raw, shuffled
        if len(stored) != self.nbytes:
            raise ChunkDamaged(self.name, start, f"{len(stored)} bytes stored, expected "
                                                 f"{self.nbytes}")
        return stored, shuffled

    def read_into(self, a: int, b: int, out: np.ndarray) -> None:
        """Elements [a, b) into ``out``, a (b - a, itemsize) uint8 view."""
        c = self.chunk
        pos = a
        while pos < b:
            start = pos - pos % c
            count = min(b, start + c) - pos
            raw, shuffled = self._decoded(start)
            scatter(raw, self.size, c, shuffled, pos - start, count,
                    out[pos - a:pos - a + count])
            pos += count
