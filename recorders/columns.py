"""Writing the event columns: whole chunks, few extent changes, our own lzf encoder.

:class:`ColumnWriter` owns the four ``/events`` column datasets of a recording being
written.  It receives whole chunks of event records (``EVENT_DTYPE``; on close, the last
partial chunk) and

- grows the datasets' extent in steps of ``grow_chunks`` chunks instead of at every write
  (an extent change is a metadata update HDF5 must order and flush in SWMR mode); the
  extent may therefore run ahead of the events while the file is written.  Readers trust
  the ``/status`` counts, never the extent, and :meth:`trim` sets the exact length when
  the file is closed, so a closed file's columns are exactly the events (plain h5py reads
  them as such);
- for ``lzf`` encodes each chunk of records itself into the four columns' chunks in one
  call (:class:`recorders.lzf.RecordChunkEncoder`, the standard shuffle + lzf format) and
  for ``none`` takes each column's bytes as they are, and writes them with
  ``write_direct_chunk``, bypassing HDF5's filter pipeline and chunk cache; other
  compressions (gzip, blosc, zstd) go through HDF5's pipeline as usual.
"""

from __future__ import annotations

import numpy as np

from recorders.chunks import pipeline
from recorders.fletcher import FLETCHER32, Sealer
from recorders.layout import EVENT_COLUMNS

DIRECT = ("lzf", "none")   # compressions whose chunks we encode ourselves
GROW_CHUNKS = 64           # extent grows by this many chunks at a time


class _RawChunk:
    """The stored form of a chunk without filters: its bytes (padded when partial)."""

    def __init__(self, chunk: int, dtype):
        self.chunk = int(chunk)
        self._pad = np.zeros(self.chunk, dtype)

    def encode(self, col: np.ndarray) -> memoryview:
        if len(col) != self.chunk:
            self._pad[:len(col)] = col
            self._pad[len(col):] = 0
            col = self._pad
        return memoryview(np.ascontiguousarray(col)).cast("B")


class ColumnWriter:
    """Appends whole chunks to the event columns ``datasets`` (name -> h5py dataset)."""

    def __init__(self, datasets: dict, chunk: int, compression: str, *,
                 grow_chunks: int = GROW_CHUNKS):
        self.ds = datasets
        self.chunk = int(chunk)
        self.grow = max(1, int(grow_chunks)) * self.chunk
        self.extent = min(ds.shape[0] for ds in datasets.values())
        self.direct = compression.split(":")[0] in DIRECT
        # the datasets' pipelines end with HDF5's checksum filter (recordings since it came):
        # our direct chunks then carry it too
        sealed = self.direct and all(pipeline(ds)[-1:] == (FLETCHER32,) for ds in datasets.values())
        self._encoders = {}
        self._records = None
        self._sealer = None
        if self.direct:
            if compression == "lzf":
                from recorders.lzf import RECORD_COLUMNS, RecordChunkEncoder
                self._records = RecordChunkEncoder(self.chunk, checksum=sealed)
                self._record_ids = [datasets[name].id for name in RECORD_COLUMNS]
            else:
                self._encoders = {name: _RawChunk(self.chunk, dt) for name, dt in EVENT_COLUMNS}
                self._sealer = Sealer(8 * self.chunk) if sealed else None
            self._ids = {name: ds.id for name, ds in datasets.items()}

    def _ensure(self, end: int) -> None:
        if end <= self.extent:
            return
        new = max(end, self.extent + self.grow)
        new = -(-new // self.chunk) * self.chunk
        for ds in self.ds.values():
            ds.resize((new,))
        self.extent = new

    def write(self, start: int, records: np.ndarray, n: int | None = None) -> None:
        """Write event records ``records[:n]`` at ``start`` (a multiple of the chunk); ``n``
        is a multiple of the chunk except for the last write before :meth:`trim`."""
        n = len(records) if n is None else int(n)
        if n == 0:
            return
        end = start + n
        self._ensure(end)
        c = self.chunk
        if self._records is not None:
            enc, ids, put = self._records, self._record_ids, self._put_chunk
            for i in range(0, n, c):
                for dsid, data in zip(ids, enc.encode(records[i:min(n, i + c)])):
                    put(dsid, start + i, data)
            return
        cols = records
        if self.direct:
            for name, _ in EVENT_COLUMNS:
                col, enc, dsid = cols[name], self._encoders[name], self._ids[name]
                for i in range(0, n, c):
                    self._put_chunk(dsid, start + i, self._stored(enc.encode(col[i:min(n, i + c)])))
            return
        for name, _ in EVENT_COLUMNS:
            self.ds[name][start:end] = np.ascontiguousarray(records[name][:n])

    def _stored(self, data):
        """A raw chunk's stored bytes: with their checksum where the pipeline has one."""
        return data if self._sealer is None else self._sealer.seal(data)

    @staticmethod
    def _put_chunk(dsid, offset: int, data) -> None:
        dsid.write_direct_chunk((offset,), data)

    def trim(self, n: int) -> None:
        """Set the columns' length to exactly ``n`` events (on close)."""
        for ds in self.ds.values():
            if ds.shape[0] != n:
                ds.resize((n,))
        self.extent = n
