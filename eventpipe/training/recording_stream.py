"""Your own takes as streams (``dataset = "recordings_stream"``): stream fine-tuning as for
the shipped model (:mod:`eventpipe.training.stream_data`), on labelled recordings.

Each take of ``data.root`` (found and split as in :mod:`eventpipe.training.recordings`) is
cut into windows by the runtime's own windower (:class:`eventpipe.represent.StreamingInput`:
``window_us`` every ``stride_us``, the spatial map to ``input_size``, saturation), so a
training frame is the runtime's frame.  An item is a run of ``run_windows`` consecutive
windows ``(frames [R, 2, H, W], targets [R], weights [R])``: the target of a window is the
label of the segment holding its end (:func:`eventpipe.labelling.files.label_at`, as
``eval --stream REC.h5`` scores it), :data:`~eventpipe.training.stream_data.IGNORE` for
windows outside every segment and for the first ``burn_in`` windows of a run (the state
starts from rest there); every weight is 1.  Training: ``clips_per_stream`` runs per take
at random offsets each epoch, thinned by up to ``augment.event_drop`` and flipped with
``augment.hflip`` (targets swapped through the class names); held out: runs tiling each
take.  Use it with ``init`` = a clip model of the same classes (``eventpipe train
--data``), optionally ``aux_data`` = the clip set.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from eventpipe.errors import DataError
from eventpipe.labelling.files import label_at
from eventpipe.represent import counts_dtype, normalise
from eventpipe.training.augment import augment_run, flip_label_map
from eventpipe.training.config import DataConfig, data_recipe
from eventpipe.training.recordings import (check_sensor_sizes, class_names, find_takes,
                                            split_takes, take_segments)
from eventpipe.training.stream_data import IGNORE, StreamRuns

CHUNK_US = 10_000   # the events go to the windower in packets of this much event time


def take_windows(read, size, t_first: int, t_last: int, recipe, path="the take"):
    """``(counts (N, C, H, W), window ends (N,), scale)`` of one take through
    :class:`~eventpipe.represent.StreamingInput`, fed in ``CHUNK_US`` packets."""
    from eventpipe.represent import StreamingInput

    win = StreamingInput(recipe, size)
    frames, ends = [], []

    def take(out):
        counts, e = out
        frames.extend(counts.astype(counts_dtype(recipe)))
        ends.extend(e)

    for a in range(t_first, t_last + 1, CHUNK_US):
        ev = read(a, min(a + CHUNK_US, t_last + 1))
        if len(ev):
            take(win.push(ev))
            while win.pending:
                take(win.more())
    if not frames:
        raise DataError(f"{path}: no whole window ({recipe.window_us} us) in the take")
    return np.stack(frames), np.array(ends, np.int64), float(win.scale)


class RecordingStreamFrames(StreamRuns):
    def __init__(self, d: DataConfig, split: str = "train", train: Optional[bool] = None):
        self.cfg = d
        self.recipe = data_recipe(d)
        self.train = (split == "train") if train is None else bool(train)
        takes = find_takes(d.root)
        check_sensor_sizes(takes)
        self.class_names = class_names(d, takes)
        chosen = split_takes(takes, d.root, split, test_takes=list(d.test_takes),
                             test_fraction=d.test_fraction, seed=d.seed)
        self.takes = [t.name for t in chosen]
        index = {n: i for i, n in enumerate(self.class_names)}
        frames, truth, lengths = [], [], []
        for t in chosen:
            read, size, t0, t_last, segs = take_segments(t, self.class_names)
            f, ends, self.scale = take_windows(read, size, t0, t_last, self.recipe, t.recording)
            if len(f) < d.run_windows:
                raise DataError(f"{t.recording}: {len(f)} windows, shorter than a run "
                                f"(data.run_windows={d.run_windows}): record longer takes or "
                                "lower data.run_windows")
            lab = [label_at(segs, (int(e) - 1 - t0) / 1e6) for e in ends]
            truth.append(np.array([IGNORE if x is None else index[x] for x in lab], np.int64))
            frames.append(f)
            lengths.append(len(f))
        self.frames = np.concatenate(frames)
        self.truth = np.concatenate(truth)
        self.hmap = flip_label_map(self.class_names, "h")
        self._cut(lengths)

    def __getitem__(self, i: int):
        d = self.cfg
        a, rng, x = self._run(i)
        y = self.truth[a:a + d.run_windows].copy()
        y[:d.burn_in] = IGNORE
        aug = d.augment
        if self.train and aug.enabled:
            x = augment_run(x, y, aug, self.hmap, rng)
        x = normalise(self.recipe, x, self.scale)
        return x.contiguous(), torch.from_numpy(y), torch.ones(len(y))
