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


@dataclasses.dataclass(frozen=True)
class InputRecipe:
    """How frames are made for the model - read from the checkpoint so that the
    runtime feeds exactly what training fed.

    ``channels``: ``polarity`` (OFF, ON counts of the window) or ``halves`` (ON+OFF
    counts of the first and second half of the window); ``count_scale``: counts are
    multiplied by it (``1 / f**2`` for training's area resize after sum pooling by
    ``f``); ``clip``: counts saturate there; ``frame_norm``: counts -> input.
    """

    window_us: int
    stride_us: int | None = None       # None: window_us (non-overlapping windows)
    channels: str = "polarity"
    frame_norm: str = "counts"
    area: bool = False
    clip: int | None = None

    def __post_init__(self):
        if self.channels not in ("polarity", "halves"):
            raise ValueError(f"unknown input channels {self.channels!r} (polarity, halves)")
        if self.channels == "halves" and self.window_us % 2:
            raise ValueError("channels='halves' needs an even window_us")


def normalise(frames: np.ndarray, frame_norm: str, scale: float = 1.0) -> torch.Tensor:
    """Counts ``(n, P, H, W)`` -> float32 tensor per ``frame_norm`` (after ``* scale``)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32)
    if scale != 1.0:
        x.mul_(scale)
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
    after_gap: bool = False  # first frame after an event-time discontinuity


class StreamPrep:
    """Filters, spatial mapping and windowing for one stream."""

    def __init__(self, stream: int, sensor_size, *, out_size, recipe: InputRecipe, stride_us=None,
                 policy="pad", roi=None, flip_x=False, flip_y=False, timeout_s=None,
                 time_tolerance_us=1000, refractory_us=0, denoise_us=0, polarity=None,
                 max_gap_us=1_000_000, max_frames=None):
        self.stream = stream
        self.recipe = recipe
        self.map = SpatialMap(input_size=tuple(sensor_size), output_size=tuple(out_size),
                              policy=policy, roi=roi, flip_x=flip_x, flip_y=flip_y)
        halves = recipe.channels == "halves"
        if halves and stride_us not in (None, recipe.window_us):
            raise ValueError("channels='halves' models need stride_us == window_us")
        # halves: bin half windows, merged polarity, and pair them into one frame
        bin_window = recipe.window_us // 2 if halves else recipe.window_us
        self.binner = StreamingBinner(tuple(out_size), bin_window, None if halves else stride_us,
                                      timeout_s=timeout_s, time_tolerance_us=time_tolerance_us,
                                      polarities=1 if halves else 2, clip=recipe.clip,
                                      max_gap_us=max_gap_us, max_frames=max_frames)
        self.window_us = int(recipe.window_us)
        self.bin_stride = int(bin_window if halves else (stride_us or bin_window))
        self.scale = 1.0 / self.map.pool_factor ** 2 if recipe.area else 1.0
        self._half: tuple[int, np.ndarray] | None = None  # first half awaiting its pair
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
        self._tmax: int | None = None  # newest event time of the packet being binned
        self._after_gap = False  # the next frame follows a discontinuity

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
        self._tmax = int(mapped["t"].max()) if len(mapped) else None
        return self._binned(self.binner.push_bounded(mapped))

    @property
    def pending(self) -> bool:
        """The last packet has more frames: take them with :meth:`more` (bounded calls)."""
        return self.binner.pending

    def more(self) -> list[ClosedFrame]:
        """The next frames of a packet that completed more than one call returns."""
        return self._binned(self.binner.resume())

    def _binned(self, frames: np.ndarray) -> list[ClosedFrame]:
        out = self._close(frames)
        if self.binner.discontinuity:
            self._after_gap = True
        if self.binner.pending:
            return out
        if self._tmax is not None:
            nw = self.binner.next_window
            self._pending = nw is not None and self._tmax >= nw[0]
        elif len(frames):
            self._pending = False
        return out

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
            if self._half is not None:  # a first half with no second: pad with silence
                end, half = self._half
                self._half = None
                return self._emit(np.concatenate([half, np.zeros_like(half)])[None],
                                  [end + self.window_us // 2])
            return []
        end = self.binner.next_window[1]
        frames = self.binner.flush()
        out = self._close(frames, first_end=end)
        if self._half is not None:
            end, half = self._half
            self._half = None
            out += self._emit(np.concatenate([half, np.zeros_like(half)])[None],
                              [end + self.window_us // 2])
        return out

    def _close(self, frames: np.ndarray, first_end: int | None = None) -> list[ClosedFrame]:
        if len(frames) == 0:
            return []
        n = len(frames)
        if first_end is None:
            last_end = self.binner.last_closed_end  # the binner's last closed window
            ends = [last_end - (n - 1 - i) * self.bin_stride for i in range(n)]
        else:
            ends = [first_end]
        if self.recipe.channels == "halves":
            frames, ends = self._pair_halves(frames, ends)
        return self._emit(frames, ends)

    def _pair_halves(self, frames: np.ndarray, ends: list[int]):
        """Half-window frames ``(n, 1, H, W)`` -> full frames ``(m, 2, H, W)``."""
        halves = [(e, f) for e, f in zip(ends, frames)]
        if self._half is not None:
            halves.insert(0, self._half)
            self._half = None
        if len(halves) % 2:
            e, f = halves.pop()
            self._half = (e, f.copy())
        if not halves:
            return frames[:0, :0], []
        pairs = np.stack([np.concatenate([halves[i][1], halves[i + 1][1]])
                          for i in range(0, len(halves), 2)])
        return pairs, [halves[i + 1][0] for i in range(0, len(halves), 2)]

    def _emit(self, frames: np.ndarray, ends: list[int]) -> list[ClosedFrame]:
        if len(ends) == 0:
            return []
        tensor = normalise(frames, self.recipe.frame_norm, self.scale)
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
