"""The table of formats we read, and detection by content.

The table is a literal tuple: nothing registers itself at import.  Readers are
imported lazily, so detecting a format loads only the modules it needs.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path

from eventpipe.errors import ConfigError, UnknownFormatError

SNIFF_BYTES = 1 << 16


@dataclasses.dataclass(frozen=True)
class FormatSpec:
    name: str
    title: str
    extensions: tuple[str, ...]
    reader: str  # "module:Class"

    def load(self):
        module, _, cls = self.reader.partition(":")
        return getattr(importlib.import_module(module), cls)


# Order matters for detection: formats with magic numbers first, then headers,
# then the loosely recognised interchange formats.
FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec("h5", "eventpipe recording (HDF5, recorders; events, labels, time index)",
               (".h5", ".hdf5"), "eventpipe.io.hdf5:RecordingReader"),
    FormatSpec("aedat4", "iniVation AEDAT 4.0 (events stream; LZ4/ZSTD packets)", (".aedat4",),
               "eventpipe.io.aedat4:Aedat4Reader"),
    FormatSpec("aedat3", "iniVation AEDAT 3.1 (polarity packets; DVS128 Gesture)", (".aedat",),
               "eventpipe.io.aedat3:Aedat3Reader"),
    FormatSpec("aedat2", "jAER AEDAT 2.0 (DVS128, DAVIS240/346; chip from '# AEChip:')",
               (".aedat", ".dat"), "eventpipe.io.aedat2:Aedat2Reader"),
    FormatSpec("es", "Event Stream .es (DVS type)", (".es",), "eventpipe.io.es:EventStreamReader"),
    FormatSpec("evt3", "Prophesee RAW EVT 3.0", (".raw",), "eventpipe.io.evt3:Evt3Reader"),
    FormatSpec("evt2", "Prophesee RAW EVT 2.0", (".raw",), "eventpipe.io.evt2:Evt2Reader"),
    FormatSpec("dat", "Prophesee/Chronocam DAT (CD and 2D event types)", (".dat",),
               "eventpipe.io.dat:DatReader"),
    FormatSpec("atis_bin", "N-MNIST / N-Caltech101 ATIS .bin (40-bit events)", (".bin",),
               "eventpipe.io.atis_bin:AtisBinReader"),
    FormatSpec("hardvs", "HAR-DVS compact event file (action_XXX/<sample>.npz, t,x,y,p)", (".npz",),
               "eventpipe.io.hardvs:HarDvsReader"),
    FormatSpec("gesture_npy", "tonic DVS Gesture .npy (N x 4: x, y, p, t in ms)", (".npy",),
               "eventpipe.io.plain:GestureNpyReader"),
    FormatSpec("npy", "structured .npy with fields x, y, t, p", (".npy",),
               "eventpipe.io.plain:NpyReader"),
    FormatSpec("npz", ".npz with arrays t, x, y, p", (".npz",), "eventpipe.io.plain:NpzReader"),
    FormatSpec("csv", "CSV text with columns t, x, y, p", (".csv", ".txt"),
               "eventpipe.io.plain:CsvReader"),
)

_BY_NAME = {f.name: f for f in FORMATS}
#: a pipe (``<(cat f)``) or a device: the sniffing read would consume what a reader then reads
NOT_A_FILE = ("not a regular file (a pipe or a device): recordings are read from files, more "
              "than once (format detection, then the reader); save it to a file first")


def format_names() -> list[str]:
    return [f.name for f in FORMATS]


def get_format(name: str) -> FormatSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(str(name), list(_BY_NAME), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown format {name!r}{hint}; known: {', '.join(_BY_NAME)}") from None


def read_head(path: str | os.PathLike, n: int = SNIFF_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def detect_format(path: str | os.PathLike) -> FormatSpec:
    """Detect the format of ``path`` by content, falling back to the extension."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such recording: {path}")
    if path.is_dir():
        raise UnknownFormatError("is a directory, not a recording", path=path)
    if not path.is_file():
        raise UnknownFormatError(NOT_A_FILE, path=path)
    head = read_head(path)
    for spec in FORMATS:
        cls = spec.load()
        if cls.sniff_path(path, head) if hasattr(cls, "sniff_path") else cls.sniff(head):
            return spec
    ext = path.suffix.lower()
    for spec in FORMATS:
        if ext in spec.extensions:
            return spec
    raise UnknownFormatError(
        f"unrecognised event file (first bytes {head[:16]!r}); force a format (--format, or "
        f"format= in Python): one of {', '.join(format_names())}", path=path, offset=0)
