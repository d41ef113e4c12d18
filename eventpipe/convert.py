"""``eventpipe convert``: re-encode a recording in another format.

Every writer is one of our encoders, each tested by a round trip through its
reader.  The sensor size travels where the target format can hold it.  The
recording is read whole (encoders take one array): memory is about 13 bytes per
event plus the encoded output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from eventpipe.errors import ConfigError, EventFormatError
from eventpipe.io import open_reader


def _bytes_writer(encode: Callable[..., bytes]) -> Callable:
    def write(path, events, sensor_size):
        Path(path).write_bytes(encode(events, sensor_size))
    return write


def _aedat2(path, events, sensor_size):
    """The smallest jAER chip whose array holds the sensor (its layout sets the bit fields)."""
    from eventpipe.io.aedat2 import CHIPS, encode_aedat2

    w, h = sensor_size  # convert() asks for one where the events give none
    fits = [(cw * ch, key) for key, (_, (cw, ch)) in CHIPS.items() if w <= cw and h <= ch]
    if not fits:
        cw, ch = max((size for _, size in CHIPS.values()), key=lambda s: s[0] * s[1])
        raise EventFormatError(f"a {w}x{h} sensor fits no AEDAT 2.0 chip layout (the largest is "
                               f"{cw}x{ch}): write .aedat4 instead", field="sensor size")
    Path(path).write_bytes(encode_aedat2(events, min(fits)[1]))


def _recording(path, events, sensor_size):
    """An eventpipe recording (HDF5, ``recorders``), lzf-compressed, replacing ``path`` only
    once it is whole: written beside it first, so a conversion stopped half-way (Ctrl-C, a
    full disk) leaves no partial file and an existing ``path`` untouched, as the formats
    written in one piece do."""
    from recorders import EventRecorder

    path = Path(path)
    part = path.with_name(f".{path.name}.part")
    try:
        with EventRecorder(part, sensor_size, overwrite=True, flush_every_us=None) as rec:
            rec.write(events)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _writers() -> dict[str, Callable]:
    from eventpipe.io.aedat3 import encode_aedat31
    from eventpipe.io.aedat4 import encode_aedat4
    from eventpipe.io.atis_bin import encode_atis_bin
    from eventpipe.io.csv_text import write_csv
    from eventpipe.io.dat import encode_dat
    from eventpipe.io.es import encode_es
    from eventpipe.io.evt2 import encode_evt2
    from eventpipe.io.evt3 import encode_evt3
    from eventpipe.io.plain import write_npy, write_npz

    return {
        "evt3": _bytes_writer(encode_evt3),
        "evt2": _bytes_writer(encode_evt2),
        "dat": _bytes_writer(encode_dat),
        "aedat4": _bytes_writer(encode_aedat4),
        "aedat3": lambda p, ev, size: Path(p).write_bytes(encode_aedat31(ev)),
        "aedat2": _aedat2,
        "es": _bytes_writer(encode_es),
        "atis_bin": lambda p, ev, size: Path(p).write_bytes(encode_atis_bin(ev)),
        "npy": lambda p, ev, size: write_npy(p, ev),
        "npz": lambda p, ev, size: write_npz(p, ev, sensor_size=size),
        "csv": lambda p, ev, size: write_csv(p, ev),
        "h5": _recording,
    }


BY_SUFFIX = {".raw": "evt3", ".dat": "dat", ".aedat4": "aedat4", ".aedat": "aedat2", ".es": "es",
             ".bin": "atis_bin", ".npy": "npy", ".npz": "npz", ".csv": "csv",
             ".h5": "h5", ".hdf5": "h5"}


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, to: str | None = None,
            format: str | None = None, sensor_size=None) -> int:
    """Read ``src`` and write it to ``dst`` as ``to`` (default: from ``dst``'s suffix).

    Returns the number of events written.  Raises ``ValueError`` for an unknown
    target and :class:`EventFormatError` for a damaged source.
    """
    writers = _writers()
    target = to or BY_SUFFIX.get(Path(dst).suffix.lower())
    if target not in writers:
        what = (f"--to {to!r}: no such writable format" if to else
                f"{Path(dst).name!r}: no format writes {Path(dst).suffix or 'a name without an extension'!r}")
        raise ConfigError(f"cannot write {what}; writable formats: {', '.join(writers)}"
                          + ("" if to else " (pass --to)"))
    reader = open_reader(src, format=format, sensor_size=sensor_size)
    events = reader.read()
    size = reader.info.sensor_size
    if target in NEEDS_SIZE and size is None:  # no events to infer it from either
        raise ConfigError(f"{target} needs a sensor size and {src} states none (nor has events to "
                          "infer it from): pass --sensor-size WxH")
    negative = np.flatnonzero(events["t"] < 0)
    if len(negative) and target in ("evt2", "evt3", "dat", "atis_bin", "es"):
        i = int(negative[0])
        raise EventFormatError(f"event {i} (t={int(events['t'][i])} us) and {len(negative) - 1:,} "
                               f"more have negative timestamps: {target} cannot hold them (write "
                               ".h5, .npy, .npz or .csv)", path=src, field="t")
    if size is not None and target not in SIZELESS:
        _check_inside(src, events, size, target)
    try:
        writers[target](dst, events, size)
    except EventFormatError as exc:
        raise exc.located(path=src) from None
    return len(events)


#: targets that must state a sensor size (AEDAT 2.0's chip layout is chosen by it)
NEEDS_SIZE = ("es", "aedat2")
#: targets that state no sensor size (h5 keeps the source's, events and all)
SIZELESS = ("npy", "csv", "h5", "aedat3", "atis_bin")


def _check_inside(src, events, size, target: str) -> None:
    """Events outside the sensor size cannot be written to a format that states it."""
    w, h = (int(v) for v in size[:2])
    out = np.flatnonzero((events["x"] >= w) | (events["y"] >= h))
    if len(out):
        i = int(out[0])
        raise EventFormatError(f"event {i} (x={int(events['x'][i])}, y={int(events['y'][i])}) "
                               f"and {len(out) - 1:,} more lie outside the sensor size {w}x{h}: "
                               f"{target} cannot hold them (give the real size with "
                               "--sensor-size WxH)", path=src)
