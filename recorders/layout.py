"""The recording file layout (schema version 1), its typed errors and compression choices.

One HDF5 file, written in SWMR mode (``libver="latest"``), holds::

    /                    attrs: format="eventpipe-recording", schema_version, writer_version,
                                created_utc (ISO 8601), wall_clock_start_unix (s)
    /events              attrs: sensor_size [W, H] ([0, 0]: unknown), time_unit="us",
                                source_uri, camera_serial, compression, chunk_events,
                                index_period_us
    /events/x, y         uint16 (n,)  } columnar, chunked (chunk_events), extendable,
    /events/t            int64  (n,)  } compressed as ``compression`` says; t in us
    /events/p            uint8  (n,)  }
    /events/tail_x, tail_y, tail_t, tail_p  (2, chunk_events), contiguous, uncompressed:
                         two slots for the events after the last whole chunk (see below)
    /events/index_t      int64  (m,)  period starts k * index_period_us, increasing
    /events/index_offset int64  (m,)  first event offset where the running maximum of t
                                      reaches index_t (one entry per period the time enters)
                                      (index and labels are chunked but uncompressed)
    /labels              attrs: topk, label_bytes
    /labels/t_us int64, stream int32, seq int64 (-1: none), label S<label_bytes> (UTF-8),
           score float32, latency_ms float32 (NaN: unknown), wall_s float64 (unix time the
           label was recorded), truth S<label_bytes>, topk_label S<label_bytes> (n, topk),
           topk_score float32 (n, topk)   -- one row per label, every stream in one table
    /status              int64 (8,), contiguous, rewritten in place at each flush:
                         see ``STATUS_FIELDS``

The ``/status`` counts are the commit record: a reader trusts ``events``, ``labels`` and
``index`` rows only up to the counts there, which the writer stores *after* the data they
count has been flushed.  So a file cut off at any moment (SIGKILL) reads as its last flush.

The compressed event columns only ever receive whole chunks, each written once: rewriting a
compressed chunk at every flush would allocate it anew each time (HDF5 does not reuse the
space of a rewritten chunk in SWMR mode, so the file would grow without bound).  The
``events - events % chunk_events`` committed events after the whole chunks live in the
tail slot ``tail_slot`` (uncompressed, rewritten in place).  A flush writes the new tail
into the *other* slot, flushes it, and then flips ``tail_slot`` in the same status write
that raises ``events``: a crash between the two leaves the old slot and count intact.
When the file is closed the last partial chunk goes to the columns and the tail is unused
(``closed`` = 1: every event is in the columns).

While the file is written the columns' extent grows 64 chunks at a time and may run ahead
of the events (readers trust ``/status``, never the extent); closing trims the columns to
exactly the events.  ``lzf`` chunks are encoded by :mod:`recorders.lzf` and written with
``write_direct_chunk`` (the same stored format as HDF5's shuffle + lzf filters, which the
datasets declare), see :mod:`recorders.columns`.  Every chunked dataset (the event columns,
the time index, the label columns) also declares HDF5's fletcher32 filter, and every chunk
carries its checksum (:mod:`recorders.fletcher`).
"""

from __future__ import annotations

import os

import numpy as np

from eventpipe.errors import EventFormatError

FORMAT_TAG = "eventpipe-recording"
SCHEMA_VERSION = 1
WRITER_VERSION = "eventpipe-recorders 2"   # 2: every chunked dataset carries fletcher32
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

EVENT_COLUMNS = (("x", np.uint16), ("y", np.uint16), ("t", np.int64), ("p", np.uint8))
STATUS_FIELDS = ("closed", "events", "labels", "index", "dropped_events", "dropped_labels",
                 "flushes", "tail_slot")
STATUS = {name: i for i, name in enumerate(STATUS_FIELDS)}

DEFAULT_CHUNK_EVENTS = 1 << 14
DEFAULT_INDEX_PERIOD_US = 1000
DEFAULT_TOPK = 5
DEFAULT_LABEL_BYTES = 64
LABEL_CHUNK = 256     # rows (uncompressed: a flush rewrites the last chunk in place)
INDEX_CHUNK = 4096

PLUGIN_HINT = "install the optional extra: pip install 'eventpipe[hdf5]' (hdf5plugin)"
COMPRESSIONS = ("none", "lzf", "gzip", "gzip:0-9", "blosc", "blosc:lz4|zstd|...", "zstd",
                "zstd:LEVEL")


class RecordingError(EventFormatError):
    """A recording file cannot be read as one: it names the file and what is wrong."""


class SchemaVersionError(RecordingError):
    """The file was written by a newer recorder (a schema version this one does not know)."""


class SliceError(RecordingError):
    """A requested time slice lies outside the recording or is empty by construction."""


class RecorderWriteError(OSError):
    """Writing failed (disk full, file or directory gone).  ``committed`` events were flushed
    before the failure and are intact in the file."""

    def __init__(self, message: str, *, path, committed: int, errno_: int | None = None):
        self.path = os.fspath(path)
        self.committed = int(committed)
        super().__init__(errno_, f"{self.path}: {message} ({self.committed:,} events flushed "
                                 "before the failure are intact)")

    def __str__(self) -> str:
        return self.args[1] if len(self.args) > 1 else super().__str__()


def load_hdf5plugin():
    """Import ``hdf5plugin`` (registers blosc/zstd filters) or raise a clear ImportError."""
    try:
        import hdf5plugin
    except ImportError:
        raise ImportError(f"blosc/zstd compression needs hdf5plugin: {PLUGIN_HINT}") from None
    return hdf5plugin


def compression_args(spec: str | None) -> tuple[str, dict]:
    """Normalise a compression name to ``(canonical name, h5py create_dataset kwargs)``.

    ``none``, ``lzf``, ``gzip`` (level 4) or ``gzip:N``, ``blosc`` (lz4 + byte shuffle) or
    ``blosc:CNAME``, ``zstd`` or ``zstd:LEVEL``.  Compressed columns use the byte-shuffle
    filter (the high bytes of t barely change, shuffled they compress to almost nothing).
    """
    spec = "none" if spec in (None, "", False) else str(spec).lower().strip()
    name, _, arg = spec.partition(":")
    if name == "none" and not arg:
        return "none", {}
    if name == "lzf" and not arg:
        return "lzf", {"compression": "lzf", "shuffle": True}
    if name == "gzip":
        try:
            level = int(arg) if arg else 4
        except ValueError:
            level = -1
        if not 0 <= level <= 9:
            raise ValueError(f"compression {spec!r}: gzip level must be 0..9")
        return f"gzip:{level}", {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if name == "blosc":
        plugin = load_hdf5plugin()
        cname = arg or "lz4"
        if cname not in ("blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"):
            raise ValueError(f"compression {spec!r}: unknown blosc codec {cname!r}")
        return f"blosc:{cname}", dict(plugin.Blosc(cname=cname, clevel=5,
                                                   shuffle=plugin.Blosc.SHUFFLE))
    if name == "zstd":
        plugin = load_hdf5plugin()
        try:
            level = int(arg) if arg else 3
        except ValueError:
            raise ValueError(f"compression {spec!r}: zstd level must be an integer") from None
        return f"zstd:{level}", {**dict(plugin.Zstd(clevel=level)), "shuffle": True}
    raise ValueError(f"unknown compression {spec!r}; choose one of {', '.join(COMPRESSIONS)}")


def needs_plugin(compression: str) -> bool:
    return compression.split(":")[0] in ("blosc", "zstd")


def label_dtypes(label_bytes: int, topk: int) -> dict[str, tuple]:
    """Column name -> (dtype, per-row shape) of the label table."""
    s = f"S{int(label_bytes)}"
    return {"t_us": (np.int64, ()), "stream": (np.int32, ()), "seq": (np.int64, ()),
            "label": (s, ()), "score": (np.float32, ()), "latency_ms": (np.float32, ()),
            "wall_s": (np.float64, ()), "truth": (s, ()), "topk_label": (s, (topk,)),
            "topk_score": (np.float32, (topk,))}


def label_row_dtype(label_bytes: int, topk: int) -> np.dtype:
    """The structured dtype :meth:`Recording.labels` returns (one field per column)."""
    return np.dtype([(k, dt, shape) for k, (dt, shape) in label_dtypes(label_bytes, topk).items()])


def find_magic(head: bytes) -> int | None:
    """Offset of the HDF5 signature in ``head`` (0, 512, 1024, 2048, ... for userblocks)."""
    off = 0
    while off + len(HDF5_MAGIC) <= len(head):
        if head[off:off + len(HDF5_MAGIC)] == HDF5_MAGIC:
            return off
        off = 512 if off == 0 else off * 2
    return None


def superblock_end(head: bytes, magic_at: int) -> int | None:
    """The end-of-file address the HDF5 superblock at ``magic_at`` records (absolute), or
    None when the superblock is not one we parse.  A file shorter than this was cut off
    (HDF5 itself can hang on such a file, so readers check first)."""
    import struct

    o = magic_at
    if len(head) < o + 64:
        return None
    version = head[o + 8]
    if version >= 2:
        size, pos = head[o + 9], o + 12
    elif version in (0, 1):
        size, pos = head[o + 13], o + 24 + (4 if version == 1 else 0)
    else:
        return None
    fmt = {4: "<I", 8: "<Q"}.get(size)
    if fmt is None:
        return None
    base = struct.unpack_from(fmt, head, pos)[0]
    eoa = struct.unpack_from(fmt, head, pos + 2 * size)[0]
    return base + eoa


GCOL_MAGIC = b"GCOL"
GCOL_MAX_BYTES = 64 << 20  # a recording's heap holds a few attribute strings


def _length_size(head: bytes, magic_at: int) -> int:
    """The superblock's "size of lengths" (8 unless the file says otherwise)."""
    version = head[magic_at + 8] if len(head) > magic_at + 8 else 0
    pos = magic_at + (10 if version >= 2 else 14)
    size = head[pos] if len(head) > pos else 8
    return size if size in (2, 4, 8) else 8


def check_global_heaps(path, head: bytes, magic_at: int, file_size: int) -> None:
    """Walk every HDF5 global heap collection (``GCOL``, where variable-length strings
    such as our attributes live) that starts in ``head`` -- every recording keeps its
    one collection in its first few KiB -- the way libhdf5 will, and raise
    :class:`RecordingError` for one libhdf5 cannot walk safely.

    libhdf5 (up to at least 2.0) decodes a collection object by object, stepping by each
    object's recorded size; the free-space object (index 0) steps by its size alone, so a
    size of 0 makes it loop forever inside ``H5Fopen``/``H5Aread`` (a fuzzed recording
    with a zeroed region did exactly that), and a size running past the collection makes
    it read beyond its buffer."""
    import struct

    lsize = _length_size(head, magic_at)
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[lsize]
    hdr = 8 + lsize                 # signature, version, 3 reserved, collection size
    obj_hdr = 8 + lsize             # index (2), references (2), reserved (4), size
    at = head.find(GCOL_MAGIC)
    while at >= 0:
        if len(head) >= at + hdr and head[at + 4] == 1:
            size = struct.unpack_from(fmt, head, at + 8)[0]
            if size < hdr or size > min(GCOL_MAX_BYTES, file_size - at):
                raise RecordingError(f"damaged HDF5 global heap at byte {at}: collection "
                                     f"size {size:,} (the file has {file_size:,} bytes)",
                                     path=path, offset=at, field="global heap")
            if at + size <= len(head):
                heap = head[at:at + size]
            else:
                with open(path, "rb") as fh:
                    fh.seek(at)
                    heap = fh.read(size)
            p = hdr
            while p < len(heap):
                if p + obj_hdr > len(heap):
                    break  # too small for an object: free space (libhdf5 does the same)
                index = struct.unpack_from("<H", heap, p)[0]
                osize = struct.unpack_from(fmt, heap, p + 8)[0]
                need = obj_hdr + (osize + 7) // 8 * 8 if index > 0 else osize
                if need == 0 or p + need > len(heap):
                    raise RecordingError(
                        f"damaged HDF5 global heap at byte {at}: object {index} at byte "
                        f"{at + p} has size {osize:,}, which "
                        + ("libhdf5 would loop on forever" if need == 0 else
                           f"runs past the collection's {len(heap):,} bytes"),
                        path=path, offset=at + p, field="global heap")
                p += need
        at = head.find(GCOL_MAGIC, at + 1)
