"""HAR-DVS, DVS128 Gesture (original aedat) and tonic's DVS Gesture npy layouts, generated
in their real on-disk layouts: every held-out item is the recipe applied to exactly the
sample's events (its centred clip), with the right label, and each layout trains through
the one training path (``eventpipe train``) into a checkpoint with the right classes."""

import io

import numpy as np
import pytest
import torch

import snn
from eventpipe.cli import main
from eventpipe.represent import apply
from eventpipe.training.config import DataConfig, data_recipe
from eventpipe.training.datasets import GESTURE_CLASSES, build_dataset

from .conftest import tiny_events, tiny_overrides

T, WINDOW = 3, 100_000


def cfg(**kw):
    return DataConfig(T=T, window_us=WINDOW, input_size=(16, 16), **kw)


def centred(recipe, ev, size):
    span = (T - 1) * recipe.stride + recipe.window_us
    t = ev["t"]
    t0 = int(t.min()) + max(0, (int(t.max()) - int(t.min()) - span) // 2)
    return apply(recipe, ev, size, t0=t0, n_windows=T)


def hardvs_tree(root):
    """``action_XXX/<sample>.npz`` (t, x, y, p arrays; DAVIS346) + train/val/test lists."""
    lists = {"train": [], "val": [], "test": []}
    truth = {}
    for c in (0, 7, 299):
        d = root / f"action_{c:03d}"
        d.mkdir(parents=True)
        for k, split in enumerate(("train", "train", "val", "test")):
            ev = tiny_events(n=3000, seed=c * 10 + k, W=346, H=260, t_end=900_000)
            p = np.where(ev["p"] == 1, 1, -1).astype(np.int8)      # HAR-DVS writes -1/1
            np.savez(d / f"{c}_{k}.npz", t=ev["t"], x=ev["x"], y=ev["y"], p=p)
            lists[split].append(f"action_{c:03d}/{c}_{k}.npz {c}")
            truth[(split, len(lists[split]) - 1)] = (ev, c)
    for split, lines in lists.items():
        (root / f"{split}_label.txt").write_text("\n".join(lines) + "\n")
    return truth


def test_hardvs_items_are_the_samples(tmp_path):
    truth = hardvs_tree(tmp_path)
    d = cfg(dataset="hardvs", root=str(tmp_path))
    recipe = data_recipe(d)
    for split in ("test", "val"):
        ds = build_dataset(cfg(dataset="hardvs", root=str(tmp_path), test_split=split),
                           "test", train=False)
        assert len(ds.class_names) == 300 and ds.class_names[299] == "action_299"
        assert len(ds) == 3
        for i in range(3):
            ev, c = truth[(split, i)]
            x, y = ds[i]
            assert y == c
            torch.testing.assert_close(x, centred(recipe, ev, (346, 260)))
    assert len(build_dataset(d, "train")) == 6


def gesture_tree(root):
    """``DvsGesture/userXX_<light>.aedat`` + ``_labels.csv`` + ``trials_to_*.txt``."""
    from eventpipe.io.aedat3 import encode_aedat31, write_gesture_labels

    base = root / "DvsGesture"
    base.mkdir()
    truth = {}
    for user, light in ((1, "fluorescent"), (2, "led"), (24, "natural")):
        ev = tiny_events(n=6000, W=128, H=128, t_end=3_000_000, seed=user)
        name = f"user{user:02d}_{light}"
        (base / f"{name}.aedat").write_bytes(encode_aedat31(ev, "DVS128"))
        rows = [(1, 100_000, 1_000_000), (11, 1_200_000, 2_000_000), (4, 2_100_000, 2_900_000)]
        write_gesture_labels(rows, base / f"{name}_labels.csv")
        truth[name] = [(lab - 1, ev[(ev["t"] >= a) & (ev["t"] < b)]) for lab, a, b in rows]
    (base / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser02_led.aedat\n")
    (base / "trials_to_test.txt").write_text("user24_natural.aedat\n")
    return base, truth


def test_gesture_items_are_the_labelled_segments(tmp_path):
    base, truth = gesture_tree(tmp_path)
    d = cfg(dataset="gesture", root=str(tmp_path))
    recipe = data_recipe(d)
    te = build_dataset(d, "test", train=False)
    assert te.class_names == GESTURE_CLASSES and len(te) == 3
    for i, (lab, ev) in enumerate(truth["user24_natural"]):
        x, y = te[i]
        assert y == lab
        torch.testing.assert_close(x, centred(recipe, ev, (128, 128)))
    assert build_dataset(d, "train").labels.tolist() == [0, 10, 3, 0, 10, 3]


def gesture_npy_tree(root):
    """tonic: ``ibmGestureTrain|Test/<user_light>/<label>.npy``, (N, 4) x, y, p, t in ms."""
    truth = {}
    for split, users in (("ibmGestureTrain", ("user01_fluorescent", "user02_led")),
                         ("ibmGestureTest", ("user24_led",))):
        for u in users:
            d = root / split / u
            d.mkdir(parents=True)
            for lab in (0, 10):
                ev = tiny_events(n=2000, W=128, H=128, t_end=900_000, seed=lab + len(u))
                ev["t"] = ev["t"] // 1000 * 1000  # whole ms: what the ms column can hold
                arr = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] / 1000.0], 1)
                np.save(d / f"{lab}.npy", arr)
                truth[(split, u, lab)] = ev
    return truth


def test_gesture_npy_items_are_the_files(tmp_path):
    truth = gesture_npy_tree(tmp_path)
    d = cfg(dataset="gesture_npy", root=str(tmp_path))
    recipe = data_recipe(d)
    te = build_dataset(d, "test", train=False)
    assert len(te) == 2
    for i, lab in enumerate((0, 10)):
        x, y = te[i]
        assert y == lab
        torch.testing.assert_close(x, centred(recipe, truth[("ibmGestureTest", "user24_led", lab)],
                                              (128, 128)))
    assert len(build_dataset(d, "train")) == 4


@pytest.mark.parametrize("layout", ["hardvs", "gesture", "gesture_npy"])
def test_each_layout_trains_through_eventpipe_train(tmp_path, layout):
    root = tmp_path / "data"
    root.mkdir()
    {"hardvs": hardvs_tree, "gesture": gesture_tree, "gesture_npy": gesture_npy_tree}[layout](root)
    ov = tiny_overrides(tmp_path, **{"data.dataset": layout, "data.root": str(root),
                                     "max_steps": 1, "data.T": T})
    err = io.StringIO()
    rc = main(["train", *sum((["--set", o] for o in ov), [])], out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    _, meta = snn.load_checkpoint(tmp_path / "run" / "final.pt")
    want = [f"action_{i:03d}" for i in range(300)] if layout == "hardvs" else GESTURE_CLASSES
    assert meta["class_names"] == want
    assert meta["extra"]["dataset"] == layout
