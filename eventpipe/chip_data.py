"""Integer count frames from the synthetic set, for compiling and checking the chip backend.

The chip reads what the runtime bins before any float normalisation: counts of the model-size
frame (sum-pooled from the sensor, clipped).  Clips follow the training set (``make_clip`` seeds of
the ``test`` split, centred T windows); streams go through the runtime's own ``StreamPrep``.
"""

from __future__ import annotations

import numpy as np

from eventpipe.synthetic import CLASS_NAMES, clip_seed, make_clip
from eventpipe.training.frames import bin_clip, center_start


def count_clips(n: int, *, seed: int = 0, split: str = "test", sensor_size=(128, 128), input_size=(64, 64),
                T: int = 8, window_us: int = 100_000, clip: int = 255, progress: bool = False) -> np.ndarray:
    """``n`` clips (class ``i % 12``) as integer counts ``[n, T, 2, H, W]`` at ``input_size`` (W, H)."""
    W, H = int(input_size[0]), int(input_size[1])
    f = int(sensor_size[0]) // W
    if f * W != int(sensor_size[0]) or f * H != int(sensor_size[1]):
        raise ValueError(f"sensor {sensor_size} is not an integer multiple of the input {input_size}")
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synthetic clips", dynamic_ncols=True)
    out = np.zeros((n, T, 2, H, W), np.int32)
    for i in it:
        ev = make_clip(CLASS_NAMES[i % len(CLASS_NAMES)], clip_seed(seed, split, i), sensor_size=tuple(sensor_size))
        nw = 1_000_000 // window_us
        fr = bin_clip(ev, sensor_size, 0, nw, window_us, 255).astype(np.int32)  # (nw, 2, Hs, Ws)
        s = center_start(nw, T)
        fr = fr[s:s + T]
        pooled = fr.reshape(fr.shape[0], 2, H, f, W, f).sum((3, 5))
        out[i, :len(pooled)] = np.minimum(pooled, clip)
    return out


def count_stream(seed: int, *, seconds: float = 6.0, sensor_size=(128, 128), input_size=(64, 64),
                 window_us: int = 100_000, stride_us: int = 50_000, clip: int = 255):
    """The runtime's count frames ``[N, 2, H, W]`` (and truth per frame) of one synthetic stream."""
    from eventpipe.training.config import DataConfig
    from eventpipe.training.stream_data import render_stream

    d = DataConfig(dataset="synthetic_stream", stream_seconds=float(seconds), window_us=int(window_us),
                   stride_us=int(stride_us), input_size=tuple(input_size)[::-1], sensor_size=tuple(sensor_size),
                   clip_count=int(clip))
    r = render_stream(int(seed), d)
    return r["frames"].astype(np.int32), r["truth"]
