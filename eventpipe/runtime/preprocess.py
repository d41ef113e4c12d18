"""Per-stream preprocessing: filters -> sensor-to-input mapping -> windowed frames.

Each stream owns one :class:`StreamPrep` (its binner, its filters' state) so
streams never share windows.  Frames leave as float32 ``[P, H, W]`` tensors
normalised the way the model was trained (``frame_norm``).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import torch

from eventpipe.kernels import (
    SpatialMap,
    StreamingBinner,
    StreamingDenoise,
    StreamingRefractory,
    select_polarity,
)


def normalise(frames: np.ndarray, frame_norm: str) -> torch.Tensor:
    """Counts ``(n, P, H, W)`` -> float32 tensor per ``frame_norm``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32)
    if frame_norm in ("counts", "none"):
        return x
    if frame_norm == "binary":
        return (x > 0).to(torch.float32)
    if frame_norm == "log1p":
        return torch.log1p(x)
    if frame_norm.startswith("clip:"):
        return x.clamp_(max=float(frame_norm[5:]))
    raise ValueError(f"unknown frame_norm {frame_norm!r} (counts, binary, clip:N, log1p)")


@dataclasses.dataclass
class ClosedFrame:
    stream: int
    seq: int
    t_us: int              # event time at the end of the window
    t_arrival: float       # monotonic time the window's newest packet arrived
    truth: object
    frame: torch.Tensor    # [P, H, W]


class StreamPrep:
    """Filters, spatial mapping and windowing for one stream."""

    def __init__(self, stream: int, sensor_size, *, out_size, window_us: int, stride_us=None,
                 policy="pad", roi=None, flip_x=False, flip_y=False, frame_norm="counts",
                 timeout_s=None, time_tolerance_us=1000, refractory_us=0, denoise_us=0,
                 polarity=None):
        self.stream = stream
        self.map = SpatialMap(input_size=tuple(sensor_size), output_size=tuple(out_size),
                              policy=policy, roi=roi, flip_x=flip_x, flip_y=flip_y)
        self.binner = StreamingBinner(tuple(out_size), window_us, stride_us, timeout_s=timeout_s,
                                      time_tolerance_us=time_tolerance_us, polarities=2)
        self.window_us = int(window_us)
        self.stride_us = int(stride_us or window_us)
        self.frame_norm = frame_norm
        self.polarity = polarity
        self.filters = []  # stateful per stream: memories persist across packets
        if refractory_us:
            self.filters.append(StreamingRefractory(sensor_size, refractory_us))
        if denoise_us:
            self.filters.append(StreamingDenoise(sensor_size, denoise_us))
        self.seq = 0
        self.removed = 0
        self.out_of_bounds = 0
        self._packets: collections.deque = collections.deque()  # (t_first, t_arrival, truth)
        self.last_wall = None
        self._pending = False  # events in the open window (a flush has something to say)

    def push(self, events: np.ndarray, t_arrival: float, truth=None) -> list[ClosedFrame]:
        self.last_wall = t_arrival
        if len(events):
            self._packets.append((int(events["t"][0]), t_arrival, truth))
        if self.polarity is not None and len(events):
            events, n = select_polarity(events, self.polarity)
            self.removed += n
        for f in self.filters:
            if len(events):
                events, n = f(events)
                self.removed += n
        mapped, n_out = self.map.apply(events)
        self.out_of_bounds += n_out
        frames = self.binner.push(mapped)
        if len(mapped):
            nw = self.binner.next_window
            self._pending = nw is not None and int(mapped["t"].max()) >= nw[0]
        elif len(frames):
            self._pending = False
        return self._close(frames)

    def poll(self) -> list[ClosedFrame]:
        """Close the open window if the sensor has been silent past the timeout."""
        if not self._pending:  # nothing new since the last window: stay quiet
            return []
        frames = self.binner.poll()
        if len(frames):
            self._pending = False
        return self._close(frames)

    def flush(self) -> list[ClosedFrame]:
        if not self.binner.started or not self._pending:
            self.binner.reset()
            return []
        end = self.binner.next_window[1]
        frames = self.binner.flush()
        return self._close(frames, first_end=end)

    def _close(self, frames: np.ndarray, first_end: int | None = None) -> list[ClosedFrame]:
        if len(frames) == 0:
            return []
        nxt = self.binner.next_window
        n = len(frames)
        if first_end is None:
            # the binner has advanced past these n windows: the last ended one stride before
            # the open window's end
            last_end = nxt[1] - self.stride_us
            ends = [last_end - (n - 1 - i) * self.stride_us for i in range(n)]
        else:
            ends = [first_end]
        tensor = normalise(frames, self.frame_norm)
        out = []
        for i, end in enumerate(ends):
            t_arr, truth = self._lookup(end)
            out.append(ClosedFrame(self.stream, self.seq, end, t_arr, truth, tensor[i]))
            self.seq += 1
        return out

    def _lookup(self, t_end: int):
        """Arrival time and truth of the newest packet that started before ``t_end``."""
        q = self._packets
        while len(q) > 1 and q[1][0] < t_end:
            q.popleft()
        if not q:
            return self.last_wall, None
        return q[0][1], q[0][2]
