"""Interchange formats: structured ``.npy``, ``.npz``, CSV text and tonic's
DVS Gesture ``.npy``; and writers for the first three.

Conversions are checked: x and y must be integers in [0, 65535] (floats only
when integral), t an integer fitting int64, p one of 0, 1 (OFF, ON) or -1
(read as OFF, the common -1/+1 convention), booleans as 0/1.  A bad value is
an :class:`EventFormatError` naming the field and the byte offset of its row
(``.npy``) or member (``.npz``) or line (CSV).

- ``npy``: a 1-D structured array with fields x, y, t, p (other fields are
  ignored); memory-mapped and converted in bounded row blocks.
- ``gesture_npy``: tonic's DVS Gesture layout, a 2-D (N, 4) numeric array with
  columns x, y, p, t (t in ms).  Decoded exactly as tonic's ``DVSGesture.
  __getitem__``: ``t *= 1000`` in the file's dtype, then cast to int16 x, y,
  bool p, int64 t (float t truncates toward zero).  Sensor 128 x 128 (table).
- ``npz``: arrays t, x, y, p (or a single structured array with those fields);
  an optional ``sensor_size`` array (W, H[, ...]) gives the size ("file").
  Members are loaded whole (a zip member cannot be memory-mapped).
- ``csv``: text lines ``t,x,y,p``; the reader and ``write_csv`` live in
  :mod:`eventpipe.io.csv_text` and are re-exported here.
"""

from __future__ import annotations

import abc
import io
import zipfile
from typing import Iterator

import numpy as np
import numpy.lib.recfunctions as rfn

from eventpipe.events import EVENT_DTYPE, as_events, check_sensor_size
from eventpipe.io.base import EventReader

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
FIELDS = ("x", "y", "t", "p")
GESTURE_SIZE = (128, 128)
_GESTURE_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])


# -- checked conversion ---------------------------------------------------------
def _bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_int(a: np.ndarray, name: str):
    """Integer view of a column, or (row, message) describing the first bad value."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8), None
    if a.dtype.kind in "iu":
        if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size and a.max() > 2**63 - 1:
            return None, (_bad_row(a > 2**63 - 1), f"{name} does not fit int64")
        return a, None
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.trunc(a)) | (np.abs(a) > 2.0**62)
        if bad.any():
            return None, (_bad_row(bad), f"{name} is not an integer: {a[_bad_row(bad)]!r}")
        return a.astype(np.int64), None
    return None, (0, f"{name} has non-numeric dtype {a.dtype}")


def _convert(cols: dict):
    """Pack x, y, t, p columns into EVENT_DTYPE.  Returns ``(events, problem)``:
    with a bad value, ``events`` are the rows before the first bad row and
    ``problem`` is ``(row, message, field)``; else ``problem`` is None."""
    problems = []
    ints = {}
    for name in FIELDS:
        if np.ndim(cols[name]) != 1:
            return np.empty(0, EVENT_DTYPE), (0, f"column {name!r} has shape {np.shape(cols[name])}, expected 1-D",
                          name)
    for name in FIELDS:
        v, problem = _as_int(cols[name], name)
        if problem:
            problems.append((problem[0], problem[1], name))
            v = np.zeros(len(cols[name]), np.int64)
        ints[name] = v
    for name in ("x", "y"):
        v = ints[name]
        bad = (v < 0) | (v > 0xFFFF)
        if v.size and bad.any():
            r = _bad_row(bad)
            problems.append((r, f"{name} = {v[r]} outside [0, 65535]", name))
    p = ints["p"]
    bad = (p != 0) & (p != 1) & (p != -1)
    if p.size and bad.any():
        r = _bad_row(bad)
        problems.append((r, f"p = {p[r]} is not 0, 1 or -1", "p"))
    problem = min(problems, key=lambda q: q[0]) if problems else None
    stop = len(p) if problem is None else problem[0]
    out = np.empty(stop, dtype=EVENT_DTYPE)
    out["x"] = ints["x"][:stop]
    out["y"] = ints["y"][:stop]
    out["t"] = ints["t"][:stop]
    out["p"] = p[:stop] > 0
    return out, problem


# -- .npy --------------------------------------------------------------------
def npy_header(fp):
    """``(shape, fortran_order, dtype)`` of the .npy header at ``fp``'s position."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy version {version}")


def _head_header(head: bytes):
    if not head.startswith(NPY_MAGIC):
        return None
    try:
        return npy_header(io.BytesIO(head))
    except Exception:  # noqa: BLE001 - any unparsable header means "not ours"
        return None


class _NpyBase(EventReader):
    """Shared .npy plumbing: header parse, memory map, row blocks, truncation."""

    extensions = (".npy",)

    @abc.abstractmethod
    def _check_layout(self, shape, fortran, dtype) -> None:
        """Raise an EventFormatError unless the header describes this reader's layout."""

    def _parse_header(self) -> None:
        with self._open() as f:
            if not f.read(6) == NPY_MAGIC:
                raise self.error("not a .npy file (bad magic)", offset=0, field="magic")
            f.seek(0)
            try:
                shape, fortran, dtype = npy_header(f)
            except Exception as exc:  # noqa: BLE001 - numpy raises assorted types
                raise self.error(f"bad .npy header: {exc}", offset=8, field="header") from None
            self.data_offset = f.tell()
        if dtype.hasobject:
            raise self.error("object arrays are not read", offset=8, field="dtype")
        self._check_layout(shape, fortran, dtype)
        self.shape, self.fortran, self.dtype = tuple(shape), bool(fortran), dtype
        self.rows = int(shape[0])
        row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        self.row_bytes = row_bytes
        self.info.extras.update({"npy_dtype": str(dtype), "npy_shape": list(shape)})

    def _rows(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, block)`` of the available rows, then damage errors."""
        avail = (self.file_size - self.data_offset) // self.row_bytes if self.row_bytes else 0
        n = min(self.rows, avail)
        if self.fortran and n < self.rows:
            raise self.error(f"truncated: header declares {self.rows} rows, data holds {avail} "
                             "(column-major: nothing recoverable)", offset=self.file_size)
        if n:
            mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.data_offset,
                           shape=(n,) + self.shape[1:], order="F" if self.fortran else "C")
            step = max(1, self.block_bytes // self.row_bytes)
            for a in range(0, n, step):
                yield a, np.array(mm[a:a + step])
            del mm
        end = self.data_offset + n * self.row_bytes
        if n < self.rows:
            raise self.error(f"truncated: header declares {self.rows} rows, data holds {n}",
                             offset=end, field="data")
        if self.file_size > end:
            raise self.error(f"{self.file_size - end} trailing byte(s) after the array",
                             offset=end, field="data")

    def _emit(self, first_row: int, cols: dict) -> Iterator[np.ndarray]:
        """Convert a row block; yield the good rows, then raise at a bad one."""
        ev, problem = _convert(cols)
        if len(ev):
            yield ev
        if problem:
            self._fail(first_row + problem[0], problem[1], problem[2])

    def _fail(self, row: int, msg: str, field: str):
        raise self.error(f"row {row}: {msg}", offset=self.data_offset + row * self.row_bytes,
                         field=field)


class NpyReader(_NpyBase):
    """A structured ``.npy`` array with fields x, y, t, p."""

    format = "npy"
    title = "structured .npy with fields x, y, t, p"

    @staticmethod
    def sniff(head: bytes) -> bool:
        h = _head_header(head)
        return h is not None and len(h[0]) == 1 and set(FIELDS) <= set(h[2].names or ())

    def _check_layout(self, shape, fortran, dtype) -> None:
        missing = [f for f in FIELDS if f not in (dtype.names or ())]
        if missing:
            raise self.error(f"structured array lacks field(s) {missing} (has "
                             f"{list(dtype.names or ())})", offset=8, field="dtype")
        if len(shape) != 1:
            raise self.error(f"expected a 1-D array, header says shape {shape}", offset=8,
                             field="shape")
        for f in FIELDS:
            if dtype[f].shape != ():
                raise self.error(f"field {f!r} is a sub-array {dtype[f]}, expected a scalar",
                                 offset=8, field=f)

    def _decode(self) -> Iterator[np.ndarray]:
        for a, blk in self._rows():
            yield from self._emit(a, {f: blk[f] for f in FIELDS})


class GestureNpyReader(_NpyBase):
    """tonic's DVS Gesture ``.npy``: (N, 4) columns x, y, p, t[ms]; tonic-exact."""

    format = "gesture_npy"
    title = "tonic DVS Gesture .npy (N x 4: x, y, p, t in ms)"

    @staticmethod
    def sniff(head: bytes) -> bool:
        h = _head_header(head)
        return (h is not None and len(h[0]) == 2 and h[0][1] == 4 and h[2].names is None
                and h[2].kind in "iuf")

    def _check_layout(self, shape, fortran, dtype) -> None:
        if dtype.names is not None or dtype.kind not in "iuf" or len(shape) != 2 or shape[1] != 4:
            raise self.error(f"expected an (N, 4) numeric array, got shape {shape} dtype {dtype}",
                             offset=8, field="shape")
        self.info.sensor_size = GESTURE_SIZE
        self.info.sensor_size_source = "table"
        self.info.extras["dataset"] = "DVS128 Gesture (tonic layout)"

    def _decode(self) -> Iterator[np.ndarray]:
        for a, blk in self._rows():
            bad_row = None
            if blk.dtype.kind == "f":
                bad = ~np.isfinite(blk).all(axis=1)
                if bad.any():
                    bad_row = _bad_row(bad)
                    blk = blk[:bad_row]
            blk[:, 3] *= 1000  # tonic: "convert from ms to us", in the file's dtype
            ev = rfn.unstructured_to_structured(blk, _GESTURE_DTYPE)
            yield from self._emit(a, {f: ev[f] for f in FIELDS})
            if bad_row is not None:
                self._fail(a + bad_row, "non-finite value", "row")


# -- .npz ----------------------------------------------------------------------
class NpzReader(EventReader):
    """An ``.npz`` archive with arrays t, x, y, p (optional ``sensor_size``)."""

    format = "npz"
    title = ".npz with arrays t, x, y, p"
    extensions = (".npz",)

    @staticmethod
    def sniff(head: bytes) -> bool:
        if not head.startswith(ZIP_MAGIC) or len(head) < 30:
            return False
        name_len = int.from_bytes(head[26:28], "little")
        return head[30:30 + name_len].endswith(b".npy")

    def _zip_offset(self, member: str):
        try:
            with zipfile.ZipFile(self.path) as z:
                return z.getinfo(member + ".npy").header_offset
        except Exception:  # noqa: BLE001
            return 0

    def _load(self, member: str) -> np.ndarray:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                return np.asarray(z[member])
        except Exception as exc:  # noqa: BLE001 - zip/zlib/numpy raise assorted types
            raise self.error(f"cannot read array {member!r}: {exc}",
                             offset=self._zip_offset(member), field=member) from None

    def _parse_header(self) -> None:
        with self._open() as f:
            if f.read(4) != ZIP_MAGIC:
                raise self.error("not an .npz archive (bad zip magic)", offset=0, field="magic")
        try:
            with np.load(self.path, allow_pickle=False) as z:
                keys = list(z.files)
        except Exception as exc:  # noqa: BLE001
            raise self.error(f"unreadable .npz archive: {exc}", offset=0,
                             field="archive") from None
        self.members = None
        if set(FIELDS) <= set(keys):
            self.members = {f: f for f in FIELDS}
        else:
            rest = [k for k in keys if k != "sensor_size"]
            if len(rest) == 1:
                self.structured = rest[0]
            else:
                raise self.error(f"archive lacks arrays {[f for f in FIELDS if f not in keys]} "
                                 f"(has {keys})", offset=0, field="arrays")
        self.info.extras["arrays"] = keys
        if "sensor_size" in keys:
            size = self._load("sensor_size").ravel()
            try:
                self.info.sensor_size = check_sensor_size(size[:2])
            except ValueError as exc:
                raise self.error(str(exc), offset=self._zip_offset("sensor_size"),
                                 field="sensor_size") from None
            self.info.sensor_size_source = "file"

    def _columns(self) -> dict:
        if self.members is not None:
            cols = {f: self._load(f) for f in FIELDS}
        else:
            arr = self._load(self.structured)
            if arr.ndim != 1 or not set(FIELDS) <= set(arr.dtype.names or ()):
                raise self.error(f"array {self.structured!r} is not a structured x, y, t, p "
                                 "array", offset=self._zip_offset(self.structured),
                                 field=self.structured)
            cols = {f: arr[f] for f in FIELDS}
        for f in FIELDS:
            if cols[f].ndim != 1 or len(cols[f]) != len(cols["t"]):
                raise self.error(f"array {f!r} has shape {cols[f].shape}, t has "
                                 f"{cols['t'].shape}", offset=self._zip_offset(f), field=f)
        return cols

    def _decode(self) -> Iterator[np.ndarray]:
        cols = self._columns()
        n = len(cols["t"])
        stop, problem = n, None
        w = self.info.sensor_size if self.info.sensor_size_source == "file" else None
        for f, lim in (("x", w[0]), ("y", w[1])) if w and n else ():
            v, _ = _as_int(cols[f], f)
            bad = np.flatnonzero(v >= lim) if v is not None else ()
            if len(bad) and bad[0] < stop:
                stop = int(bad[0])
                problem = (f"event {stop}: {f} = {v[stop]} outside the file's sensor_size {w}", f)
        step = max(1, self.block_bytes // EVENT_DTYPE.itemsize)
        for a in range(0, stop, step):
            ev, bad = _convert({f: cols[f][a:min(a + step, stop)] for f in FIELDS})
            if len(ev):
                yield ev
            if bad:
                raise self.error(f"event {a + bad[0]}: {bad[1]}", offset=self._zip_offset(bad[2]),
                                 field=bad[2])
        if problem:
            raise self.error(problem[0], offset=self._zip_offset(problem[1]), field=problem[1])


# -- writers ---------------------------------------------------------------------
def write_npy(path, events) -> None:
    """Save events as a structured ``.npy`` (EVENT_DTYPE: x, y, t, p)."""
    with open(path, "wb") as f:
        np.save(f, as_events(events), allow_pickle=False)


def write_npz(path, events, sensor_size=None, compressed: bool = False) -> None:
    """Save events as ``.npz`` arrays t, x, y, p (+ ``sensor_size`` (W, H))."""
    ev = as_events(events)
    arrays = {f: ev[f] for f in ("t", "x", "y", "p")}
    if sensor_size is not None:
        arrays["sensor_size"] = np.asarray(check_sensor_size(sensor_size), dtype=np.int64)
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)



from eventpipe.io.csv_text import CsvReader, write_csv  # noqa: E402  (re-export)

__all__ = ["CsvReader", "GestureNpyReader", "NpyReader", "NpzReader", "write_csv",
           "write_npy", "write_npz"]
