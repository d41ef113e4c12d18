"""Stream clips: runs of consecutive windows of a live synthetic stream, one target per window.

Clip training (:class:`~eventpipe.training.datasets.SyntheticFrames`) never shows the
network a change of action, and feeds non-overlapping windows; the runtime feeds a
never-ending stream of overlapping windows (``stride_us`` < ``window_us``) with the
membranes carried across action switches.  :class:`SyntheticStreamFrames` trains on what
the runtime sees: every :class:`~eventpipe.synthetic.SyntheticStream` is cut into windows
by the runtime's own :class:`~eventpipe.runtime.preprocess.StreamPrep` (same spatial map,
binner and saturation), so a training frame is bit-for-bit a runtime frame.

An item is ``(frames [R, 2, H, W] float32, targets [R] int64, weights [R] float32)``
(``R = run_windows``): the truth of each window
(the action at the window's end, as the runtime tags it), or :data:`IGNORE` for the first
``burn_in`` windows of the run (the network starts from rest there, which the runtime
never does after its first second) and for windows ending less than ``switch_grace_us``
after a switch (the new performer is still fading in); the loss weight of each window
(``switch_weight`` for the windows that should show the new action, within
``switch_focus_us`` of a switch; 1 elsewhere).  The trainer turns a 2-D target into a
per-step loss.

Streams are rendered once and cached as model-resolution counts
(``<cache_dir>/stream-<split>-<key>.npz``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from eventpipe.represent import counts_dtype, normalise
from eventpipe.training.augment import augment_run, flip_label_map, reverse_frames, time_reverse_map
from eventpipe.training.config import DataConfig, data_recipe

#: target of windows that carry no loss (``torch.nn.functional.cross_entropy``'s default)
IGNORE = -100

#: stream seeds: training streams ``TRAIN_SEED0 + i``, held-out ``TEST_SEED0 + i`` (the
#: streaming evaluations in ``docs/training.md`` use seeds 1000-5000, disjoint from both)
TRAIN_SEED0 = 10_000
TEST_SEED0 = 20_000


def stream_seeds(d: DataConfig, split: str) -> list[int]:
    n = d.n_streams if split == "train" else d.n_test_streams
    base = (TRAIN_SEED0 if split == "train" else TEST_SEED0) + 100 * d.seed
    return [base + i for i in range(n)]


def stream_cache_key(d: DataConfig, split: str) -> str:
    from eventpipe.synthetic import CLASS_NAMES

    recipe = data_recipe(d).to_dict()
    recipe.pop("normalisation")            # applied when an item is read
    keyed = dict(split=split, seeds=stream_seeds(d, split), seconds=d.stream_seconds,
                 switch_every_s=d.switch_every_s, sensor_size=list(d.sensor_size),
                 recipe=recipe, classes=list(CLASS_NAMES), v=2)
    return hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]


def stride_of(d: DataConfig) -> int:
    return int(d.stride_us or d.window_us)


def render_stream(seed: int, d: DataConfig) -> dict:
    """One stream through the runtime's windowing: counts ``(N, C, H, W)`` at the model
    input size, the truth and end time of every window, and the recipe's count scale."""
    from eventpipe.represent import StreamingInput
    from eventpipe.synthetic import SyntheticStream

    recipe = data_recipe(d)
    stream = SyntheticStream(seed=seed, switch_every_s=d.switch_every_s,
                             sensor_size=tuple(d.sensor_size), duration_s=d.stream_seconds)
    windows = StreamingInput(recipe, tuple(d.sensor_size))
    frames, t_end, starts, tags = [], [], [], []
    for pk in stream:
        if len(pk.events):
            starts.append(int(pk.events["t"][0]))
            tags.append(-1 if pk.truth is None else int(pk.truth))
        counts, ends = windows.push(pk.events)
        frames += list(counts.astype(counts_dtype(recipe)))
        t_end += ends
    if not frames:
        raise ValueError(f"synthetic stream seed {seed}: no windows in {d.stream_seconds} s")
    t_end = np.array(t_end, np.int64)
    # as the runtime tags a window: the truth of the newest packet that began before its end
    newest = np.maximum(np.searchsorted(np.array(starts, np.int64), t_end, side="left") - 1, 0)
    return dict(frames=np.stack(frames), truth=np.array(tags, np.int64)[newest], t_end=t_end,
                scale=np.float64(windows.scale))


def build_stream_cache(d: DataConfig, split: str, progress: bool = False) -> Path:
    cache = Path(d.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"stream-{split}-{stream_cache_key(d, split)}.npz"
    if path.is_file():
        return path
    seeds = stream_seeds(d, split)
    it = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc=f"synthetic streams ({split})", dynamic_ncols=True)
    parts = [render_stream(s, d) for s in it]
    lengths = np.array([len(p["truth"]) for p in parts], np.int64)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, frames=np.concatenate([p["frames"] for p in parts]),
             truth=np.concatenate([p["truth"] for p in parts]),
             t_end=np.concatenate([p["t_end"] for p in parts]),
             lengths=lengths, seeds=np.array(seeds, np.int64), scale=parts[0]["scale"])
    os.replace(tmp, path)
    return path


def step_weights(t_end: np.ndarray, switch_us: int, focus_us: int, weight: float) -> np.ndarray:
    """Loss weight per window: ``weight`` for windows ending within ``focus_us`` after a switch
    (where the label has to change), 1 elsewhere."""
    since = (t_end - 1) % switch_us
    w = np.ones(len(t_end), np.float32)
    w[(since < focus_us) & (t_end > switch_us)] = weight
    return w


def step_targets(truth: np.ndarray, t_end: np.ndarray, switch_us: int, burn_in: int,
                 grace_us: int) -> np.ndarray:
    """Per-window targets of one run: ``truth``, with :data:`IGNORE` for the burn-in windows,
    windows of unknown truth, and windows ending within ``grace_us`` after a switch
    (switches happen at multiples of ``switch_us`` of event time)."""
    y = truth.astype(np.int64).copy()
    y[:burn_in] = IGNORE
    y[truth < 0] = IGNORE
    if grace_us > 0:
        since = (t_end - 1) % switch_us   # a window ending exactly on a switch holds the old action
        y[(since < grace_us) & (t_end > switch_us)] = IGNORE
    return y


def reversed_run(truth: np.ndarray, t_end: np.ndarray, window_us: int, switch_us: int):
    """A run of windows played backwards: ``(truth, pseudo_t_end)`` per reversed window, for
    :func:`step_targets` / :func:`step_weights` (labels not yet mapped through
    :func:`~eventpipe.training.augment.time_reverse_map`).

    Backwards, a window ends where it began (``t_end - window_us``), so its truth is the action
    of the segment holding its start (-1 when no window of the run ends in that segment), and
    its time since the last (backwards) switch is the time from its start to the next switch
    forwards; ``pseudo_t_end`` encodes that as ``switch_us + until`` so that the forward rules
    (grace, switch weight) apply unchanged."""
    seg_of = {}
    for seg, lab in zip(((t_end - 1) // switch_us).tolist(), truth.tolist()):
        if lab >= 0:
            seg_of.setdefault(int(seg), int(lab))
    t_start = t_end.astype(np.int64) - int(window_us)
    lab = np.array([seg_of.get(int(s), -1) for s in (t_start // switch_us)], np.int64)
    until = (-t_start) % switch_us
    return lab[::-1].copy(), (switch_us + until)[::-1].copy()


def run_index(lengths, run_windows: int, runs_per_stream: int, train: bool) -> list:
    """Items of a dataset of runs cut from concatenated streams: ``(stream, offset)``;
    training runs start at a random offset drawn per item (``None``), test runs tile each
    stream."""
    if train:
        return [(s, None) for s in range(len(lengths)) for _ in range(runs_per_stream)]
    return [(s, int(o)) for s in range(len(lengths))
            for o in range(0, int(lengths[s]) - run_windows + 1, run_windows)]


def run_start(index: list, starts, lengths, run_windows: int, seed: int, epoch: int,
              i: int) -> tuple[int, np.random.Generator]:
    """The first window of item ``i`` and the item's generator (seeded by seed, epoch, item)."""
    s, off = index[i]
    rng = np.random.default_rng([seed, epoch, int(i)])
    if off is None:
        off = int(rng.integers(0, int(lengths[s]) - run_windows + 1))
    return int(starts[s]) + off, rng


def switch_windows(t_end: np.ndarray, switch_us: int) -> np.ndarray:
    """Indices of the windows of one stream that are the first to end after a switch (event
    time ``k * switch_us``, k >= 1): the first window of each new action."""
    seg = (np.asarray(t_end, np.int64) - 1) // int(switch_us)
    return np.flatnonzero(np.diff(seg) > 0) + 1


def switch_offset(switches: np.ndarray, length: int, run_windows: int, burn_in: int, lead: int,
                  rng: np.random.Generator):
    """The offset of a run cut around a switch: the run starts ``burn_in + j`` windows before a
    switch drawn from ``switches`` (``j`` uniform in 1..``lead``), so the membranes hold the old
    action when the new one arrives and the run still ends ``run_windows - burn_in - j`` windows
    after it; ``None`` when no switch of the stream leaves room."""
    j = int(rng.integers(1, max(1, int(lead)) + 1))
    first = np.asarray(switches, np.int64) - int(burn_in) - j
    ok = first[(first >= 0) & (first + int(run_windows) <= int(length))]
    if not len(ok):
        return None
    return int(ok[int(rng.integers(0, len(ok)))])


class StreamRuns(Dataset):
    """Runs of ``cfg.run_windows`` consecutive windows cut from streams concatenated in
    ``frames``: the subclass sets ``cfg``, ``train`` and ``frames`` and calls :meth:`_cut`
    with the streams' lengths; the items, the epoch and a run's frames live here.  A subclass
    that knows where its streams switch action sets ``switches`` (per stream, the first window
    of each new action: :func:`switch_windows`); then ``cfg.switch_runs`` of the training runs
    are cut around one (:func:`switch_offset`)."""

    switches = None

    def _cut(self, lengths) -> None:
        d = self.cfg
        self.lengths = np.asarray(lengths, np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.epoch = 0
        self.index = run_index(self.lengths, d.run_windows, d.clips_per_stream, self.train)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def _run(self, i: int) -> tuple[int, np.random.Generator, torch.Tensor]:
        """Item ``i``: its first window, its generator (seeded by seed, epoch, item) and its
        frames as float32."""
        d = self.cfg
        a, rng = run_start(self.index, self.starts, self.lengths, d.run_windows, d.seed,
                           self.epoch, i)
        share = float(d.switch_runs)
        if self.train and share > 0 and self.switches is not None and rng.random() < share:
            s = self.index[i][0]
            off = switch_offset(self.switches[s], int(self.lengths[s]), d.run_windows, d.burn_in,
                                d.switch_run_lead, rng)
            if off is not None:
                a = int(self.starts[s]) + off
        return a, rng, torch.from_numpy(self.frames[a:a + d.run_windows].astype(np.float32))


class SyntheticStreamFrames(StreamRuns):
    """Runs of ``d.run_windows`` consecutive stream windows with per-window targets.

    Training: ``d.clips_per_stream`` runs per stream at random offsets each epoch, flipped
    left/right with probability ``augment.hflip`` (targets swapped through the class names)
    and thinned by up to ``augment.event_drop``.  Test: runs tiling each stream in order,
    unaugmented."""

    def __init__(self, d: DataConfig, split: str = "train", train: Optional[bool] = None,
                 progress: bool = False):
        from eventpipe.synthetic import CLASS_NAMES

        self.cfg = d
        self.recipe = data_recipe(d)
        self.train = (split == "train") if train is None else bool(train)
        self.path = build_stream_cache(d, split, progress=progress)
        with np.load(self.path) as z:
            self.frames = z["frames"]
            self.truth = z["truth"]
            self.t_end = z["t_end"]
            lengths = z["lengths"]
            self.scale = float(z["scale"])
        self.class_names = list(CLASS_NAMES)
        if int(lengths.min()) < d.run_windows:
            raise ValueError(f"streams of {int(lengths.min())} windows are shorter than run_windows={d.run_windows}; "
                             f"raise data.stream_seconds")
        self.switch_us = int(round(d.switch_every_s * 1e6))
        if not 0.0 <= d.switch_runs <= 1.0:
            raise ValueError(f"data.switch_runs must be in [0, 1], got {d.switch_runs}")
        if int(d.switch_run_lead) < 1:
            raise ValueError(f"data.switch_run_lead must be >= 1, got {d.switch_run_lead}")
        ends = np.split(self.t_end, np.cumsum(lengths)[:-1])
        self.switches = [switch_windows(e, self.switch_us) for e in ends]
        self.hmap = flip_label_map(self.class_names, "h")
        self.rmap = time_reverse_map(self.class_names)
        unknown = sorted(set(d.class_weights) - set(self.class_names))
        if unknown:
            raise ValueError(f"data.class_weights: {unknown[0]!r} is not a class "
                             f"(classes: {', '.join(self.class_names)})")
        self.class_w = np.array([float(d.class_weights.get(n, 1.0)) for n in self.class_names],
                                np.float32)
        self._cut(lengths)

    def __getitem__(self, i: int):
        d = self.cfg
        a, rng, x = self._run(i)
        t_end = self.t_end[a:a + d.run_windows]
        truth = self.truth[a:a + d.run_windows]
        aug = d.augment
        backwards = (self.train and aug.enabled and aug.time_reverse > 0
                     and rng.random() < aug.time_reverse)
        if backwards:
            truth, t_end = reversed_run(truth, t_end, int(d.window_us), self.switch_us)
            known = truth >= 0
            truth[known] = self.rmap[truth[known]]
            x = reverse_frames(x)
        y = step_targets(truth, t_end, self.switch_us, d.burn_in, d.switch_grace_us)
        w = step_weights(t_end, self.switch_us, d.switch_focus_us, d.switch_weight)
        valid = y >= 0
        w[valid] *= self.class_w[y[valid]]
        if self.train and aug.enabled:
            x = augment_run(x, y, aug, self.hmap, rng)
        x = normalise(self.recipe, x, self.scale)
        return x.contiguous(), torch.from_numpy(y), torch.from_numpy(w)
