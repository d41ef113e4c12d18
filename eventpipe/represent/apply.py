"""Applying a recipe: events or sensor counts -> model counts -> model input.

Three steps, each a plain function over arrays:

1. geometry, :func:`spatial_map`: the recipe's :class:`~eventpipe.kernels.SpatialMap`
   for a sensor (ROI, flips, one integer pooling factor ``f``, pad/crop placement);
2. counting, :func:`model_counts`: events (mapped, then binned in the recipe's windows)
   or per-polarity sensor counts (mapped as frames: cropped, flipped, sum-pooled,
   placed) -> ``(..., n, C, H, W)`` counts saturated at ``clip_count``.  Both routes
   give the same counts: pooling commutes with binning, and saturating each sensor
   pixel at ``c`` (or above) before the pooled sum is saturated at ``c`` changes
   nothing (``min(min(a, c) + b, c) == min(a + b, c)`` for ``b >= 0``);
3. normalisation, :func:`normalise`: counts -> float32 tensor (``pooling="mean"``
   divides by ``f**2`` first), the only place the input's numbers are made.

:func:`apply` chains them.  The runtime does 1 and 2 incrementally
(:class:`eventpipe.represent.stream.StreamingInput`) and then calls :func:`normalise`.
"""

from __future__ import annotations

import numpy as np
import torch

from eventpipe.events import as_events
from eventpipe.kernels import SpatialMap, to_frames
from eventpipe.represent.recipe import InputRecipe, RecipeError, normalisation_clip, normalisation_qbits


def spatial_map(recipe: InputRecipe, sensor_size) -> SpatialMap:
    """The sensor -> model map of ``recipe`` for a sensor of ``sensor_size`` (W, H)."""
    if recipe.size is None:
        raise RecipeError("size", "the model input size is not known (set [input] size)")
    try:
        return SpatialMap(input_size=tuple(int(v) for v in sensor_size[:2]),
                          output_size=recipe.size, policy=recipe.policy, roi=recipe.roi,
                          flip_x=recipe.flip_x, flip_y=recipe.flip_y)
    except ValueError as e:
        raise RecipeError("roi", str(e)) from None


def count_scale(recipe: InputRecipe, smap: SpatialMap) -> float:
    """What counts are multiplied by before the normalisation: ``1 / f**2`` for
    ``pooling="mean"``, else 1."""
    return 1.0 / smap.pool_factor ** 2 if recipe.pooling == "mean" else 1.0


def counts_dtype(recipe: InputRecipe) -> np.dtype:
    """The smallest integer type holding the recipe's counts (uint8 up to 255, else int16)."""
    return np.dtype(np.uint8 if recipe.count_ceiling <= 255 else np.int16)


def map_frames(smap: SpatialMap, frames: np.ndarray) -> np.ndarray:
    """Sensor-resolution counts ``(..., Hs, Ws)`` -> model-resolution counts ``(..., H, W)``
    (int32, unsaturated), exactly what binning the :meth:`SpatialMap.apply`-mapped events
    gives: ROI crop, flips, sum pooling by ``f``, placement at the centring offset."""
    W_s, H_s = smap.input_size
    if frames.shape[-2:] != (H_s, W_s):
        raise ValueError(f"counts of {frames.shape[-1]}x{frames.shape[-2]} (W x H) for a "
                         f"{W_s}x{H_s} sensor")
    x0, y0, w, h = smap.roi_box
    fr = frames[..., y0:y0 + h, x0:x0 + w].astype(np.int32)
    if smap.flip_x:
        fr = fr[..., :, ::-1]
    if smap.flip_y:
        fr = fr[..., ::-1, :]
    f = smap.pool_factor
    ph, pw = -(-h // f), -(-w // f)
    if (ph * f, pw * f) != (h, w):
        pad = [(0, 0)] * (fr.ndim - 2) + [(0, ph * f - h), (0, pw * f - w)]
        fr = np.pad(fr, pad)
    pooled = fr.reshape(fr.shape[:-2] + (ph, f, pw, f)).sum(axis=(-3, -1))
    W, H = smap.out_size
    ox, oy = smap.offset
    out = np.zeros(fr.shape[:-2] + (H, W), np.int32)
    ya, yb = max(0, oy), min(H, ph + oy)
    xa, xb = max(0, ox), min(W, pw + ox)
    if ya < yb and xa < xb:
        out[..., ya:yb, xa:xb] = pooled[..., ya - oy:yb - oy, xa - ox:xb - ox]
    return out


def _is_events(data) -> bool:
    return isinstance(data, np.ndarray) and data.dtype.names is not None


def _windows(recipe: InputRecipe, ev: np.ndarray, t0, n_windows) -> tuple[int, int]:
    if t0 is None:
        t0 = int(ev["t"][0]) if len(ev) else 0
    if n_windows is None:
        span = (int(ev["t"].max()) + 1 - int(t0)) if len(ev) else 0
        n_windows = max(0, (span - recipe.window_us) // recipe.stride + 1)
    return int(t0), int(n_windows)


def _bin(recipe: InputRecipe, ev: np.ndarray, size, t0: int, n: int, merged: bool) -> np.ndarray:
    """Counts ``(n * b, P, H, W)`` of the recipe's slices of ``ev`` (b half windows per
    window for ``halves``, else the windows at the recipe's stride), saturated."""
    W, H = size
    b = recipe.bins_per_window
    P = 1 if merged else 2
    out = np.zeros((recipe.slices(n), P, H, W), counts_dtype(recipe))
    if n == 0 or len(ev) == 0:
        return out
    # threads=1: the callers bin many clips (training loaders, one window at a time live) and
    # take their parallelism from running several; to_frames' default would add a helper thread
    if b == 2:
        fr = to_frames(ev, (W, H), time_window=recipe.bin_us, start_time=t0,
                       end_time=t0 + recipe.slices(n) * recipe.bin_us, polarities=P,
                       clip=recipe.count_ceiling, dtype=np.int16, threads=1)
    else:
        fr = to_frames(ev, (W, H), time_window=recipe.window_us,
                       overlap=recipe.window_us - recipe.stride, start_time=t0,
                       end_time=t0 + (n - 1) * recipe.stride + recipe.window_us, polarities=P,
                       clip=recipe.count_ceiling, dtype=np.int16, threads=1)
    out[:] = fr
    return out


def sensor_counts(recipe: InputRecipe, events, sensor_size, *, t0: int | None = None,
                  n_windows: int | None = None) -> np.ndarray:
    """Per-polarity counts at sensor resolution ``(recipe.slices(n), 2, Hs, Ws)`` of the
    recipe's slices (what :func:`model_counts` accepts as counts; e.g. a training cache),
    saturated at ``clip_count``.  Windows as in :func:`model_counts`."""
    ev = as_events(events)
    t0, n = _windows(recipe, ev, t0, n_windows)
    size = tuple(int(v) for v in sensor_size[:2])
    return _bin(recipe, ev, size, t0, n, merged=False)


def model_counts(recipe: InputRecipe, data, sensor_size, *, t0: int | None = None,
                 n_windows: int | None = None) -> np.ndarray:
    """Model-resolution counts ``(..., n, C, H, W)`` (:func:`counts_dtype`) of ``data``:

    * events (a structured array with x, y, t, p): windows ``[t0 + k*stride,
      t0 + k*stride + window_us)``, ``k < n_windows`` (``t0`` defaults to the first
      event's time, ``n_windows`` to the complete windows the events span);
    * per-polarity counts at sensor resolution ``(..., s, 2, Hs, Ws)`` of ``s`` consecutive
      slices (:meth:`InputRecipe.slices`: ``n`` windows, ``2n`` half windows for ``halves``,
      ``n + 1`` at a half-window stride; :func:`sensor_counts`; each pixel saturated at
      ``clip_count`` or above); leading axes are a batch."""
    smap = spatial_map(recipe, sensor_size)
    W, H = smap.out_size
    ceiling = recipe.count_ceiling
    b = recipe.bins_per_window
    if _is_events(data):
        ev = as_events(data)
        t0, n = _windows(recipe, ev, t0, n_windows)
        fr = _bin(recipe, smap.apply(ev).events, (W, H), t0, n, merged=b == 2)
        if recipe.overlapping_halves:
            fr = _pair_overlapping(fr[:, 0])
        return fr.reshape(n, 2, H, W)
    counts = np.asarray(data)
    if counts.ndim < 4 or counts.shape[-3] != 2:
        raise ValueError(f"expected per-polarity counts (..., bins, 2, H, W), got shape {counts.shape}")
    nb = counts.shape[-4]
    if recipe.overlapping_halves:
        merged = counts.astype(np.int32).sum(-3)                    # (..., nb, Hs, Ws)
        mc = _pair_overlapping(map_frames(smap, merged).reshape(counts.shape[:-4] + (nb, H, W)))
        return np.minimum(mc, ceiling).astype(counts_dtype(recipe))
    if nb % b:
        raise ValueError(f"channels='halves' needs an even number of half-window bins, got {nb}")
    if b == 2:
        merged = counts.astype(np.int32).sum(-3)                    # (..., nb, Hs, Ws)
        mc = map_frames(smap, merged).reshape(counts.shape[:-4] + (nb // 2, 2, H, W))
    else:
        mc = map_frames(smap, counts)
    return np.minimum(mc, ceiling).astype(counts_dtype(recipe))


def _pair_overlapping(halves: np.ndarray) -> np.ndarray:
    """Half-window counts ``(..., n + 1, H, W)`` -> windows ``(..., n, 2, H, W)``: window
    ``k`` = (half ``k``, half ``k + 1``) (``halves`` at a stride of half a window)."""
    if halves.shape[-3] < 2:
        return np.zeros(halves.shape[:-3] + (0, 2) + halves.shape[-2:], halves.dtype)
    return np.stack([halves[..., :-1, :, :], halves[..., 1:, :, :]], axis=-3)


def normalise(recipe: InputRecipe, counts, scale: float = 1.0) -> torch.Tensor:
    """Model counts (any shape; NumPy or torch, integer or float) -> float32 tensor:
    ``counts * scale`` (``scale`` from :func:`count_scale`) then the recipe's
    normalisation.  ``binary`` is 1 where the model pixel counted at least one event
    (``> 0``: independent of ``scale``)."""
    if isinstance(counts, torch.Tensor):
        x = counts.to(torch.float32)
        if x.data_ptr() == counts.data_ptr():
            x = x.clone()
    else:
        x = torch.from_numpy(np.ascontiguousarray(counts)).to(torch.float32)
    if scale != 1.0:
        x.mul_(scale)
    norm = recipe.normalisation
    if norm == "counts":
        return x
    if norm == "binary":
        return (x > 0).to(torch.float32)
    if norm == "log1p":
        return torch.log1p(x)
    q = normalisation_qbits(norm)
    if q is not None:  # the chip's input table (snn.backends.chip.quantise.qlog1p_codes) times 2^-q
        return torch.round(torch.log1p(x) * float(2 ** q)) / float(2 ** q)
    return x.clamp_(max=normalisation_clip(norm))


def apply(recipe: InputRecipe, data, sensor_size, *, t0: int | None = None,
          n_windows: int | None = None) -> torch.Tensor:
    """Events or sensor counts -> the model input ``(..., n, C, H, W)`` float32: the one
    function training and the runtime share (see :func:`model_counts` for ``data``)."""
    counts = model_counts(recipe, data, sensor_size, t0=t0, n_windows=n_windows)
    return normalise(recipe, counts, count_scale(recipe, spatial_map(recipe, sensor_size)))
