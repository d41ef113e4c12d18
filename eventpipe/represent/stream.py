"""A recipe applied to a live stream: packets in, model counts of closed windows out.

:class:`StreamingInput` maps each packet's events with the recipe's geometry and bins
them with a :class:`~eventpipe.kernels.StreamingBinner` at model resolution (windows
close on event time, or on ``poll()`` after ``timeout_s`` of wall-clock silence);
``channels="halves"`` bins half windows of merged polarity and pairs them (each half with
the next one at a stride of half a window).  For any
split of a recording into packets, the counts it closes equal :func:`model_counts` of
the whole recording from its first event; :func:`normalise` turns them into the input
(``StreamingInput.scale`` is the count scale).
"""

from __future__ import annotations

import numpy as np

from eventpipe.kernels import DEFAULT_MAX_GAP_US, DEFAULT_TIME_TOLERANCE_US, StreamingBinner
from eventpipe.represent.apply import count_scale, spatial_map
from eventpipe.represent.recipe import InputRecipe


class StreamingInput:
    """Geometry + windowing of one stream (its own binner state).

    ``push(events)`` / ``poll()`` / ``flush()`` return ``(counts, ends)``: int16 counts
    ``(n, C, H, W)`` of the windows that closed and their end times (µs).  Counters:
    ``out_of_bounds`` (events the map dropped: outside the ROI or cropped away) and, of those,
    ``outside_sensor`` (at ``x >= W`` or ``y >= H`` of the sensor size: a wrong size).

    Bounded (see :class:`~eventpipe.kernels.StreamingBinner`): ``push`` returns at most
    ``max_frames`` windows and stops at an event-time discontinuity (a jump past
    ``max_gap_us``); while ``pending`` is True, ``more()`` returns the next ones.
    ``jumped`` says that event time jumped right after the windows just returned."""

    def __init__(self, recipe: InputRecipe, sensor_size, *, timeout_s: float | None = None,
                 time_tolerance_us: int = DEFAULT_TIME_TOLERANCE_US,
                 max_gap_us: int | None = DEFAULT_MAX_GAP_US, max_frames: int | None = None):
        self.recipe = recipe
        self.map = spatial_map(recipe, sensor_size)
        self.scale = count_scale(recipe, self.map)
        self.halves = recipe.channels == "halves"
        self.overlap = recipe.overlapping_halves  # window k = half windows k and k + 1
        # halves: bin half windows of merged polarity, no overlap, and pair them
        self.bin_stride = recipe.bin_us if self.halves else recipe.stride
        self.binner = StreamingBinner(self.map.out_size, recipe.bin_us,
                                      None if self.halves else recipe.stride,
                                      timeout_s=timeout_s, time_tolerance_us=time_tolerance_us,
                                      polarities=1 if self.halves else 2,
                                      clip=recipe.count_ceiling, max_gap_us=max_gap_us,
                                      max_frames=max_frames)
        self.window_us = int(recipe.window_us)
        self._half: tuple[int, np.ndarray] | None = None  # a first half awaiting its pair
        self._half_alone = True  # overlap: the held half has not been in a window yet
        self._pending = False  # events in the open window (a flush or poll has something to say)
        self.out_of_bounds = 0
        self.outside_sensor = 0
        self._tmax: int | None = None  # newest event time of the packet being binned
        self.jumped = False

    def push(self, events: np.ndarray) -> tuple[np.ndarray, list[int]]:
        mapped, n_out = self.map.apply(events)
        if n_out:  # counted apart only where the map dropped any: no cost per packet otherwise
            self.out_of_bounds += n_out
            w, h = self.map.input_size
            self.outside_sensor += int(np.count_nonzero((events["x"] >= w) | (events["y"] >= h)))
        self._tmax = int(mapped["t"].max()) if len(mapped) else None
        return self._binned(self.binner.push_bounded(mapped))

    @property
    def pending(self) -> bool:
        """The last packet has more windows: take them with :meth:`more`."""
        return self.binner.pending

    def more(self) -> tuple[np.ndarray, list[int]]:
        """The next windows of a packet that completed more than one call returns."""
        return self._binned(self.binner.resume())

    def _binned(self, frames: np.ndarray) -> tuple[np.ndarray, list[int]]:
        self.jumped = self.binner.discontinuity
        out = self._close(frames)
        if self.jumped and self._half is not None:  # never pair halves across a time jump
            more, more_ends = self._pad_half()
            out = (np.concatenate([out[0], more]) if out[1] else more), out[1] + more_ends
        if self.binner.pending:
            return out
        if self._tmax is not None:
            nw = self.binner.next_window
            self._pending = nw is not None and self._tmax >= nw[0]
        elif len(frames):
            self._pending = False
        return out

    def poll(self) -> tuple[np.ndarray, list[int]]:
        """Close the open window if the sensor has been silent past the timeout."""
        if not self._pending:  # nothing new since the last window: stay quiet
            return self._none()
        frames = self.binner.poll()
        if len(frames):
            self._pending = False
        return self._close(frames)

    def flush(self) -> tuple[np.ndarray, list[int]]:
        """Close the partial last window (and pad an unpaired half with silence)."""
        if not self.binner.started or not self._pending:
            self.binner.reset()
            return self._pad_half()
        end = self.binner.next_window[1]
        counts, ends = self._close(self.binner.flush(), first_end=end)
        more, more_ends = self._pad_half()
        if more_ends:
            counts = np.concatenate([counts, more]) if len(ends) else more
            ends = ends + more_ends
        return counts, ends

    # -- internals -----------------------------------------------------------------
    def _none(self) -> tuple[np.ndarray, list[int]]:
        W, H = self.map.out_size
        return np.zeros((0, 2, H, W), np.int16), []

    def _pad_half(self) -> tuple[np.ndarray, list[int]]:
        if self.overlap and not self._half_alone:  # it already closed a window as its second half
            self._half = None
        if self._half is None:
            return self._none()
        end, half = self._half
        self._half = None
        return np.concatenate([half, np.zeros_like(half)])[None], [end + self.window_us // 2]

    def _close(self, frames: np.ndarray, first_end: int | None = None):
        if len(frames) == 0:
            return self._none()
        n = len(frames)
        if first_end is None:
            last_end = self.binner.last_closed_end  # the binner's last closed window
            ends = [last_end - (n - 1 - i) * self.bin_stride for i in range(n)]
        else:
            ends = [first_end]
        if self.halves:
            return self._pair_halves(frames, ends)
        return frames, ends

    def _pair_halves(self, frames: np.ndarray, ends: list[int]):
        """Half-window counts ``(n, 1, H, W)`` -> window counts ``(m, 2, H, W)``."""
        halves = list(zip(ends, frames))
        if self.overlap:
            return self._pair_overlapping(halves)
        if self._half is not None:
            halves.insert(0, self._half)
            self._half = None
        if len(halves) % 2:
            e, f = halves.pop()
            self._half = (e, f.copy())
        if not halves:
            return self._none()
        pairs = np.stack([np.concatenate([halves[i][1], halves[i + 1][1]])
                          for i in range(0, len(halves), 2)])
        return pairs, [halves[i + 1][0] for i in range(0, len(halves), 2)]

    def _pair_overlapping(self, halves: list):
        """Overlapping halves: each new half closes the window (previous half, it)."""
        if self._half is not None:
            halves.insert(0, self._half)
        self._half = (halves[-1][0], halves[-1][1].copy())
        self._half_alone = len(halves) < 2
        if len(halves) < 2:
            return self._none()
        pairs = np.stack([np.concatenate([halves[i][1], halves[i + 1][1]])
                          for i in range(len(halves) - 1)])
        return pairs, [halves[i + 1][0] for i in range(len(halves) - 1)]
