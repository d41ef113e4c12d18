"""The one event contract used everywhere, and recording metadata.

Events are a structured numpy array with fields ``x``, ``y`` (uint16), ``t``
(int64 microseconds) and ``p`` (uint8, 1 = ON, 0 = OFF).  Sensor sizes are
``(W, H)``.  Most of tonic's transforms take these arrays as they are; ``to_tonic``
makes the copy in tonic's dataset dtype that all of them take (docs/io.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])

SensorSource = Literal["file", "caller", "table", "inferred"]


def empty_events(n: int = 0) -> np.ndarray:
    """An uninitialised (n=0: empty) event array."""
    return np.empty(int(n), dtype=EVENT_DTYPE)


def make_events(x, y, t, p) -> np.ndarray:
    """Pack four equally long sequences into an ``EVENT_DTYPE`` array.

    Values are converted with range checks: a coordinate outside uint16 or a
    polarity other than 0/1 raises ``ValueError`` instead of wrapping.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    t = np.asarray(t)
    p = np.asarray(p)
    n = x.shape[0] if x.ndim else 0
    for name, arr in (("y", y), ("t", t), ("p", p)):
        if arr.shape != x.shape:
            raise ValueError(f"make_events: field {name!r} has shape {arr.shape}, x has {x.shape}")
    if x.ndim != 1:
        raise ValueError(f"make_events: fields must be 1-D, got shape {x.shape}")
    for name, arr in (("x", x), ("y", y)):
        if n and arr.dtype != np.uint16 and (arr.min() < 0 or arr.max() > 0xFFFF):
            raise ValueError(f"make_events: field {name!r} out of uint16 range")
    if n and p.dtype == np.bool_:
        p = p.astype(np.uint8)
    elif n and (p.min() < 0 or p.max() > 1):
        raise ValueError("make_events: field 'p' must be 0 (OFF) or 1 (ON)")
    out = np.empty(n, dtype=EVENT_DTYPE)
    out["x"] = x
    out["y"] = y
    out["t"] = t
    out["p"] = p
    return out


def as_events(arr: Any) -> np.ndarray:
    """Return ``arr`` as an ``EVENT_DTYPE`` array.

    Accepts our dtype (returned as-is), any structured array with fields
    ``x, y, t, p`` (tonic's, with ``p`` as bool or int), converting with range
    checks.  Raises ``ValueError`` naming the missing field otherwise.
    """
    arr = np.asarray(arr)
    if arr.dtype == EVENT_DTYPE:
        return arr
    names = arr.dtype.names or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise ValueError(f"not an event array: missing field(s) {missing}, has {list(names)}")
    return make_events(arr["x"], arr["y"], arr["t"], arr["p"])


class SizeWarning(UserWarning):
    """A size that looks like a mistake (the call still does what it was told)."""


class SensorSizeWarning(SizeWarning):
    """Many events fall outside ``sensor_size`` and all would fit with W and H swapped."""


class InputSizeWarning(SizeWarning):
    """Frames of another size than the checkpoint's recipe go into the model."""


#: the dtype of tonic's own datasets (``tonic.datasets.NMNIST.dtype``): int64 x, y, t, p
TONIC_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])


def to_tonic(events) -> np.ndarray:
    """A copy of ``events`` in tonic's dataset dtype (int64 x, y, t, p; p 0/1).

    Most of ``tonic.transforms`` / ``tonic.functional`` take our arrays unchanged, but not
    all (docs/io.md): ``ToVoxelGrid`` writes ``p = -1`` (an error on uint8), and
    ``SpatialJitter`` / ``ToAveragedTimesurface`` do unsigned arithmetic on x, y that wraps.
    With this array every transform listed in docs/io.md gives tonic's own answer.  (Our
    kernels read tonic's arrays directly; :func:`as_events` converts back.)"""
    ev = as_events(events)
    out = np.empty(len(ev), TONIC_DTYPE)
    for f in "xytp":
        out[f] = ev[f]
    return out


def check_sensor_size(sensor_size) -> tuple[int, int]:
    """Validate a ``(W, H)`` pair and return it as ints."""
    try:
        w, h = (int(v) for v in sensor_size)
    except (TypeError, ValueError):
        raise ValueError(f"sensor_size must be (W, H), got {sensor_size!r}") from None
    if not (0 < w <= 0x10000 and 0 < h <= 0x10000):
        raise ValueError(f"sensor_size must be positive and <= 65536, got {(w, h)}")
    return w, h


@dataclasses.dataclass
class RecordingInfo:
    """What is known about a recording before (or without) reading all events.

    ``sensor_size_source`` says where ``sensor_size`` came from: ``"file"``
    (the header), ``"caller"`` (an argument), ``"table"`` (a camera/plugin
    table keyed by something in the header) or ``"inferred"`` (max coordinate
    + 1 over the events).  ``extras`` holds source-specific facts (camera
    serial, chip class, plugin name, header fields).
    """

    path: str
    format: str
    sensor_size: tuple[int, int] | None = None
    sensor_size_source: SensorSource | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sensor_size"] = list(self.sensor_size) if self.sensor_size else None
        return d


def _back_in_time(t: np.ndarray, before_max: int | None) -> int:
    """How many of ``t`` are below the largest time before them (``before_max``: the largest
    of earlier chunks, None for the first)."""
    before = np.empty_like(t)  # the largest time before each event
    before[0] = t[0] if before_max is None else before_max
    before[1:] = t[:-1]
    return int(np.count_nonzero(t < np.maximum.accumulate(before)))


@dataclasses.dataclass
class EventStats:
    """Summary of an event array or stream, as ``eventpipe info`` prints it."""

    events: int = 0
    t_first: int | None = None
    t_last: int | None = None
    t_min: int | None = None
    t_max: int | None = None
    on_events: int = 0
    x_max: int = -1
    y_max: int = -1
    #: events earlier than an event before them (time going backwards; 0 for sorted input)
    back_in_time: int = 0

    def update(self, ev: np.ndarray) -> None:
        if len(ev) == 0:
            return
        t = ev["t"]
        self.back_in_time += _back_in_time(t, self.t_max)
        if self.t_first is None:
            self.t_first = int(t[0])
            self.t_min = int(t.min())
            self.t_max = int(t.max())
        else:
            self.t_min = min(self.t_min, int(t.min()))
            self.t_max = max(self.t_max, int(t.max()))
        self.t_last = int(t[-1])
        self.events += len(ev)
        self.on_events += int(np.count_nonzero(ev["p"]))
        self.x_max = max(self.x_max, int(ev["x"].max()))
        self.y_max = max(self.y_max, int(ev["y"].max()))

    @property
    def duration_us(self) -> int:
        if self.t_first is None:
            return 0
        return int(self.t_max - self.t_min)

    @property
    def rate_hz(self) -> float:
        d = self.duration_us
        return self.events / (d * 1e-6) if d > 0 else 0.0

    @property
    def on_fraction(self) -> float:
        return self.on_events / self.events if self.events else 0.0

    @property
    def inferred_size(self) -> tuple[int, int] | None:
        if self.events == 0:
            return None
        return (self.x_max + 1, self.y_max + 1)
