"""``dataset = "recordings_stream"``: a take's windows are the runtime windower's, each
window's target is the segment holding its end (IGNORE outside segments and in the burn-in),
and it trains through the one training path with per-window targets."""

import io

import numpy as np
import torch

import snn
from eventpipe.cli import main
from eventpipe.labelling.files import Segment, label_at
from eventpipe.represent import StreamingInput, normalise
from eventpipe.training.config import DataConfig, data_recipe
from eventpipe.training.datasets import build_dataset
from eventpipe.training.stream_data import IGNORE
from recorders.reader import open_recording
from tests.labelling.conftest import write_recording
from tests.training.conftest import tiny_overrides

SEGS = "start_s,end_s,label\n0.2,1.0,wave\n1.0,1.6,clap\n"


def takes(root):
    root.mkdir()
    for k in range(2):
        write_recording(root / f"t{k}.h5", seconds=2.0, seed=k)
        (root / f"t{k}.labels.csv").write_text(SEGS)
    return root


def cfg(root, **kw):
    return DataConfig(dataset="recordings_stream", root=str(root), window_us=100_000,
                      stride_us=50_000, input_size=(16, 16), run_windows=8, burn_in=2,
                      test_takes=["t1"], **kw)


def test_windows_and_targets_are_the_runtimes(tmp_path):
    root = takes(tmp_path / "d")
    d = cfg(root)
    te = build_dataset(d, "test", train=False)
    assert te.class_names == ["clap", "wave"] and te.takes == ["t1"]
    with open_recording(root / "t1.h5") as rec:
        ev, t0 = rec.events(), rec.info.t_first
    recipe = data_recipe(d)
    win = StreamingInput(recipe, (48, 32))          # the whole take in one packet
    counts, ends = win.push(ev)
    while win.pending:
        more, e = win.more()
        counts, ends = np.concatenate([counts, more]), ends + e
    segs = [Segment(0.2, 1.0, "wave"), Segment(1.0, 1.6, "clap")]
    want_y = [{"wave": 1, "clap": 0, None: IGNORE}[label_at(segs, (e - 1 - t0) / 1e6)]
              for e in ends]
    assert len(te) == len(ends) // 8 and len(ends) >= 32
    for i in range(len(te)):
        x, y, w = te[i]
        sl = slice(8 * i, 8 * i + 8)
        torch.testing.assert_close(x, normalise(recipe, counts[sl].astype(np.float32), win.scale))
        yy = list(want_y[sl])
        yy[:2] = [IGNORE, IGNORE]
        assert y.tolist() == yy and w.tolist() == [1.0] * 8
    assert {IGNORE, 0, 1} <= set(te.truth.tolist())


def test_trains_with_per_window_targets(tmp_path):
    root = takes(tmp_path / "d")
    ov = tiny_overrides(tmp_path, **{"data.dataset": "recordings_stream", "data.root": str(root),
                                     "data.stride_us": 50_000, "data.run_windows": 8,
                                     "data.burn_in": 2, "data.clips_per_stream": 3,
                                     "data.test_takes": ["t1"], "optim.batch_size": 3})
    err = io.StringIO()
    rc = main(["train", *sum((["--set", o] for o in ov), [])], out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    _, meta = snn.load_checkpoint(tmp_path / "run" / "final.pt")
    assert meta["class_names"] == ["clap", "wave"] and meta["extra"]["dataset"] == "recordings_stream"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "train 3 test" in log   # 3 runs of the one training take
