"""Binning kernels, event filters and a streaming windower (Numba, ``cache=True``).

Input is always an ``EVENT_DTYPE`` array (or any structured array with x, y,
t, p, converted without mutating it); sensor sizes are ``(W, H)``.  Outputs are
C-contiguous NumPy arrays, so ``torch.from_numpy`` hands them over without a copy.

Frames and representations
    ``to_frames(events, sensor_size, time_window=|event_count=|n_time_bins=|n_event_bins=,
    overlap=0, include_incomplete=False, start_time=None, end_time=None, *, polarities=2,
    dtype=int16, binary=False, clip=None, out=None, pool=None, threads=None,
    time_tolerance_us=1000, return_stats=False)`` -> ``(T, P, H, W)`` counts (tonic
    ``to_frame_numpy`` semantics with documented fixes); ``to_frames_numpy`` NumPy
    reference; ``time_windows`` the window edges used.  ``OutputPool(max_bytes)``:
    opt-in, bounded recycling of released outputs' memory (``to_frames(..., pool=)``).
    ``to_voxel_grid(events, sensor_size, n_time_bins)`` -> ``(T, 1, H, W)`` (tonic
    ``ToVoxelGrid``); ``to_voxel_grid_numpy`` reference.
    ``to_timesurface(events, sensor_size, dt, tau)`` -> ``(T, P, H, W)`` (tonic
    ``ToTimesurface``); ``to_timesurface_numpy`` reference.
    ``BinStats``: counts of events binned / out of bounds / clamped / dropped.

Streaming
    ``StreamingBinner(sensor_size, window_us, stride_us=None, ...)`` with
    ``push(packet)`` -> completed frames ``(n, P, H, W)``, ``flush()``, ``poll()``
    (wall-clock timeout), ``advance_to(t)``; bounded: ``push_bounded`` /
    ``iter_push`` / ``resume`` (time jumps past ``max_gap_us``, default
    ``DEFAULT_MAX_GAP_US``, are discontinuities); ``stream_frames(packets, ...)``.

Spatial
    ``SpatialMap`` (ROI, flips, pooling, pad/crop resize policy; ``from_config``),
    ``crop``, ``flip_x``, ``flip_y``, ``pool_events``, ``pool_frames``.

Filters (each returns ``FilterResult``: ``events, n_removed = f(...)``)
    ``refractory_period``, ``denoise``, ``suppress_hot_pixels``, ``select_polarity``;
    ``FilterResult`` also carries ``info`` (e.g. the hot pixels found).
    ``StreamingRefractory`` / ``StreamingDenoise``: the same filters over packets,
    with their per-pixel memory kept between packets.

Policies (``DEFAULT_TIME_TOLERANCE_US``): backwards timestamps within the
tolerance are clamped to the running maximum, beyond it dropped; both counted.
See docs/kernels.md.
"""

from eventpipe.kernels._common import DEFAULT_TIME_TOLERANCE_US, BinStats
from eventpipe.kernels.filters import (
    FilterResult,
    StreamingDenoise,
    StreamingRefractory,
    denoise,
    refractory_period,
    select_polarity,
    suppress_hot_pixels,
)
from eventpipe.kernels.frames import time_windows, to_frames, to_frames_numpy
from eventpipe.kernels.outpool import OutputPool
from eventpipe.kernels.spatial import (
    SpatialMap,
    crop,
    flip_x,
    flip_y,
    pool_events,
    pool_frames,
)
from eventpipe.kernels.streaming import DEFAULT_MAX_GAP_US, StreamingBinner, stream_frames
from eventpipe.kernels.timesurface import to_timesurface, to_timesurface_numpy
from eventpipe.kernels.voxel import to_voxel_grid, to_voxel_grid_numpy

__all__ = [
    "OutputPool",
    "DEFAULT_MAX_GAP_US",
    "DEFAULT_TIME_TOLERANCE_US",
    "BinStats",
    "FilterResult",
    "SpatialMap",
    "StreamingBinner",
    "StreamingDenoise",
    "StreamingRefractory",
    "crop",
    "denoise",
    "flip_x",
    "flip_y",
    "pool_events",
    "pool_frames",
    "refractory_period",
    "select_polarity",
    "stream_frames",
    "suppress_hot_pixels",
    "time_windows",
    "to_frames",
    "to_frames_numpy",
    "to_timesurface",
    "to_timesurface_numpy",
    "to_voxel_grid",
    "to_voxel_grid_numpy",
]
