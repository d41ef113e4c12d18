"""``open_recording``: read a recording (whole, by time slice, in chunks, or following it).

A recording is trusted only up to the counts in its ``/status`` commit record (see
:mod:`recorders.layout`), so a file whose writer was killed reads as its last flush, and a
file still being written reads as what the writer has committed so far.  Time slices use
the index (:func:`recorders.index.locate`): a slice costs a binary search over the index,
a read of at most one index period of t, and the events returned.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from eventpipe.events import EVENT_DTYPE
from eventpipe.io.chunking import rebatch
from recorders.chunks import ChunkDamaged, ChunkReader
from recorders.index import locate
from recorders.labels import messages_from_rows
from recorders.layout import (
    EVENT_COLUMNS, FORMAT_TAG, HDF5_MAGIC, PLUGIN_HINT, SCHEMA_VERSION, STATUS, RecordingError,
    SchemaVersionError, SliceError, check_global_heaps, find_magic, label_dtypes,
    label_row_dtype, load_hdf5plugin, needs_plugin, superblock_end,
)

DEFAULT_CHUNK_EVENTS = 1 << 20
SWMR_READ_ATTEMPTS = 8  # a torn read of metadata being written is retried; damage fails
RDCC_BYTES = 16 << 20  # chunk cache per dataset: a read spanning chunks decompresses each once


@dataclasses.dataclass
class RecordingInfo:
    """What a recording holds (``eventpipe info`` prints it)."""

    path: str
    schema_version: int
    writer_version: str
    created_utc: str
    wall_clock_start_unix: float
    sensor_size: tuple[int, int] | None
    time_unit: str
    source_uri: str
    camera_serial: str
    compression: str
    events: int
    labels: int
    t_first: int | None
    t_last: int | None
    index_entries: int
    index_period_us: int
    complete: bool
    dropped_events: int
    dropped_labels: int
    flushes: int
    streams: list[int]
    ended_by_error: str = ""  # why the recording stopped early ("": it did not)

    @property
    def duration_us(self) -> int:
        return 0 if self.t_first is None else int(self.t_last - self.t_first)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sensor_size"] = list(self.sensor_size) if self.sensor_size else None
        d["duration_us"] = self.duration_us
        return d


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise FileNotFoundError(f"no such recording: {path}")
    if path.is_dir():
        raise RecordingError("is a directory, not a recording", path=path)
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    magic_at = find_magic(head)
    if magic_at is None:
        raise RecordingError(f"not an HDF5 file (no signature {HDF5_MAGIC!r} at offset 0, 512, "
                             "1024, ...)", path=path, offset=0, field="signature")
    end, size = superblock_end(head, magic_at), path.stat().st_size
    if end is not None and size < end:
        raise RecordingError(f"truncated: the file has {size:,} bytes, its HDF5 superblock "
                             f"says {end:,}", path=path, offset=size, field="superblock")
    check_global_heaps(path, head, magic_at, size)  # libhdf5 loops forever on some damage
    try:  # a closed file: a plain read-only open (fails fast on damaged metadata)
        return h5py.File(path, "r", rdcc_nbytes=RDCC_BYTES)
    except OSError as exc:
        first = exc
    try:  # being written, or its writer died: a SWMR reader
        return _open_swmr(path)
    except OSError:
        size = path.stat().st_size
        raise RecordingError(f"HDF5 file cannot be opened ({size:,} bytes; truncated or "
                             f"damaged?): {first}", path=path) from None


#: reads of more events than this (13 MiB) first check that ``/status``'s count lies in
#: stored chunks (``Recording._check_stored``); shorter reads are bounded by this alone
CHECKED_READ = 1 << 20


def _set_read_attempts(fapl, attempts: int) -> None:
    """Bound HDF5's SWMR metadata re-reads (default 100, with growing sleeps: minutes on a
    damaged file).  ``H5Pset_metadata_read_attempts`` is not wrapped by h5py: it is called
    in the libhdf5 h5py loaded; where that fails the default stays."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps if "libhdf5" in line and ".so" in line}
        lib = next(x for x in sorted(libs) if not os.path.basename(x).startswith("libhdf5_hl"))
        fn = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
        fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
        fn(fapl.id, int(attempts))
    except Exception:  # noqa: BLE001 - not Linux, or a different HDF5 build
        pass


def _open_swmr(path: Path) -> h5py.File:
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_cache(0, 521, RDCC_BYTES, 0.75)
    _set_read_attempts(fapl, SWMR_READ_ATTEMPTS)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ,
                        fapl=fapl)
    return h5py.File(fid)


def _key_text(exc: KeyError) -> str:
    return str(exc.args[0]) if exc.args else "KeyError"


def _missing_name(exc: KeyError) -> str | None:
    """The object or attribute an h5py ``KeyError`` says does not exist (h5py words it
    "Unable to synchronously open object (object 'labels' doesn't exist)"), else None."""
    found = re.search(r"object '([^']*)' doesn't exist|can't locate attribute:? '([^']*)'",
                      _key_text(exc))
    if found is None:
        return None
    return found.group(1) if found.group(1) is not None else f"attribute {found.group(2)}"


def _member(group: h5py.Group, name: str, path: Path, kind: type = h5py.Dataset, *,
            optional: bool = False):
    """``group[name]``, an object the recording holds itself, of ``kind``: a missing one (None
    when ``optional``), a soft or external link - named with its target: a recording's data
    never lies elsewhere, and an external link would read another file's - or another kind of
    object is a :class:`RecordingError` naming the field and the file."""
    field = f"{group.name.strip('/')}/{name}".strip("/")
    link = group.get(name, getlink=True)
    if link is None:
        if optional:
            return None
        raise RecordingError(f"recording is missing {field!r} (damaged or written by "
                             "something else)", path=path, field=field)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        target = (f"an external link to {link.path!r} in {link.filename!r}"
                  if isinstance(link, h5py.ExternalLink) else f"a soft link to {link.path!r}")
        raise RecordingError(f"{field!r} is {target}, not a {kind.__name__.lower()}: a recording "
                             "holds its own data (edited or damaged)", path=path, field=field)
    obj = group.get(name)
    if not isinstance(obj, kind):
        raise RecordingError(f"{field!r} is a {type(obj).__name__}, not a {kind.__name__.lower()} "
                             "(damaged)", path=path, field=field)
    return obj


def _label_columns(group: h5py.Group, path: Path) -> dict[str, h5py.Dataset]:
    """The label table's columns, each a dataset the file holds (:func:`_member`)."""
    return {name: _member(group, name, path) for name in label_dtypes(1, 1)}


def _typed(method):
    """HDF5 errors while reading (damaged metadata or data) -> RecordingError naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RecordingError:
            raise
        except (OSError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
            if getattr(self, "plugin_missing", False):  # not damage: a filter is missing
                raise self._read_error(exc, 0) from None
            raise RecordingError(f"damaged recording: {exc}", path=self.path) from None
    return wrapper


class Recording:
    """One recording opened for reading.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, follow: bool = False):
        self.path = Path(path)
        self.follow = bool(follow)
        self._f = _open_h5(self.path)
        try:
            self._check_schema()
            self._ev = _member(self._f, "events", self.path, h5py.Group)
            self._lab = _member(self._f, "labels", self.path, h5py.Group)
            self._status_ds = _member(self._f, "status", self.path)
            self.compression = str(self._ev.attrs["compression"])
            self.index_period_us = int(self._ev.attrs["index_period_us"])
            self.chunk = int(self._ev.attrs["chunk_events"])
            self._cols = {name: _member(self._ev, name, self.path) for name, _ in EVENT_COLUMNS}
            self._chunk_readers = ({name: ChunkReader(ds, name) for name, ds in self._cols.items()}
                                   if all(ChunkReader.supports(ds) for ds in self._cols.values())
                                   else {})
            self._tails = ({name: _member(self._ev, f"tail_{name}", self.path)
                            for name, _ in EVENT_COLUMNS}
                           if _member(self._ev, "tail_t", self.path, optional=True) is not None
                           else {})
            # one handle per dataset, refreshed and read through: HDF5 SWMR refreshes a
            # dataset through one handle and then serves stale chunks to the others
            self._index = {name: _member(self._ev, name, self.path)
                           for name in ("index_t", "index_offset")}
            self._labcols = _label_columns(self._lab, self.path)
            self.label_bytes, self.topk = self._label_shape()
            self._handles = [*self._cols.values(), *self._tails.values(),
                             *self._index.values(), *self._labcols.values()]
            self.plugin_missing = False
            self._checked_events = 0
            if needs_plugin(self.compression):
                try:
                    load_hdf5plugin()  # registers the blosc/zstd filters with HDF5
                except ImportError:
                    self.plugin_missing = True
            self.refresh()
        except KeyError as exc:
            self._f.close()
            missing = _missing_name(exc)
            if missing is None:  # h5py's KeyError for a damaged object header, say
                raise RecordingError(f"damaged recording: {_key_text(exc)}", path=self.path
                                     ) from None
            raise RecordingError(f"recording is missing {missing!r} (damaged or written by "
                                 "something else)", path=self.path, field=missing) from None
        except (OSError, RuntimeError, TypeError, AttributeError) as exc:
            self._f.close()
            raise RecordingError(f"damaged recording: {exc}", path=self.path) from None
        except BaseException:
            self._f.close()
            raise

    def _check_schema(self) -> None:
        attrs = self._f.attrs
        tag = attrs.get("format")
        if isinstance(tag, bytes):
            tag = tag.decode()
        if tag != FORMAT_TAG:
            raise RecordingError(f"an HDF5 file, but not an eventpipe recording (root attribute "
                                 f"'format' is {tag!r}, expected {FORMAT_TAG!r}); groups: "
                                 f"{sorted(self._f.keys())[:8]}", path=self.path, field="format")
        version = int(attrs.get("schema_version", -1))
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(f"written with recording schema version {version}; this "
                                     f"eventpipe reads up to version {SCHEMA_VERSION} (upgrade "
                                     "eventpipe)", path=self.path, field="schema_version")
        if version < 1:
            raise RecordingError(f"bad schema_version {version}", path=self.path,
                                 field="schema_version")

    def _label_shape(self) -> tuple[int, int]:
        """``label_bytes`` and ``topk`` as the attributes say, checked against the label
        table's own columns (a row's size is never taken from an attribute alone)."""
        attrs = self._lab.attrs
        stored = {"label_bytes": self._labcols["label"].dtype.itemsize,
                  "topk": self._labcols["topk_label"].shape[1]}
        for key, value in stored.items():
            if int(attrs[key]) != value:
                raise RecordingError(f"labels attribute {key} {int(attrs[key])} does not match "
                                     f"the label table ({value}): damaged", path=self.path,
                                     field=f"labels/{key}")
        return stored["label_bytes"], stored["topk"]

    def _check_stored(self, what: str, n: int, columns) -> None:
        """``n`` rows claimed by ``/status`` must lie in chunks the file stores: an extent
        grows without storage, so a damaged status could otherwise size an allocation."""
        for ds in columns:
            if ds.chunks is None:  # contiguous: stored whole, n is within its shape
                continue
            try:
                most = ds.id.get_num_chunks() * ds.chunks[0]
            except (OSError, RuntimeError) as exc:
                raise RecordingError(f"damaged recording: {exc}", path=self.path,
                                     field="status") from None
            if n > most:
                raise RecordingError(f"status claims {n:,} {what}, but the columns store at "
                                     f"most {most:,} (damaged)", path=self.path, field="status")

    # -- state ------------------------------------------------------------------------------
    @_typed
    def refresh(self) -> "Recording":
        """Re-read the commit record (for a file still being written)."""
        st = self._status_ds
        if self._f.swmr_mode:  # the status first: the data it counts is older than it
            st.refresh()
        s = st[()]
        if self._f.swmr_mode:
            for ds in self._handles:
                ds.refresh()
        if len(s) < len(STATUS):
            raise RecordingError(f"status record has {len(s)} fields, expected {len(STATUS)}",
                                 path=self.path, field="status")
        self.status = {k: int(s[i]) for k, i in STATUS.items()}
        self.closed_by_writer = bool(self.status["closed"])
        committed = self.status["events"]
        # whole chunks are in the columns; the rest (until the file is closed) in a tail slot
        closed = self.closed_by_writer
        self.n_main = committed if closed else committed - committed % self.chunk
        self.n_main = min([self.n_main] + [self._cols[n].shape[0] for n, _ in EVENT_COLUMNS])
        tail = committed - self.n_main if not self.closed_by_writer and self._tails else 0
        self.tail_slot = self.status["tail_slot"]
        if tail > self.chunk or self.tail_slot not in (0, 1):
            raise RecordingError(f"status record is inconsistent (events {committed}, "
                                 f"tail slot {self.tail_slot})", path=self.path, field="status")
        self.n_events = self.n_main + tail
        self.n_labels = min([self.status["labels"]] +
                            [ds.shape[0] for ds in self._labcols.values()])
        self.n_index = min([self.status["index"]] + [ds.shape[0] for ds in self._index.values()])
        # a writer that stopped because its source failed says why (written before `closed`)
        self.ended_by_error = (str(self._f.attrs.get("ended_by_error", ""))
                               if self.closed_by_writer else "")
        self.complete = self.closed_by_writer and not self.ended_by_error
        return self

    @property
    @_typed
    def info(self) -> RecordingInfo:
        a, e = self._f.attrs, self._ev.attrs
        size = tuple(int(v) for v in e["sensor_size"])
        t_first = t_last = None
        if self.n_events:
            t_first = int(self._read_t(0, 1)[0])
            t_last = int(self._read_t(self.n_events - 1, self.n_events)[0])
        self._check_stored("labels", self.n_labels, self._labcols.values())
        streams = (sorted(set(np.unique(self._labcols["stream"][:self.n_labels]).tolist()))
                   if self.n_labels else [])
        return RecordingInfo(
            path=str(self.path), schema_version=int(a["schema_version"]),
            writer_version=str(a.get("writer_version", "")),
            created_utc=str(a.get("created_utc", "")),
            wall_clock_start_unix=float(a.get("wall_clock_start_unix", 0.0)),
            sensor_size=size if size != (0, 0) else None, time_unit=str(e["time_unit"]),
            source_uri=str(e.get("source_uri", "")), camera_serial=str(e.get("camera_serial", "")),
            compression=self.compression, events=self.n_events, labels=self.n_labels,
            t_first=t_first, t_last=t_last, index_entries=self.n_index,
            index_period_us=self.index_period_us, complete=self.complete,
            dropped_events=self.status["dropped_events"],
            dropped_labels=self.status["dropped_labels"], flushes=self.status["flushes"],
            streams=streams, ended_by_error=self.ended_by_error)

    # -- events -----------------------------------------------------------------------------
    @_typed
    def _column(self, name: str, a: int, b: int) -> np.ndarray:
        """Column ``name`` at positions [a, b): from the whole chunks, then the tail slot."""
        m = self.n_main
        try:
            if b <= m:
                return self._cols[name][a:b]
            tail = self._tails[name]
            if a >= m:
                return tail[self.tail_slot, a - m:b - m]
            return np.concatenate([self._cols[name][a:m], tail[self.tail_slot, :b - m]])
        except OSError as exc:  # a chunk that fails its checksum or does not decode (HDF5)
            raise self._read_error(exc, a, name) from None

    def _read(self, a: int, b: int) -> np.ndarray:
        if b - a > CHECKED_READ and self._checked_events != self.n_main:
            self._check_stored("events", self.n_main, self._cols.values())
            self._checked_events = self.n_main
        out = np.empty(max(0, b - a), EVENT_DTYPE)
        if b <= a:
            return out
        m = min(b, self.n_main)
        try:
            if self._chunk_readers and m - a >= self.chunk:  # whole chunks, decoded by us
                rows = out.view(np.uint8).reshape(len(out), EVENT_DTYPE.itemsize)
                for name, _ in EVENT_COLUMNS:
                    off, size = EVENT_DTYPE.fields[name][1], EVENT_DTYPE[name].itemsize
                    self._chunk_readers[name].read_into(a, m, rows[:m - a, off:off + size])
                if m < b:
                    for name, _ in EVENT_COLUMNS:
                        out[name][m - a:] = self._column(name, m, b)
            else:
                for name, _ in EVENT_COLUMNS:
                    out[name] = self._column(name, a, b)
        except OSError as exc:
            raise self._read_error(exc, a) from None
        except ChunkDamaged as exc:
            raise RecordingError(f"damaged recording: {exc}", path=self.path,
                                 field=f"events/{exc.column}") from None
        return out

    def _read_error(self, exc: OSError, position: int, column: str | None = None) -> RecordingError:
        text = str(exc)
        if self.plugin_missing or (needs_plugin(self.compression) and "filter" in text.lower()):
            return RecordingError(f"compressed with {self.compression}, whose HDF5 filter is not "
                                  f"available: {PLUGIN_HINT}", path=self.path, field="compression")
        if column is None:
            return RecordingError(f"cannot read events from position {position}: {text}",
                                  path=self.path, field="events")
        return RecordingError(f"damaged recording: column {column!r} from position {position:,} does not "
                              f"read ({text}: a stored chunk fails its checksum or does not decode)",
                              path=self.path, field=f"events/{column}")

    def _read_t(self, a: int, b: int) -> np.ndarray:
        try:
            return self._column("t", a, b)
        except OSError as exc:
            raise self._read_error(exc, a) from None

    @_typed
    def position(self, t_us: int) -> int:
        """First event position at or after ``t_us`` (running maximum of t; see ``index``)."""
        return locate(self._index["index_t"], self._index["index_offset"], self.n_index,
                      self._read_t, self.n_events, int(t_us))

    @_typed
    def _bounds(self, start_us, end_us) -> tuple[int, int]:
        if start_us is None and end_us is None:
            return 0, self.n_events
        if start_us is not None and end_us is not None and int(end_us) <= int(start_us):
            raise SliceError(f"empty slice: end_us={end_us} <= start_us={start_us}",
                             path=self.path)
        if self.n_events == 0:
            raise SliceError(f"slice [{start_us}, {end_us}) us of a recording with no events",
                             path=self.path)
        t_first = int(self._read_t(0, 1)[0])
        t_last = int(self._read_t(self.n_events - 1, self.n_events)[0])
        if (start_us is not None and int(start_us) > t_last) or \
                (end_us is not None and int(end_us) <= t_first):
            raise SliceError(f"slice [{start_us}, {end_us}) us lies outside the recording, "
                             f"which spans [{t_first}, {t_last}] us", path=self.path)
        a = 0 if start_us is None else self.position(int(start_us))
        b = self.n_events if end_us is None else self.position(int(end_us))
        return a, b

    def events(self, start_us: int | None = None, end_us: int | None = None) -> np.ndarray:
        """Events with ``start_us <= t < end_us`` (either bound may be None)."""
        a, b = self._bounds(start_us, end_us)
        return self._filter(self._read(a, b), start_us, end_us)

    @staticmethod
    def _filter(ev: np.ndarray, start_us, end_us) -> np.ndarray:
        if start_us is None and end_us is None or len(ev) == 0:
            return ev
        keep = np.ones(len(ev), bool)
        if start_us is not None:
            keep &= ev["t"] >= int(start_us)
        if end_us is not None:
            keep &= ev["t"] < int(end_us)
        return ev if keep.all() else ev[keep]

    def iter_events(self, chunk_events: int | None = None, chunk_us: int | None = None, *,
                    start_us: int | None = None, end_us: int | None = None,
                    poll_s: float = 0.05, idle_timeout_s: float = 10.0) -> Iterator[np.ndarray]:
        """Consecutive chunks of ``chunk_events`` events and/or ``chunk_us`` of time, cut
        exactly as every reader in :mod:`eventpipe.io` cuts them (:func:`rebatch`).

        With ``follow=True`` the iterator waits for events the writer commits later and ends
        when the writer closes the file or nothing new arrives for ``idle_timeout_s``."""
        if self.follow:
            from recorders.follow import follow_events
            return follow_events(self, chunk_events=chunk_events, chunk_us=chunk_us,
                                 start_us=start_us, end_us=end_us, poll_s=poll_s,
                                 idle_timeout_s=idle_timeout_s)
        a, b = self._bounds(start_us, end_us)
        return rebatch(self.blocks(a, b, start_us, end_us), chunk_events=chunk_events,
                       chunk_us=chunk_us)

    def blocks(self, a: int, b: int, start_us=None, end_us=None, *,
               block_events: int = DEFAULT_CHUNK_EVENTS) -> Iterator[np.ndarray]:
        """Events at positions [a, b) in blocks of ``block_events``, filtered to the slice."""
        c = self.chunk  # block edges on chunk edges: each stored chunk is decoded once
        block_events = max(c, block_events // c * c)
        for i in range(a - a % c, b, block_events):
            ev = self._filter(self._read(max(i, a), min(b, i + block_events)), start_us,
                              end_us)
            if len(ev):
                yield ev

    # -- labels -----------------------------------------------------------------------------
    @_typed
    def labels(self, start_us: int | None = None, end_us: int | None = None,
               stream: int | None = None) -> np.ndarray:
        """Label rows (structured; see ``layout.label_dtypes``) with ``start_us <= t_us <
        end_us``, optionally of one stream, in the order they were recorded."""
        n = self.n_labels
        self._check_stored("labels", n, self._labcols.values())
        out = np.empty(n, label_row_dtype(self.label_bytes, self.topk))
        for name in label_dtypes(self.label_bytes, self.topk):
            try:
                out[name] = self._labcols[name][:n]
            except OSError as exc:  # a chunk that fails its checksum (HDF5)
                raise RecordingError(f"damaged recording: label column {name!r} does not read ({exc}: a "
                                     "stored chunk fails its checksum)", path=self.path,
                                     field=f"labels/{name}") from None
        self._check_rows(out)
        keep = np.ones(n, bool)
        if start_us is not None:
            keep &= out["t_us"] >= int(start_us)
        if end_us is not None:
            keep &= out["t_us"] < int(end_us)
        if stream is not None:
            keep &= out["stream"] == int(stream)
        return out[keep]

    def _check_rows(self, rows: np.ndarray) -> None:
        """Every label name of ``rows`` UTF-8 and every score and latency a finite number or
        NaN (unknown), a listed top-k score finite: the writer stores nothing else, and a
        message with an infinite number cannot be sent as JSON."""
        listed = rows["topk_label"] != b""
        for name, bad in (("score", np.isinf(rows["score"])),
                          ("latency_ms", np.isinf(rows["latency_ms"])),
                          ("topk_score", (listed & ~np.isfinite(rows["topk_score"])).any(1))):
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise RecordingError(f"label row {row}: {name} is not a finite number "
                                     "(damaged)", path=self.path, field=f"labels/{name}")
        for name in ("label", "truth", "topk_label"):
            col = rows[name]
            for value in np.unique(col):
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    row = int(np.flatnonzero((col == value).reshape(len(rows), -1).any(1))[0])
                    raise RecordingError(f"label row {row}: {name} is not UTF-8 text ({value!r}; "
                                         "damaged)", path=self.path,
                                         field=f"labels/{name}") from None

    def label_messages(self, **kwargs) -> list[dict]:
        """The labels as the pipeline's messages (dicts), see :meth:`labels` for filters."""
        return list(messages_from_rows(self.labels(**kwargs)))

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Recording({str(self.path)!r}, events={self.n_events}, labels={self.n_labels}, "
                f"complete={self.complete})")


def open_recording(path: str | os.PathLike, *, follow: bool = False,
                   wait_s: float = 0.0) -> Recording:
    """Open a recording.  With ``follow`` the file may still be being written; ``wait_s``
    waits (bounded) for it to appear and become readable."""
    if wait_s > 0:
        return wait_for_recording(path, follow=follow, timeout_s=wait_s)
    return Recording(path, follow=follow)


def wait_for_recording(path: str | os.PathLike, *, follow: bool, timeout_s: float,
                       poll_s: float = 0.05) -> "Recording":
    """Open ``path`` once it exists and its writer has started SWMR writing (bounded)."""
    deadline = time.monotonic() + float(timeout_s)
    while True:
        try:
            return Recording(path, follow=follow)
        except (OSError, RecordingError) as exc:  # not there yet, or still being created
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{os.fspath(path)}: no readable recording after "
                                   f"{timeout_s:g} s ({exc})") from None
        time.sleep(poll_s)
