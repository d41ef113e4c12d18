"""``EventRecorder``: append events and labels to a crash-safe, seekable HDF5 recording.

The file is written in HDF5 SWMR mode (``libver="latest"``; every dataset is created
before SWMR starts).  Events are buffered per column and written one whole chunk at a time
(each compressed chunk is written once; :class:`recorders.columns.ColumnWriter` encodes
lzf chunks itself and grows the extent in steps); :meth:`EventRecorder.flush` writes the events
after the last whole chunk into a spare uncompressed tail slot, the pending index entries
and labels, flushes every dataset, and only then rewrites the ``/status`` commit record
with the new counts and slot (see :mod:`recorders.layout`).  A process killed at any moment
therefore leaves a file whose status counts describe data that is fully on disk: it opens
and holds every event up to the last flush (``tests/recorders/test_crash.py`` kills real
writers with SIGKILL to prove it).

Flushes happen every ``flush_every_us`` of recording time (event or label t), on
:meth:`flush` and on :meth:`close`.  A write error (disk full, file or directory gone) is
raised as :class:`RecorderWriteError` naming the file and how many events are safe; the
recorder then refuses further writes.  This class is synchronous: the live pipeline uses
:class:`recorders.AsyncRecorder`, which runs it on its own thread behind a bounded queue.
"""

from __future__ import annotations

import datetime
import errno
import os
import time
from pathlib import Path

import h5py
import numpy as np

from eventpipe.events import EVENT_DTYPE, as_events, check_sensor_size
from recorders.columns import ColumnWriter
from recorders.create import dataset_plist, new_dataset, set_attrs
from recorders.index import IndexBuilder
from recorders.labels import rows_from_messages
from recorders.layout import (
    DEFAULT_CHUNK_EVENTS, DEFAULT_INDEX_PERIOD_US, DEFAULT_LABEL_BYTES, DEFAULT_TOPK,
    EVENT_COLUMNS, FORMAT_TAG, INDEX_CHUNK, LABEL_CHUNK, SCHEMA_VERSION, STATUS, STATUS_FIELDS,
    WRITER_VERSION, RecorderWriteError, compression_args, label_dtypes, label_row_dtype,
)


class EventRecorder:
    """Record events (``EVENT_DTYPE``) and label messages into ``path`` (see ``layout``)."""

    def __init__(self, path: str | os.PathLike, sensor_size=None, *,
                 flush_every_us: int | None = 1_000_000, compression: str | None = "lzf",
                 chunk_events: int = DEFAULT_CHUNK_EVENTS,
                 index_period_us: int = DEFAULT_INDEX_PERIOD_US, topk: int = DEFAULT_TOPK,
                 label_bytes: int = DEFAULT_LABEL_BYTES, source_uri: str = "",
                 camera_serial: str = "", overwrite: bool = False, fsync: bool = False):
        self.path = Path(path)
        self.sensor_size = None if sensor_size is None else check_sensor_size(sensor_size)
        self.compression, comp_kwargs = compression_args(compression)
        if flush_every_us is not None and int(flush_every_us) <= 0:
            raise ValueError(f"flush_every_us must be > 0 or None, got {flush_every_us}")
        if int(chunk_events) < 1 or int(topk) < 1 or int(label_bytes) < 1:
            raise ValueError("chunk_events, topk and label_bytes must be >= 1")
        self.check_target(self.path, overwrite=overwrite)
        self.flush_every_us = None if flush_every_us is None else int(flush_every_us)
        self.chunk = int(chunk_events)
        self.topk, self.label_bytes = int(topk), int(label_bytes)
        self.fsync = bool(fsync)
        self._index = IndexBuilder(index_period_us)
        self._f = h5py.File(self.path, "w" if overwrite else "w-", libver="latest",
                            rdcc_nbytes=64 << 20)
        try:
            self._create(comp_kwargs, source_uri, camera_serial)
            self._f.swmr_mode = True
        except BaseException:
            self._f.close()
            raise
        self._ino = os.stat(self.path).st_ino
        made = self._made  # the datasets as created (looking 21 up again cost ~3 ms)
        self._ds = {name: made[f"events/{name}"] for name, _ in EVENT_COLUMNS}
        self._columns = ColumnWriter(self._ds, self.chunk, self.compression)
        self._tail_ds = {name: made[f"events/tail_{name}"] for name, _ in EVENT_COLUMNS}
        self._index_ds = {name: made[f"events/{name}"] for name in ("index_t", "index_offset")}
        self._label_ds = {k[len("labels/"):]: ds for k, ds in made.items()
                          if k.startswith("labels/")}
        self._status = made["status"]
        del self._made
        self._buf = np.empty(self.chunk, EVENT_DTYPE)  # records after the last whole chunk
        self._buf_start = 0   # file position of buffer row 0 (a multiple of chunk)
        self._buf_n = 0       # rows in the buffer
        self._tail_slot = 0    # the slot the status record points at
        self._pending_index: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_labels: list[np.ndarray] = []
        self._n_index = self._n_labels = 0
        self.events_written = 0     # accepted by write()
        self.events_committed = 0   # flushed and recorded in /status
        self.labels_written = 0
        self.dropped_events = self.dropped_labels = 0
        self.flushes = 0
        self._last_flush_t: int | None = None
        self._error: RecorderWriteError | None = None
        self.closed = False

    @staticmethod
    def check_target(path, *, overwrite: bool = False) -> None:
        """Raise unless a recording may be created at ``path``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: already exists; refusing to overwrite it "
                                  "(pass overwrite=True)")
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a directory")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")

    # -- creation -------------------------------------------------------------------------
    def _create(self, comp: dict, source_uri: str, camera_serial: str) -> None:
        f = self._f
        made = self._made = {}
        now = time.time()
        set_attrs(f, {
            "format": FORMAT_TAG, "schema_version": SCHEMA_VERSION,
            "writer_version": WRITER_VERSION, "wall_clock_start_unix": now,
            "created_utc": datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
            .isoformat(timespec="milliseconds")})
        ev = f.create_group("events")
        set_attrs(ev, {"sensor_size": np.array(self.sensor_size or (0, 0), np.int64),
                       "time_unit": "us", "source_uri": str(source_uri or ""),
                       "camera_serial": str(camera_serial or ""),
                       "compression": self.compression, "chunk_events": self.chunk,
                       "index_period_us": self._index.period_us})
        # h5py's low-level API (recorders.create): create_dataset's Python cost was most
        # of the time a recording took to create
        columns = dataset_plist((self.chunk,), fletcher32=True, **comp)  # every chunk checksummed
        for name, dt in EVENT_COLUMNS:
            made[f"events/{name}"] = new_dataset(ev, name, dt, (0,), maxshape=(None,),
                                                 plist=columns)
        for name, dt in EVENT_COLUMNS:
            # contiguous, allocated and written now: space allocated later, under SWMR,
            # may lie past the end of a file cut off by a crash
            made[f"events/tail_{name}"] = new_dataset(
                ev, f"tail_{name}", dt, (2, self.chunk), data=np.zeros((2, self.chunk), dt))
        index = dataset_plist((INDEX_CHUNK,), fletcher32=True)  # uncompressed
        for name in ("index_t", "index_offset"):
            made[f"events/{name}"] = new_dataset(ev, name, np.int64, (0,), maxshape=(None,),
                                                 plist=index)
        lab = f.create_group("labels")
        set_attrs(lab, {"topk": self.topk, "label_bytes": self.label_bytes})
        for name, (dt, shape) in label_dtypes(self.label_bytes, self.topk).items():
            made[f"labels/{name}"] = new_dataset(
                lab, name, dt, (0,) + shape, maxshape=(None,) + shape,
                plist=dataset_plist((LABEL_CHUNK,) + shape, fletcher32=True))
        st = made["status"] = new_dataset(f, "status", np.int64, (len(STATUS_FIELDS),),
                                          data=np.zeros(len(STATUS_FIELDS), np.int64))
        set_attrs(st, {"fields": ",".join(STATUS_FIELDS)})

    # -- writing --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self.closed:
            raise ValueError(f"{self.path}: recorder is closed")

    @property
    def events_back_in_time(self) -> int:
        """Events written so far that are earlier than an event before them (kept as they
        came; slices follow the running maximum of t)."""
        return self._index.back_in_time

    def write(self, events) -> None:
        """Append events (any array :func:`eventpipe.events.as_events` accepts)."""
        self._check_open()
        ev = as_events(events)
        n = len(ev)
        if n == 0:
            return
        ev = np.ascontiguousarray(ev)
        it, io = self._index.add(ev["t"], self.events_written)
        if len(it):
            self._pending_index.append((it, io))
        self.events_written += n
        try:
            self._append(ev, n)
        except (OSError, RuntimeError) as exc:  # h5py raises both for failed writes
            raise self._fail(exc) from exc
        self._maybe_flush(int(self._index.running_max))

    def _append(self, ev: np.ndarray, n: int) -> None:
        i, c = 0, self.chunk
        while i < n:
            if self._buf_n == 0 and n - i >= c:  # whole chunks straight from the input
                k = (n - i) // c * c
                self._columns.write(self._buf_start, ev[i:i + k])
                self._buf_start += k
                i += k
                continue
            take = min(c - self._buf_n, n - i)
            self._buf[self._buf_n:self._buf_n + take] = ev[i:i + take]
            self._buf_n += take
            i += take
            if self._buf_n == c:
                self._columns.write(self._buf_start, self._buf)
                self._buf_start += c
                self._buf_n = 0

    def write_labels(self, rows) -> None:
        """Append label messages (dicts as the sinks receive them) or rows of the label dtype."""
        self._check_open()
        if isinstance(rows, dict):
            rows = [rows]
        if isinstance(rows, np.ndarray):
            want = label_row_dtype(self.label_bytes, self.topk)
            if rows.dtype != want:
                raise ValueError(f"label rows have dtype {rows.dtype}, expected {want}")
        else:
            rows = rows_from_messages(rows, label_bytes=self.label_bytes, topk=self.topk)
        if len(rows) == 0:
            return
        self._pending_labels.append(rows)
        self.labels_written += len(rows)
        pending = sum(len(r) for r in self._pending_labels)
        try:
            if pending >= LABEL_CHUNK:
                self._write_labels()
        except (OSError, RuntimeError) as exc:  # h5py raises both for failed writes
            raise self._fail(exc) from exc
        self._maybe_flush(int(rows["t_us"].max()))

    def _write_labels(self) -> None:
        if not self._pending_labels:
            return
        rows = np.concatenate(self._pending_labels)
        a, b = self._n_labels, self._n_labels + len(rows)
        for name in rows.dtype.names:
            ds = self._label_ds[name]
            ds.resize((b,) + ds.shape[1:])
            ds[a:b] = np.ascontiguousarray(rows[name])
        self._n_labels = b
        self._pending_labels = []

    def _write_index(self) -> None:
        if not self._pending_index:
            return
        it = np.concatenate([p[0] for p in self._pending_index])
        io = np.concatenate([p[1] for p in self._pending_index])
        a, b = self._n_index, self._n_index + len(it)
        for name, data in (("index_t", it), ("index_offset", io)):
            ds = self._index_ds[name]
            ds.resize((b,))
            ds[a:b] = data
        self._n_index = b
        self._pending_index = []

    def _maybe_flush(self, t_us: int) -> None:
        if self.flush_every_us is None:
            return
        if self._last_flush_t is None:
            self._last_flush_t = t_us
        elif t_us - self._last_flush_t >= self.flush_every_us:
            self.flush()
            self._last_flush_t = t_us

    def set_dropped(self, events: int, labels: int) -> None:
        """Record drop counts (an :class:`AsyncRecorder`'s) in the file at the next flush."""
        self.dropped_events, self.dropped_labels = int(events), int(labels)

    def flush(self, *, _closing: bool = False) -> int:
        """Make everything written so far durable against a crash; return the events committed."""
        self._check_open()
        try:
            self._check_file()
            slot = self._tail_slot
            if _closing:  # the last partial chunk goes to the columns, once
                # trimmed first: HDF5 rewrites (decodes, fills, encodes) a stored chunk
                # that a shrink cuts through; a chunk not yet written costs nothing
                self._columns.trim(self.events_written)
                self._columns.write(self._buf_start, self._buf, self._buf_n)
            elif self._buf_n:  # into the slot the status does not point at
                slot = 1 - self._tail_slot
                for name, _ in EVENT_COLUMNS:
                    self._tail_ds[name][slot, :self._buf_n] = np.ascontiguousarray(
                        self._buf[name][:self._buf_n])
            self._write_index()
            self._write_labels()
            self._f.flush()  # every dataset's data and metadata (H5Fflush), then ...
            self.flushes += 1
            status = np.zeros(len(STATUS_FIELDS), np.int64)
            values = {"closed": int(_closing), "events": self.events_written,
                      "labels": self._n_labels, "index": self._n_index,
                      "dropped_events": self.dropped_events,
                      "dropped_labels": self.dropped_labels, "flushes": self.flushes,
                      "tail_slot": slot}
            for k, v in values.items():
                status[STATUS[k]] = v
            st = self._status
            st[:] = status
            st.flush()
            self._tail_slot = slot
            if self.fsync:
                self._f.flush()
                os.fsync(self._f.id.get_vfd_handle())
        except (OSError, RuntimeError) as exc:  # h5py raises both for failed writes
            raise self._fail(exc) from exc
        self.events_committed = self.events_written
        return self.events_committed

    def _check_file(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, "the file or its directory was removed while "
                                        "recording") from None
        if st.st_ino != self._ino:
            raise OSError(errno.ENOENT, "the file was replaced while recording")

    def _fail(self, exc: Exception) -> RecorderWriteError:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if code == errno.ENOSPC or "No space left" in text or "errno = 28" in text:
            what, code = "disk full", errno.ENOSPC
        elif code == errno.ENOENT or "removed" in text or "replaced" in text:
            what = f"write failed: {getattr(exc, 'strerror', None) or text}"
        else:
            what = f"write failed: {text}"
        self._error = RecorderWriteError(what, path=self.path, committed=self.events_committed,
                                         errno_=code)
        return self._error

    # -- closing --------------------------------------------------------------------------
    def close(self, *, ended_by_error: str | None = None) -> None:
        """Flush, mark the recording complete and close.  After a write error the file is
        closed without marking it complete (it holds the data up to the last flush).

        ``ended_by_error`` (the source failed, say): the file is finalised as usual but the
        reason is stored in the root attribute ``ended_by_error`` before the final commit,
        and readers report the recording as not complete."""
        if self.closed:
            return
        try:
            if self._error is None:
                if ended_by_error:
                    set_attrs(self._f, {"ended_by_error": str(ended_by_error)})
                self.flush(_closing=True)
        finally:
            self.closed = True
            if self._error is not None:
                self._detach()
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - the write error was raised already
                if self._error is None:
                    raise

    def _detach(self) -> None:
        """After a failed write (disk full), point HDF5's file descriptor at /dev/null.

        HDF5 cannot close a file whose dirty metadata it cannot write (h5py then crashes
        when the handles are collected).  The file on disk already reads as its last flush,
        exactly as after a SIGKILL at this moment, so what HDF5 writes while closing can go
        nowhere: the close succeeds and the file keeps its committed state."""
        try:
            fd = self._f.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except Exception:  # noqa: BLE001 - best effort: a driver without a descriptor
            pass

    def __enter__(self) -> "EventRecorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Closes; when the ``with`` block raised (Ctrl-C in it, say), the recording is
        finalised with the reason in ``ended_by_error``, so readers do not report it complete."""
        if exc_type is None:
            self.close()
        else:
            text = str(exc)
            self.close(ended_by_error=f"stopped by {exc_type.__name__}" + (f": {text}" if text
                                                                             else ""))

    def __repr__(self) -> str:
        return (f"EventRecorder({str(self.path)!r}, events={self.events_written}, "
                f"labels={self.labels_written}, compression={self.compression!r})")
