"""The events of a take by time: recordings (``.h5``) through their time index, any other
format :mod:`eventpipe.io` reads loaded once and sliced."""

from __future__ import annotations

from pathlib import Path

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
