"""Per-stream preprocessing: filters -> the model's input recipe -> closed frames.

Each stream owns one :class:`StreamPrep` (its filters' state, its
:class:`~eventpipe.represent.StreamingInput`) so streams never share windows.
Frames leave as float32 ``[C, H, W]`` tensors made by :mod:`eventpipe.represent`
exactly as training made them.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import torch

from eventpipe.kernels import StreamingDenoise, StreamingRefractory, select_polarity
from eventpipe.represent import InputRecipe, StreamingInput, normalise


@dataclasses.dataclass
class ClosedFrame:
    stream: int
    seq: int
    t_us: int              # event time at the end of the window
    t_arrival: float       # monotonic time the window's newest packet arrived
    truth: object
    frame: torch.Tensor    # [P, H, W]
    after_gap: bool = False  # first frame after an event-time discontinuity


class StreamPrep:
    """Filters and the recipe's geometry and windowing for one stream."""

    def __init__(self, stream: int, sensor_size, *, recipe: InputRecipe, timeout_s=None,
                 time_tolerance_us=1000, refractory_us=0, denoise_us=0, polarity=None,
                 max_gap_us=1_000_000, max_frames=None):
        self.stream = stream
        self.recipe = recipe
        self.input = StreamingInput(recipe, sensor_size, timeout_s=timeout_s,
                                    time_tolerance_us=time_tolerance_us, max_gap_us=max_gap_us,
                                    max_frames=max_frames)
        self.map = self.input.map
        self.window_us = int(recipe.window_us)
        self.polarity = polarity
        self.filters = []  # stateful per stream: memories persist across packets
        if refractory_us:
            self.filters.append(StreamingRefractory(sensor_size, refractory_us))
        if denoise_us:
            self.filters.append(StreamingDenoise(sensor_size, denoise_us))
        self.seq = 0
        self.removed = 0
        self._packets: collections.deque = collections.deque()  # (t_first, t_arrival, truth)
        self.last_wall = None
        self._after_gap = False  # the next frame follows an event-time discontinuity

    @property
    def out_of_bounds(self) -> int:
        return self.input.out_of_bounds

    @property
    def outside_sensor(self) -> int:
        return self.input.outside_sensor

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
        return self._jumped(self._emit(*self.input.push(events)))

    @property
    def pending(self) -> bool:
        """The last packet has more frames: take them with :meth:`more` (bounded calls)."""
        return self.input.pending

    def more(self) -> list[ClosedFrame]:
        """The next frames of a packet that completed more than one call returns."""
        return self._jumped(self._emit(*self.input.more()))

    @property
    def binner(self):
        return self.input.binner

    def _jumped(self, frames: list[ClosedFrame]) -> list[ClosedFrame]:
        if self.input.jumped:  # event time jumps after these frames
            self._after_gap = True
        return frames

    def poll(self) -> list[ClosedFrame]:
        """Close the open window if the sensor has been silent past the timeout."""
        return self._emit(*self.input.poll())

    def flush(self) -> list[ClosedFrame]:
        return self._emit(*self.input.flush())

    def _emit(self, frames: np.ndarray, ends: list[int]) -> list[ClosedFrame]:
        if len(ends) == 0:
            return []
        tensor = normalise(self.recipe, frames, self.input.scale)
        out = []
        for i, end in enumerate(ends):
            t_arr, truth = self._lookup(end)
            out.append(ClosedFrame(self.stream, self.seq, end, t_arr, truth, tensor[i],
                                   after_gap=self._after_gap))
            self._after_gap = False
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
