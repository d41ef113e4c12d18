"""Dataset loaders on tiny trees in the real on-disk layouts, the synthetic cache, augmentation."""

import numpy as np
import pytest
import torch

from eventpipe.synthetic import CLASS_NAMES
from eventpipe.training.augment import flip_label_map
from eventpipe.training.config import DataConfig, synthetic_cache_key
from eventpipe.training.datasets import (
    GESTURE_CLASSES,
    SyntheticFrames,
    build_dataset,
    build_synthetic_cache,
)
from eventpipe.represent import InputRecipe, apply, model_counts, sensor_counts
from eventpipe.training.config import data_recipe

from .conftest import tiny_events


def _cfg(**kw):
    base = dict(T=3, window_us=100_000, input_size=(16, 16))
    base.update(kw)
    return DataConfig(**base)


def _check_item(ds, n_classes):
    x, y = ds[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 2, 16, 16)
    assert torch.isfinite(x).all() and float(x.sum()) > 0
    assert 0 <= y < n_classes


def test_sensor_counts_exact_windows():
    ev = tiny_events(W=10, H=8, t_end=500_000)
    r = InputRecipe(size=(10, 8), window_us=100_000, clip_count=255)
    fr = sensor_counts(r, ev, (10, 8), t0=100_000, n_windows=3)
    assert fr.shape == (3, 2, 8, 10) and fr.dtype == np.uint8
    inside = (ev["t"] >= 100_000) & (ev["t"] < 400_000)
    assert int(fr.sum()) == int(inside.sum())
    assert sensor_counts(r, ev[:0], (10, 8), t0=0, n_windows=2).shape == (2, 2, 8, 10)


def test_flip_label_maps():
    h = flip_label_map(CLASS_NAMES, "h")
    names = list(CLASS_NAMES)
    assert names[h[names.index("wave_left_hand")]] == "wave_right_hand"
    assert names[h[names.index("circle_clockwise")]] == "circle_anticlockwise"
    assert names[h[names.index("swipe_up")]] == "swipe_up"
    v = flip_label_map(CLASS_NAMES, "v")
    assert names[v[names.index("swipe_up")]] == "swipe_down"
    g = flip_label_map(GESTURE_CLASSES, "h")
    assert GESTURE_CLASSES[g[GESTURE_CLASSES.index("right_arm_clockwise")]] == "left_arm_counter_clockwise"
    assert all(sorted(m[m >= 0]) == sorted(set(m[m >= 0])) for m in (h, v, g))  # permutations


def test_synthetic_cache_is_keyed_and_reused(tmp_path):
    d = _cfg(dataset="synthetic", cache_dir=str(tmp_path), n_per_class=1, n_test_per_class=1,
             sensor_size=(32, 32), duration_us=400_000)
    p = build_synthetic_cache(d, "train")
    mtime = p.stat().st_mtime_ns
    assert build_synthetic_cache(d, "train") == p and p.stat().st_mtime_ns == mtime
    assert synthetic_cache_key(d, "train") != synthetic_cache_key(_cfg(window_us=50_000), "train")
    tr = SyntheticFrames(d, "train")
    te = SyntheticFrames(d, "test")
    assert tr.frames.shape == (12, 4, 2, 32, 32) and list(tr.labels) == list(range(12))
    assert not set(tr.seeds) & set(te.seeds)
    _check_item(tr, 12)
    # augmentation is a function of (seed, epoch, index): a fresh dataset (no shared state,
    # nothing cached by an earlier call) gives the same item; another epoch another one
    a, fresh = tr[5], SyntheticFrames(d, "train")
    b = fresh[5]
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    epoch0 = [tr[i][0] for i in range(len(tr))]
    tr.set_epoch(1)
    assert any(not torch.equal(tr[i][0], x) for i, x in enumerate(epoch0))
    tr.set_epoch(0)
    assert all(torch.equal(tr[i][0], x) for i, x in enumerate(epoch0))
    # the test split is not augmented: every epoch gives the same, centred item
    t5 = te[5][0]
    te.set_epoch(3)
    assert torch.equal(te[5][0], t5) and torch.equal(SyntheticFrames(d, "test")[5][0], t5)


def _npz_tree(root):
    from eventpipe.io.plain import write_npz

    lines = {"train": [], "test": []}
    for c in range(3):
        d = root / f"action_{c:03d}"
        d.mkdir(parents=True)
        for k, split in enumerate(("train", "train", "test")):
            write_npz(d / f"s{k}.npz", tiny_events(seed=10 * c + k, W=346, H=260), sensor_size=(346, 260))
            lines[split].append(f"action_{c:03d}/s{k}.npz {c}")
    for split, ls in lines.items():
        (root / f"{split}_label.txt").write_text("\n".join(ls) + "\n")


def test_hardvs_layout(tmp_path):
    _npz_tree(tmp_path)
    d = _cfg(dataset="hardvs", root=str(tmp_path), class_names=["a", "b", "c"])
    tr = build_dataset(d, "train")
    te = build_dataset(d, "test")
    assert len(tr) == 6 and len(te) == 3 and sorted(set(te.labels.tolist())) == [0, 1, 2]
    _check_item(tr, 3)
    _check_item(te, 3)


def test_gesture_aedat_layout(tmp_path):
    from eventpipe.io.aedat3 import encode_aedat31, write_gesture_labels

    for user in (1, 2, 25):
        ev = tiny_events(n=3000, W=128, H=128, t_end=2_000_000, seed=user)
        f = tmp_path / f"user{user:02d}_led.aedat"
        f.write_bytes(encode_aedat31(ev, "DVS128"))
        write_gesture_labels([(1, 0, 900_000), (3, 1_000_000, 1_900_000)],
                             tmp_path / f"user{user:02d}_led_labels.csv")
    d = _cfg(dataset="gesture", root=str(tmp_path))
    tr = build_dataset(d, "train")
    te = build_dataset(d, "test")
    assert len(tr) == 4 and len(te) == 2
    assert tr.labels.tolist() == [0, 2, 0, 2]
    assert tr.class_names == GESTURE_CLASSES
    _check_item(te, 11)
    # trials_to_<split>.txt overrides the user split
    (tmp_path / "trials_to_train.txt").write_text("user25_led.aedat\n")
    assert len(build_dataset(d, "train")) == 2


def test_gesture_tonic_npy_layout(tmp_path):
    for split, users in (("ibmGestureTrain", ("user01_led", "user02_led")), ("ibmGestureTest", ("user24_led",))):
        for u in users:
            d = tmp_path / split / u
            d.mkdir(parents=True)
            for lab in (0, 4):
                ev = tiny_events(n=1500, W=128, H=128, t_end=900_000, seed=lab)
                arr = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] / 1000.0], 1).astype(np.float64)
                np.save(d / f"{lab}.npy", arr)
    d = _cfg(dataset="gesture_npy", root=str(tmp_path))
    tr = build_dataset(d, "train")
    te = build_dataset(d, "test")
    assert len(tr) == 4 and len(te) == 2 and sorted(te.labels.tolist()) == [0, 4]
    _check_item(tr, 11)


def test_folder_layout(tmp_path):
    from eventpipe.io.plain import write_npy, write_npz

    for ci, name in enumerate(("clap", "push", "wave")):
        (tmp_path / name).mkdir()
        for k in range(5):
            ev = tiny_events(seed=ci * 10 + k)
            if k % 2:
                write_npy(tmp_path / name / f"r{k}.npy", ev)  # structured .npy, size inferred
            else:
                write_npz(tmp_path / name / f"r{k}.npz", ev, sensor_size=(64, 48))
    d = _cfg(dataset="folder", root=str(tmp_path), test_fraction=0.4)
    tr = build_dataset(d, "train")
    te = build_dataset(d, "test")
    assert tr.class_names == ["clap", "push", "wave"]
    assert len(tr) == 9 and len(te) == 6
    _check_item(tr, 3)
    _check_item(te, 3)
    # explicit split folders win
    for split in ("train", "test"):
        (tmp_path / "split" / split / "a").mkdir(parents=True)
        write_npz(tmp_path / "split" / split / "a" / "x.npz", tiny_events(), sensor_size=(64, 48))
    assert len(build_dataset(_cfg(dataset="folder", root=str(tmp_path / "split")), "test")) == 1


def test_event_augmentation_changes_train_not_test(tmp_path):
    _npz_tree(tmp_path)
    d = _cfg(dataset="hardvs", root=str(tmp_path), class_names=["a", "b", "c"])
    tr = build_dataset(d, "train")
    ev_tr = build_dataset(d, "train", train=False)
    x0 = ev_tr[0][0]
    ev_tr.set_epoch(4)  # without train, the epoch changes nothing
    assert torch.equal(ev_tr[0][0], x0)
    assert torch.equal(build_dataset(d, "train", train=False)[0][0], x0)
    assert not torch.equal(tr[0][0], ev_tr[0][0])
    x1 = tr[0][0]
    tr.set_epoch(1)
    assert not torch.equal(tr[0][0], x1)


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_dataset(_cfg(dataset="folder", root=str(tmp_path)), "train")


def test_halves_channels_and_model_frames(tmp_path):
    ev = tiny_events(W=20, H=10, t_end=400_000, seed=3)
    r = InputRecipe(size=(20, 10), window_us=100_000, channels="halves", clip_count=255,
                    pooling="mean", normalisation="log1p")
    fr = sensor_counts(r, ev, (20, 10), t0=0, n_windows=2)          # 4 half-windows
    assert fr.shape == (4, 2, 10, 20)
    h = model_counts(r, fr, (20, 10))
    assert h.shape == (2, 2, 10, 20)
    assert np.array_equal(h[1, 0], fr[2].sum(0)) and np.array_equal(h[1, 1], fr[3].sum(0))
    x = apply(r, ev, (20, 10), t0=0, n_windows=2)
    assert torch.equal(x, torch.log1p(torch.from_numpy(h.astype(np.float32))))
    # the dataset's evaluation item is the recipe applied at the centred start
    _npz_tree(tmp_path)
    d = _cfg(dataset="hardvs", root=str(tmp_path), class_names=["a", "b", "c"], channels="halves")
    te = build_dataset(d, "test")
    from eventpipe.io import read_events

    ev = read_events(tmp_path / "action_000" / "s2.npz")  # test item 0
    t_first, t_last = int(ev["t"].min()), int(ev["t"].max())
    t0 = t_first + max(0, (t_last - t_first - 300_000) // 2)
    assert torch.equal(te[0][0], apply(data_recipe(d), ev, (346, 260), t0=t0, n_windows=3))
    # the synthetic cache of a "halves" config bins half windows
    ds = SyntheticFrames(_cfg(dataset="synthetic", cache_dir=str(tmp_path / "c"), n_per_class=1, n_test_per_class=1,
                              sensor_size=(32, 32), duration_us=400_000, channels="halves"), "test")
    assert ds.frames.shape[1] == 8 and tuple(ds[0][0].shape) == (3, 2, 16, 16)


def test_synthetic_halves_at_half_window_stride(tmp_path):
    """``halves`` every 50 ms: the cache holds n + 1 half windows for n windows and the
    evaluation item is the centred run of T overlapping windows of the clip's events."""
    from eventpipe.synthetic import CLASS_NAMES, clip_seed, make_clip

    d = _cfg(dataset="synthetic", cache_dir=str(tmp_path / "c"), n_per_class=1, n_test_per_class=1,
             sensor_size=(32, 32), duration_us=400_000, channels="halves", stride_us=50_000)
    ds = SyntheticFrames(d, "test")
    assert ds.frames.shape[1] == 8                        # 7 windows of 100 ms every 50 ms in 0.4 s
    x, y = ds[0]
    ev = make_clip(CLASS_NAMES[0], clip_seed(0, "test", 0), sensor_size=(32, 32), duration_us=400_000)
    want = apply(data_recipe(d), ev, (32, 32), t0=0, n_windows=7)[2:5]   # centred 3 of 7
    assert y == 0 and torch.equal(x, want)
    assert torch.equal(x[1:, 0], x[:-1, 1])               # each half is in two windows
    tr = SyntheticFrames(d, "train")
    assert tuple(tr[0][0].shape) == (3, 2, 16, 16)
