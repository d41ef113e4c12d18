"""Training datasets: each item is ``(frames [T, 2, H, W] float32, label)`` at the model input size.

Every dataset makes its frames with the data config's input recipe
(:func:`~eventpipe.training.config.data_recipe`, :mod:`eventpipe.represent`): the same
geometry, windows, channels, saturation and normalisation the runtime applies to the
checkpoint; augmentation works on the model-resolution counts in between.

* :class:`SyntheticFrames` - the synthetic action set, binned once into a
  frame cache (``<cache_dir>/synthetic-<split>-<key>.npz``, key = hash of the
  data config) so epochs cost no rendering;
* :class:`EventClipDataset` - any list of labelled recordings read on demand:
  :func:`hardvs_items` (``action_XXX/*.npz`` + ``<split>_label.txt``),
  :func:`gesture_items` (DVS128 Gesture ``*.aedat`` + ``*_labels.csv``),
  :func:`gesture_npy_items` (tonic's ``ibmGestureTrain|Test/<user>/<label>.npy``),
  :func:`folder_items` (``root/<class_name>/*.<any readable format>``).

Training clips start at a random time (time jitter) and are augmented
(:mod:`eventpipe.training.augment`); evaluation clips are the centred ``T``
windows, unaugmented.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from eventpipe.represent import count_scale, model_counts, normalise, sensor_counts, spatial_map
from eventpipe.training.augment import FrameAugment, augment_events, flip_label_map, random_crop_frames
from eventpipe.training.config import DataConfig, data_recipe, synthetic_cache_key

GESTURE_CLASSES = [
    "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
    "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
    "arm_roll", "air_drums", "air_guitar", "other_gestures",
]


def center_start(n_windows: int, T: int) -> int:
    return max(0, (n_windows - T) // 2)


# ----------------------------------------------------------------------------- synthetic
def _synthetic_clip(args) -> np.ndarray:
    """Sensor-resolution counts ``(n * b, 2, Hs, Ws)`` of one clip's recipe windows."""
    label, seed, sensor_size, duration_us, recipe = args
    from eventpipe.synthetic import CLASS_NAMES, make_clip

    ev = make_clip(CLASS_NAMES[label], seed, sensor_size=tuple(sensor_size), duration_us=duration_us)
    n = max(0, (int(duration_us) - recipe.window_us) // recipe.stride + 1)
    return sensor_counts(recipe, ev, sensor_size, t0=0, n_windows=n)


def build_synthetic_cache(d: DataConfig, split: str, progress: bool = False) -> Path:
    """Render, emulate and bin the synthetic ``split`` once; returns the cache file.

    Keyed by :func:`synthetic_cache_key` (a different config never reuses a
    stale cache).  Written atomically (``.tmp`` then rename)."""
    from eventpipe.synthetic import CLASS_NAMES, clip_seed

    cache = Path(d.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"synthetic-{split}-{synthetic_cache_key(d, split)}.npz"
    if path.is_file():
        return path
    n_per = d.n_per_class if split == "train" else d.n_test_per_class
    nc = len(CLASS_NAMES)
    recipe = data_recipe(d)
    jobs = [(i % nc, clip_seed(d.seed, split, i), tuple(d.sensor_size), d.duration_us, recipe)
            for i in range(n_per * nc)]
    if d.gen_workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(d.gen_workers) as pool:
            it = pool.imap(_synthetic_clip, jobs, chunksize=4)
            frames = _collect(it, len(jobs), progress, f"synthetic {split}")
    else:
        frames = _collect(map(_synthetic_clip, jobs), len(jobs), progress, f"synthetic {split}")
    labels = np.array([j[0] for j in jobs], np.int64)
    seeds = np.array([j[1] for j in jobs], np.int64)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, frames=np.stack(frames), labels=labels, seeds=seeds,
             class_names=np.array(CLASS_NAMES))
    os.replace(tmp, path)
    return path


def _collect(it, total, progress, desc):
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=total, desc=desc, dynamic_ncols=True)
    return list(it)


class SyntheticFrames(Dataset):
    """Cached synthetic clips; ``train=True`` draws a random run of ``T`` windows and augments.

    The cache holds sensor-resolution counts of the recipe's windows (half windows for
    ``halves``); an item maps them to the model input with the recipe (evaluation items
    equal :func:`eventpipe.represent.apply` of the clip's events)."""

    def __init__(self, d: DataConfig, split: str = "train", train: Optional[bool] = None,
                 progress: bool = False):
        from eventpipe.synthetic import CLASS_NAMES

        self.cfg = d
        self.split = split
        self.train = (split == "train") if train is None else bool(train)
        self.recipe = data_recipe(d)
        self.sensor_size = tuple(int(v) for v in d.sensor_size)
        self.scale = count_scale(self.recipe, spatial_map(self.recipe, self.sensor_size))
        self.path = build_synthetic_cache(d, split, progress=progress)
        with np.load(self.path) as z:
            self.frames = z["frames"]          # (N, n * b, 2, Hs, Ws) counts
            self.labels = z["labels"]
            self.seeds = z["seeds"]
        self.class_names = list(CLASS_NAMES)
        if self.frames.shape[1] < self.recipe.slices(d.T):
            raise ValueError(f"cached clips have {self.recipe.windows_of(self.frames.shape[1])} "
                             f"windows < T={d.T}; raise data.duration_us")
        self.aug = FrameAugment(d.augment, self.class_names, seed=d.seed)

    def set_epoch(self, epoch: int) -> None:
        self.aug.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        d = self.cfg
        clip = self.frames[i]
        label = int(self.labels[i])
        r = self.recipe
        k = 1 if r.overlapping_halves else r.bins_per_window   # cached slices per window (eval)
        Tc = clip.shape[0]
        n = r.slices(d.T)
        if self.train:
            rng = self.aug.rng(i)
            s = int(rng.integers(0, Tc - n + 1))   # any slice: a time jitter of half a window
        else:
            s = k * center_start(r.windows_of(Tc), d.T)
        counts = model_counts(self.recipe, clip[s:s + n], self.sensor_size)
        if self.train:
            x, label = self.aug(torch.from_numpy(counts.astype(np.float32)), label, rng)
            return normalise(self.recipe, x, self.scale).contiguous(), label
        return normalise(self.recipe, counts, self.scale).contiguous(), label


# ----------------------------------------------------------------------------- recordings
Item = Tuple[Callable[[], Tuple[np.ndarray, Tuple[int, int]]], int]


class EventClipDataset(Dataset):
    """Clips from labelled recordings.  ``items``: ``(load, label)`` where ``load()`` returns
    ``(events, sensor_size)``."""

    def __init__(self, items: Sequence[Item], class_names: Sequence[str], d: DataConfig,
                 train: bool = False, seed: int = 0):
        self.items = list(items)
        self.class_names = list(class_names)
        self.cfg = d
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self.hmap = flip_label_map(self.class_names, "h")
        self.vmap = flip_label_map(self.class_names, "v")
        self.labels = np.array([lab for _, lab in self.items], np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        d = self.cfg
        recipe = data_recipe(d)
        load, label = self.items[i]
        ev, sensor_size = load()
        span = (d.T - 1) * recipe.stride + recipe.window_us
        if len(ev):
            t_first, t_last = int(ev["t"].min()), int(ev["t"].max())
        else:
            t_first = t_last = 0
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        if rng is not None:
            ev, label = augment_events(ev, label, sensor_size, d.augment, self.hmap, self.vmap, rng)
            slack = max(0, t_last - t_first - span)
            t0 = t_first + int(rng.integers(0, slack + 1))
        else:
            t0 = t_first + max(0, (t_last - t_first - span) // 2)
        counts = model_counts(recipe, ev, sensor_size, t0=t0, n_windows=d.T)
        scale = count_scale(recipe, spatial_map(recipe, sensor_size))
        if rng is None:
            return normalise(recipe, counts, scale).contiguous(), int(label)
        x = random_crop_frames(torch.from_numpy(counts.astype(np.float32)), d.augment, rng)
        return normalise(recipe, x, scale).contiguous(), int(label)


def _reader_load(path, format=None, sensor_size=None):
    def load():
        from eventpipe.io import open_reader

        r = open_reader(path, format=format, sensor_size=sensor_size)
        ev = r.read()
        size = r.info.sensor_size or sensor_size
        if size is None:
            size = (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1) if len(ev) else (1, 1)
        return ev, tuple(int(v) for v in size)
    return load


def hardvs_items(root, split: str) -> List[Item]:
    """HAR-DVS: ``<root>/<split>_label.txt`` lines ``action_XXX/<sample>.npz <label>``."""
    from eventpipe.io.hardvs import HarDvsIndex

    idx = HarDvsIndex(root, split)
    return [(_reader_load(p, format="hardvs"), int(lab)) for p, lab in idx]


def hardvs_class_names(root, n: int = 300) -> List[str]:
    names = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and re.fullmatch(r"action_\d{3}", p.name))
    return [f"action_{i:03d}" for i in range(max(n, len(names)))]


def _gesture_segment_load(path, labels_path, k):
    cache = {}

    def load():
        from eventpipe.io.aedat3 import gesture_segments, read_gesture_labels
        from eventpipe.io import open_reader

        if "seg" not in cache:
            r = open_reader(path)
            ev = r.read()
            segs = gesture_segments(ev, read_gesture_labels(labels_path))
            cache["size"] = tuple(r.info.sensor_size or (128, 128))
            cache["seg"] = [s for _, s in segs]
        return cache["seg"][k], cache["size"]
    return load


def _trial_list(root: Path, split: str) -> Optional[set]:
    f = root / f"trials_to_{split}.txt"
    if f.is_file():
        return {ln.strip() for ln in f.read_text().splitlines() if ln.strip()}
    return None


def gesture_items(root, split: str) -> List[Item]:
    """DVS128 Gesture original layout: ``<root>/userXX_<light>.aedat`` + ``..._labels.csv``
    (labels 1..11 -> 0..10); the split is ``trials_to_<split>.txt`` when present, else users
    1-23 train / 24-29 test."""
    from eventpipe.io.aedat3 import labels_path_for, read_gesture_labels

    root = Path(root)
    listed = _trial_list(root, split)
    files = sorted(root.rglob("*.aedat"))
    items: List[Item] = []
    for f in files:
        if listed is not None:
            if f.name not in listed:
                continue
        else:
            m = re.match(r"user(\d+)", f.name)
            user = int(m.group(1)) if m else 0
            if (split == "train") != (user <= 23):
                continue
        lp = labels_path_for(f)
        if not lp.is_file():
            continue
        for k, (lab, _, _) in enumerate(read_gesture_labels(lp)):
            items.append((_gesture_segment_load(f, lp, k), int(lab) - 1))
    return items


def gesture_npy_items(root, split: str) -> List[Item]:
    """tonic's DVSGesture layout: ``<root>/ibmGesture{Train,Test}/<user_light>/<label>.npy``
    (label 0..10, t in ms); ``root`` may also be the split folder itself."""
    root = Path(root)
    sub = root / ("ibmGestureTrain" if split == "train" else "ibmGestureTest")
    base = sub if sub.is_dir() else root
    items: List[Item] = []
    for f in sorted(base.glob("*/*.npy")):
        if not f.stem.isdigit():
            continue
        items.append((_reader_load(f, format="gesture_npy"), int(f.stem)))
    return items


def folder_items(root, split: str, extensions: Sequence[str] = (), test_fraction: float = 0.2,
                 seed: int = 0, class_names: Sequence[str] = ()) -> Tuple[List[Item], List[str]]:
    """``root/<class_name>/*`` (or ``root/<split>/<class_name>/*``).  Without split folders a
    seeded ``test_fraction`` of each class is held out.  Class names sorted unless given."""
    root = Path(root)
    split_root = root / split
    has_split = split_root.is_dir()
    base = split_root if has_split else root
    names = list(class_names) or sorted(p.name for p in base.iterdir() if p.is_dir())
    if not names:
        raise FileNotFoundError(f"no class folders under {base}")
    exts = {e.lower().lstrip(".") for e in extensions}
    items: List[Item] = []
    for li, name in enumerate(names):
        d = base / name
        files = sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")
                       and (not exts or f.suffix.lower().lstrip(".") in exts)) if d.is_dir() else []
        if not has_split:
            rng = np.random.default_rng([seed, li])
            order = rng.permutation(len(files))
            n_test = int(round(len(files) * test_fraction))
            test = set(order[:n_test].tolist())
            files = [f for k, f in enumerate(files) if (k in test) == (split != "train")]
        items += [(_reader_load(f), li) for f in files]
    return items, names


def build_dataset(d: DataConfig, split: str, train: Optional[bool] = None, progress: bool = False,
                  seed: int = 0):
    """The dataset of ``d.dataset`` for ``split`` ("train" augments unless ``train=False``)."""
    train = (split == "train") if train is None else train
    if d.dataset == "synthetic":
        return SyntheticFrames(d, "train" if split == "train" else "test", train=train, progress=progress)
    if d.dataset == "synthetic_stream":
        from eventpipe.training.stream_data import SyntheticStreamFrames

        return SyntheticStreamFrames(d, "train" if split == "train" else "test", train=train,
                                     progress=progress)
    if d.dataset == "recordings_stream":  # your own takes as streams (per-window targets)
        from eventpipe.training.recording_stream import RecordingStreamFrames

        return RecordingStreamFrames(d, "train" if split == "train" else "test", train=train)
    if d.dataset == "recordings":  # your own takes + labels files (eventpipe.training.recordings)
        from eventpipe.training.recordings import recording_items

        items, names, takes = recording_items(d, split, train=train, seed=seed)
        ds = EventClipDataset(items, names, d, train=train, seed=seed)
        ds.takes = takes
        return ds
    sp = d.train_split if split == "train" else d.test_split
    if d.dataset == "hardvs":
        items = hardvs_items(d.root, sp)
        names = list(d.class_names) or hardvs_class_names(d.root)
    elif d.dataset == "gesture":
        items, names = gesture_items(d.root, sp), list(d.class_names) or GESTURE_CLASSES
    elif d.dataset == "gesture_npy":
        items, names = gesture_npy_items(d.root, sp), list(d.class_names) or GESTURE_CLASSES
    elif d.dataset == "folder":
        items, names = folder_items(d.root, sp, d.extensions, d.test_fraction, seed, d.class_names)
    else:
        raise ValueError(f"unknown dataset {d.dataset!r}")
    if not items:
        raise FileNotFoundError(f"{d.dataset}: no samples for split {sp!r} under {d.root!r}")
    return EventClipDataset(items, names, d, train=train, seed=seed)
