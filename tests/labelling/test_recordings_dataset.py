"""``dataset = "recordings"`` (``train --data DIR``): takes found by their labels files,
classes from the labels, the held-out split by take, clips from the segments only."""

import io
import json

import torch

from eventpipe.cli import main
from eventpipe.represent import apply
from eventpipe.training.config import DataConfig, data_recipe
from eventpipe.training.datasets import build_dataset
from eventpipe.training.recordings import find_takes
from recorders.reader import open_recording
from tests.labelling.conftest import write_recording

T, STRIDE, WINDOW = 2, 50_000, 100_000
SPAN = (T - 1) * STRIDE + WINDOW   # 150 ms per clip


def take(d, name, text, seconds=3.0, seed=0):
    d.mkdir(parents=True, exist_ok=True)
    write_recording(d / f"{name}.h5", seconds=seconds, seed=seed)
    (d / f"{name}.labels.csv").write_text("start_s,end_s,label\n" + text)


def cfg(root, **kw):
    return DataConfig(dataset="recordings", root=str(root), T=T, window_us=WINDOW,
                      stride_us=STRIDE, input_size=(16, 16), **kw)


def test_classes_split_by_take_and_clips_per_segment(tmp_path):
    take(tmp_path, "a", "0,1,wave\n1.5,2.1,clap\n", seed=1)        # 6 + 4 clips
    take(tmp_path, "b", "0.2,0.3,push\n", seed=2)                  # shorter than a clip: 1
    take(tmp_path, "c", "0,3,wave\n", seed=3)                      # 20 clips
    assert [t.name for t in find_takes(tmp_path)] == ["a", "b", "c"]
    d = cfg(tmp_path, test_takes=["c"])
    tr, te = build_dataset(d, "train"), build_dataset(d, "test", train=False)
    assert tr.class_names == te.class_names == ["clap", "push", "wave"]   # sorted
    assert tr.takes == ["a", "b"] and te.takes == ["c"]
    assert sorted(tr.labels.tolist()) == [0] * 4 + [1] + [2] * 6
    assert te.labels.tolist() == [2] * 20
    # the seeded fraction: one take of three held out, the same one every time
    for k in range(3):
        take(tmp_path / "frac", f"t{k}", "0,1,wave\n1,2,clap\n", seed=k)
    d2 = cfg(tmp_path / "frac", test_fraction=0.2, seed=5)
    held = build_dataset(d2, "test", train=False).takes
    assert len(held) == 1 and build_dataset(d2, "test", train=False).takes == held
    assert sorted(build_dataset(d2, "train").takes + held) == ["t0", "t1", "t2"]
    # given class names fix the order
    d3 = cfg(tmp_path, test_takes=["c"], class_names=["wave", "clap", "push"])
    assert build_dataset(d3, "test", train=False).labels.tolist() == [0] * 20


def test_train_and_test_folders_and_other_formats(tmp_path):
    from eventpipe.io.plain import write_npz

    take(tmp_path / "train", "x", "0,1,a\n1,2,b\n")
    (tmp_path / "test").mkdir()
    with open_recording(tmp_path / "train" / "x.h5") as rec:       # the same events as .npz
        write_npz(tmp_path / "test" / "y.npz", rec.events(), sensor_size=(48, 32))
    (tmp_path / "test" / "y.labels.csv").write_text("start_s,end_s,label\n0,1,b\n1,2,a\n")
    d = cfg(tmp_path)
    assert build_dataset(d, "train").takes == ["train/x"]
    te = build_dataset(d, "test", train=False)
    assert te.takes == ["test/y"] and te.labels.tolist() == [1] * 6 + [0] * 6
    # the same segment of the same events gives the same clip from either format
    te_x = build_dataset(cfg(tmp_path, test_takes=["train/x"]), "test", train=False)
    torch.testing.assert_close(te[0][0], te_x[0][0])   # 0-1 s in both


def test_held_out_clips_tile_the_segment_exactly(tmp_path):
    take(tmp_path, "a", "0,1,wave\n")
    take(tmp_path, "b", "0.5,0.9,clap\n1,1.3,wave\n", seed=9)
    d = cfg(tmp_path, test_takes=["b"])
    te = build_dataset(d, "test", train=False)
    recipe = data_recipe(d)
    with open_recording(tmp_path / "b.h5") as rec:
        t_first = rec.info.t_first
        ev = rec.events()
    # clap 0.5-0.9 s: two clips (0.5-0.65, 0.65-0.8), wave 1-1.3 s: two clips
    starts = [(0.5, 0.65, 0), (0.65, 0.8, 0), (1.0, 1.15, 1), (1.15, 1.3, 1)]
    assert len(te) == 4
    for i, (a, b, lab) in enumerate(starts):
        a_us, b_us = t_first + int(a * 1e6), t_first + int(b * 1e6)
        mine = ev[(ev["t"] >= a_us) & (ev["t"] < b_us)]
        t0 = int(mine["t"].min()) + max(0, (int(mine["t"].max()) - int(mine["t"].min()) - SPAN) // 2)
        x, y = te[i]
        assert y == lab
        torch.testing.assert_close(x, apply(recipe, mine, (48, 32), t0=t0, n_windows=T))


def test_training_clips_stay_inside_their_segment(tmp_path):
    take(tmp_path, "a", "1,1.5,wave\n2,2.15,clap\n")    # (two classes at least)
    take(tmp_path, "b", "0,1,wave\n", seed=2)
    d = cfg(tmp_path, test_takes=["b"])
    d.augment.enabled = False
    tr = build_dataset(d, "train")
    assert len(tr) == 3 + 1   # 0.5 s / 150 ms, and the clap
    with open_recording(tmp_path / "a.h5") as rec:
        t_first = rec.info.t_first
    for epoch in range(3):
        tr.set_epoch(epoch)
        ev, _ = tr.items[0][0]()
        assert ev["t"].min() >= t_first + 1_000_000 and ev["t"].max() < t_first + 1_500_000


def test_train_data_flag_means_recordings_and_runs_dir(tmp_path):
    take(tmp_path / "mytakes", "a", "0,1,wave\n")
    out = io.StringIO()
    rc = main(["train", "--data", str(tmp_path / "mytakes"), "--print-config"], out=out,
              err=io.StringIO())
    assert rc == 0
    c = json.loads(out.getvalue())
    assert c["data"]["dataset"] == "recordings" and c["data"]["root"] == str(tmp_path / "mytakes")
    assert c["out_dir"] == "runs/mytakes"
    out = io.StringIO()
    main(["train", "--data", str(tmp_path / "mytakes"), "--set", "out_dir='elsewhere'",
          "--print-config"], out=out, err=io.StringIO())
    assert json.loads(out.getvalue())["out_dir"] == "elsewhere"
    out = io.StringIO()
    main(["train", "--data", str(tmp_path / "mytakes"), "--set",
          "data.dataset='recordings_stream'", "--print-config"], out=out, err=io.StringIO())
    assert json.loads(out.getvalue())["data"]["dataset"] == "recordings_stream"
