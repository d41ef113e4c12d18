"""Integer count frames from the synthetic set, for compiling and checking the chip backend.

The chip reads what the runtime bins before any float normalisation: counts of the model-size
frame (:func:`eventpipe.represent.model_counts`, sum-pooled from the sensor, clipped).  Clips follow
the training set (``make_clip`` seeds of a split, centred T windows); streams go through the
runtime's own windowing (:class:`eventpipe.represent.StreamingInput`).
"""

from __future__ import annotations

import numpy as np

from eventpipe.represent import InputRecipe, StreamingInput, model_counts
from eventpipe.synthetic import CLASS_NAMES, SyntheticStream, clip_seed, make_clip


def checkpoint_channels(meta: dict) -> str:
    """The input channels a checkpoint was trained on (its recipe's ``channels``: ``polarity`` or
    ``halves``), so that counts made for it here are what the runtime feeds it."""
    return str((meta.get("recipe") or {}).get("channels") or "polarity")


def counts_recipe(input_size=(64, 64), window_us: int = 100_000, stride_us: int | None = None,
                  clip: int = 255, channels: str = "polarity") -> InputRecipe:
    """Mean pooling (the count scale lives in the program), counts out, ``clip`` saturation;
    ``channels`` as the checkpoint's recipe (``polarity`` or ``halves``)."""
    return InputRecipe(size=tuple(input_size), window_us=int(window_us), stride_us=stride_us, clip_count=int(clip),
                       pooling="mean", normalisation="counts", channels=channels)


def count_clips(n: int, *, seed: int = 0, split: str = "test", sensor_size=(128, 128), input_size=(64, 64),
                T: int = 8, window_us: int = 100_000, clip: int = 255, duration_us: int = 1_000_000,
                progress: bool = False, channels: str = "polarity", start: int = 0) -> np.ndarray:
    """Clips ``start .. start + n - 1`` (clip ``i`` of class ``i % 12``, seeded by ``seed``, ``split``
    and ``i``) as integer counts ``[n, T, 2, H, W]`` at ``input_size`` (W, H)."""
    recipe = counts_recipe(input_size, window_us, None, clip, channels)
    W, H = recipe.size
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synthetic clips", dynamic_ncols=True)
    out = np.zeros((n, T, 2, H, W), np.int32)
    nw = duration_us // window_us
    s = max(0, (nw - T) // 2)
    for k in it:
        i = start + k
        ev = make_clip(CLASS_NAMES[i % len(CLASS_NAMES)], clip_seed(seed, split, i), sensor_size=tuple(sensor_size),
                       duration_us=duration_us)
        fr = model_counts(recipe, ev, tuple(sensor_size), t0=0, n_windows=nw)
        fr = fr[s:s + T]
        out[k, :len(fr)] = fr
    return out


class ClipBatches:
    """The ``n`` clips of :func:`count_clips`, made ``batch`` at a time when iterated, as time-major
    counts ``[T, b, 2, H, W]`` (what calibration and the chip report read): memory is bounded by
    ``batch``, not by ``n``, and it can be iterated again (the same clips each time)."""

    #: from this many clips on, a progress bar (stderr) counts them
    PROGRESS_FROM = 256

    def __init__(self, n: int, *, batch: int = 16, **kw):
        self.n, self.batch, self.kw = int(n), max(1, int(batch)), dict(kw)

    def __len__(self) -> int:
        return -(-self.n // self.batch)

    def __iter__(self):
        bar = None
        if self.n >= self.PROGRESS_FROM:
            from tqdm import tqdm

            bar = tqdm(total=self.n, desc="synthetic clips", unit="clip", dynamic_ncols=True)
        try:
            for a in range(0, self.n, self.batch):
                b = min(self.batch, self.n - a)
                yield count_clips(b, start=a, **self.kw).transpose(1, 0, 2, 3, 4)
                if bar is not None:
                    bar.update(b)
        finally:
            if bar is not None:
                bar.close()


def count_stream(seed: int, *, seconds: float = 6.0, sensor_size=(128, 128), input_size=(64, 64),
                 window_us: int = 100_000, stride_us: int = 50_000, clip: int = 255, channels: str = "polarity"):
    """The runtime's count frames ``[N, 2, H, W]`` of one synthetic stream, and the truth of each
    (the action of the newest packet begun before the window's end; -1: none)."""
    recipe = counts_recipe(input_size, window_us, stride_us, clip, channels)
    stream = SyntheticStream(seed=int(seed), sensor_size=tuple(sensor_size), duration_s=float(seconds))
    windows = StreamingInput(recipe, tuple(sensor_size))
    frames, ends, starts, tags = [], [], [], []
    for pk in stream:
        if len(pk.events):
            starts.append(int(pk.events["t"][0]))
            tags.append(-1 if pk.truth is None else int(pk.truth))
        counts, e = windows.push(pk.events)
        frames += list(counts.astype(np.int32))
        ends += e
    newest = np.maximum(np.searchsorted(np.array(starts, np.int64), np.array(ends, np.int64), side="left") - 1, 0)
    return np.stack(frames), np.array(tags, np.int64)[newest]
