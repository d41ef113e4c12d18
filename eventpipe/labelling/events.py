"""The events of a take by time: recordings (``.h5``) through their time index, any other
format :mod:`eventpipe.io` reads loaded once and sliced."""

from __future__ import annotations

from pathlib import Path

from eventpipe.errors import DataError
from eventpipe.runtime.config import sensor_size_problem

RECORDING_PREFERENCE = (".h5", ".hdf5")


def recording_events(path: Path):
    """``(read(start_us, end_us) -> events, sensor_size, t_first, t_last)`` of a recording."""
    if path.suffix.lower() in RECORDING_PREFERENCE:
        from recorders.reader import open_recording

        with open_recording(path) as rec:
            info = rec.info

        def read(a, b):
            with open_recording(path) as r:
                return r.events(start_us=a, end_us=b)

        return read, info.sensor_size, info.t_first, info.t_last
    from eventpipe.io import open_reader

    r = open_reader(path)
    ev = r.read()
    size = r.info.sensor_size or ((int(ev["x"].max()) + 1, int(ev["y"].max()) + 1)
                                  if len(ev) else None)

    def read(a, b):
        return ev[(ev["t"] >= a) & (ev["t"] < b)]

    t = ev["t"]
    return read, size, (int(t.min()) if len(t) else None), (int(t.max()) if len(t) else None)


def take_events(path: Path):
    """:func:`recording_events` of a recording to label, train on or score: one that holds
    no events or has no sensor size is a ``DataError`` naming it (exit status 3)."""
    read, size, t_first, t_last = recording_events(Path(path))
    if t_first is None:
        raise DataError(f"{path}: the recording holds no events")
    if size is None:  # a recording of a source that stated none (record file:X.dat, say)
        raise DataError(f"{path}: the recording states no sensor size; give it one with "
                        f"`eventpipe convert {path} OUT.h5 --sensor-size WxH`")
    size = tuple(int(v) for v in size[:2])
    problem = sensor_size_problem(size)  # frames are allocated at the sensor's size
    if problem:
        raise DataError(f"{path}: the sensor size {problem}")
    return read, size, int(t_first), int(t_last)


def sensor_size_of(path: Path):
    """The (W, H) a recording's header states (None: it states none), without reading
    its events."""
    if path.suffix.lower() in RECORDING_PREFERENCE:
        from recorders.reader import open_recording

        with open_recording(path) as rec:
            return rec.info.sensor_size
    from eventpipe.io import open_reader

    return open_reader(path).info.sensor_size
