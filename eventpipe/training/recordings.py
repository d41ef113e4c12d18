"""Your own recordings as a training set (``eventpipe train --data DIR``, ``dataset = "recordings"``).

``DIR`` holds takes: recordings (``eventpipe record``'s ``.h5``, or any format
:mod:`eventpipe.io` reads) each with a labels file next to it (``take1.h5`` +
``take1.labels.csv`` or ``.labels.json``, :mod:`eventpipe.labelling.files`).  Every
labelled segment gives clips of ``T`` windows (the recipe's windows at its stride):

* classes: the sorted labels of all labels files (or ``data.class_names``, which then
  also fixes their order; a label outside it is an error naming the file and line);
* the held-out split is by take, never by clip (clips of one take are alike): the takes
  named in ``data.test_takes`` (file names without suffix), else ``DIR/train/`` and
  ``DIR/test/`` when both exist, else a seeded ``data.test_fraction`` of the takes (at
  least one; ``data.seed``);
* a segment gives one training clip per clip span (``(T - 1) * stride + window``) of its
  length, at least one, each at a random start inside the segment every epoch (and
  augmented as every recording dataset); held-out clips tile the segment from its start.
  Only the segment's own events are read, so a segment shorter than a clip span gives a
  clip whose last windows are empty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from eventpipe.errors import ConfigError
from eventpipe.labelling.events import RECORDING_PREFERENCE, sensor_size_of, take_events
from eventpipe.labelling.files import SUFFIXES, LabelFileError, read_labels


@dataclass(frozen=True)
class Take:
    name: str               # the file name without its suffix
    recording: Path
    labels: Path


def _recording_for(labels: Path) -> Path:
    stem = labels.name[: -len(next(s for s in SUFFIXES if labels.name.endswith(s)))]
    cands = sorted(p for p in labels.parent.iterdir()
                   if p.is_file() and p.stem == stem and not p.name.endswith(SUFFIXES)
                   and not p.name.endswith(".tmp"))
    if not cands:
        raise FileNotFoundError(2, f"no recording named {stem}.* for this labels file",
                                str(labels))
    pref = [p for p in cands if p.suffix.lower() in RECORDING_PREFERENCE]
    if len(pref) == 1:
        return pref[0]
    if len(cands) > 1:
        raise LabelFileError(labels, "", f"more than one recording for it: "
                             f"{[p.name for p in cands]}; keep one per name")
    return cands[0]


def find_takes(root) -> List[Take]:
    """The takes under ``root`` (recursively): every labels file and its recording."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(2, "no such folder of recordings", str(root))
    labels = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
    seen = {}
    takes = []
    for lp in labels:
        rec = _recording_for(lp)
        if rec in seen:
            raise LabelFileError(lp, "", f"{seen[rec].name} labels the same recording; keep "
                                 "one labels file per recording")
        seen[rec] = lp
        takes.append(Take(str(rec.relative_to(root).with_suffix("")), rec, lp))
    if not takes:
        raise FileNotFoundError(2, "no labels files (NAME.labels.csv next to NAME.h5) in this "
                                "folder or below", str(root))
    return takes


def check_sensor_sizes(takes: Sequence[Take]) -> None:
    """Every take from one sensor size (the size a checkpoint's recipe and the runtime
    expect): a take whose header states another is an error naming both takes."""
    first = None
    for t in takes:
        size = sensor_size_of(t.recording)
        if size is None:
            continue
        size = tuple(int(v) for v in size[:2])
        if first is None:
            first = (t, size)
        elif size != first[1]:
            raise LabelFileError(t.recording, "", f"sensor size {size[0]}x{size[1]}, but "
                                 f"{first[0].recording} is {first[1][0]}x{first[1][1]}: record "
                                 "every take with one sensor (or convert the odd one out)")


def class_names(d, takes: Sequence[Take]) -> List[str]:
    """``data.class_names``, else the sorted labels of all labels files; at least two."""
    if d.class_names:
        twice = sorted({n for n in d.class_names if list(d.class_names).count(n) > 1})
        if twice:
            raise ConfigError(f"data.class_names: {twice} named twice")
        return list(d.class_names)
    names = sorted({s.label for t in takes for s in read_labels(t.labels)})
    if not names:
        raise LabelFileError(d.root, "", "no segments in any labels file: label the takes "
                             "first (eventpipe label TAKE.h5)")
    if len(names) == 1:
        raise LabelFileError(d.root, "", f"one class ({names[0]}) in the labels files: a "
                             "classifier needs at least two (label other actions, or idle "
                             "time as a class of its own)")
    return names


def split_takes(takes: Sequence[Take], root, split: str, *, test_takes: Sequence[str] = (),
                test_fraction: float = 0.2, seed: int = 0) -> List[Take]:
    """The takes of ``split`` ("train" or anything else = held out); see the module doc."""
    root = Path(root)
    names = [t.name for t in takes]
    if test_takes:
        unknown = [n for n in test_takes if n not in names]
        if unknown:
            raise LabelFileError(root, "", f"data.test_takes: no labelled take named "
                                 f"{unknown}; the takes are {names}")
        held = set(test_takes)
    elif (root / "train").is_dir() and (root / "test").is_dir():
        held = {n for n in names if Path(n).parts[0] == "test"}
    else:
        if len(takes) < 2:
            raise LabelFileError(root, "", f"one labelled take ({names[0]}): record at least "
                                 "two, the held-out split is by take")
        n_test = min(len(takes) - 1, max(1, int(round(len(takes) * test_fraction))))
        order = np.random.default_rng([seed, 7]).permutation(len(takes))
        held = {names[i] for i in order[:n_test]}
    out = [t for t in takes if (t.name in held) == (split != "train")]
    if not out:
        raise LabelFileError(root, "", f"no takes in the {split!r} split (takes: {names})")
    return out


def _segment_load(read, size, a_us: int, b_us: int):
    def load():
        return read(a_us, b_us), size
    return load


def take_segments(take: Take, classes: Optional[Sequence[str]] = None):
    """``(read, sensor_size, t_first, t_last, segments)`` of a take, the labels checked
    against the recording's length."""
    read, size, t_first, t_last = take_events(take.recording)
    segs = read_labels(take.labels, duration_s=(t_last - t_first) / 1e6 + 1e-6, classes=classes)
    return read, size, t_first, t_last, segs


def recording_items(d, split: str, *, train: bool, seed: int = 0
                    ) -> Tuple[list, List[str], List[str]]:
    """``(items, class_names, take names)`` of ``split`` for
    :class:`~eventpipe.training.datasets.EventClipDataset`; in the training split every
    class needs a segment."""
    from eventpipe.training.config import data_recipe

    takes = find_takes(d.root)
    check_sensor_sizes(takes)
    names = class_names(d, takes)
    chosen = split_takes(takes, d.root, split, test_takes=list(getattr(d, "test_takes", [])),
                         test_fraction=d.test_fraction, seed=d.seed)
    recipe = data_recipe(d)
    span = (d.T - 1) * recipe.stride + recipe.window_us
    index = {n: i for i, n in enumerate(names)}
    items = []
    for take in chosen:
        read, size, t0, _, segs = take_segments(take, names)
        for s in segs:
            a, b = t0 + int(round(s.start_s * 1e6)), t0 + int(round(s.end_s * 1e6))
            n = max(1, (b - a) // span)
            if train:
                items += [(_segment_load(read, size, a, b), index[s.label])] * n
            else:
                items += [(_segment_load(read, size, a + k * span, min(b, a + (k + 1) * span)),
                           index[s.label]) for k in range(n)]
    if split == "train":
        have = {lab for _, lab in items}
        missing = [n for i, n in enumerate(names) if i not in have]
        if missing:
            raise LabelFileError(d.root, "", f"class(es) {missing} have no segment in the "
                                 f"training takes {[t.name for t in chosen]}")
    return items, names, [t.name for t in chosen]


def data_dir_values(data_dir: Optional[str], config: Optional[str], sets: Sequence[str]) -> dict:
    """What ``train --data DIR`` stands for: ``data.dataset = "recordings"`` (unless
    ``--set data.dataset=...``), ``data.root = DIR`` and, unless a config file or ``--set out_dir=`` says otherwise,
    ``out_dir = runs/<DIR's name>``."""
    if not data_dir:
        return {}
    p = Path(data_dir)
    if not p.is_dir():
        raise FileNotFoundError(2, "no such folder of recordings (--data)", str(p))
    keys = {s.split("=", 1)[0].strip() for s in sets}
    values = {"data.root": os.fspath(p)}
    if "data.dataset" not in keys:  # --set data.dataset='recordings_stream' stays
        values["data.dataset"] = "recordings"
    if config is None and "out_dir" not in keys:
        values["out_dir"] = f"runs/{p.resolve().name}"
    return values
