"""The whole "teach it your own actions" path (docs/own_actions.md) on emulator-made takes:

1. record: the test renders six 6-s videos of moving shapes (tests/labelling/shapes.py:
   ``horizontal``, ``vertical``, ``blink``, 2 s each, in a different order per take) and
   records each with ``eventpipe record video:TAKE.avi TAKE.h5`` (the DVS emulator);
2. label: a labels file per take, one of them made by keys through the label window's
   state machine;
3. train: ``eventpipe train --data DIR`` (a tiny model, 6 epochs, seeded; takes 4 and 5
   held out);
4. run: ``eventpipe eval --stream TAKE.h5`` on both held-out takes: window accuracy
   >= 0.75 on each (chance: 1/3) and every switch caught within 0.5 s; and
   ``eventpipe run --model best.pt --source video:TAKE.avi`` labels the video live.
"""

import io
import itertools
import json

import pytest

from eventpipe.cli import main
from eventpipe.labelling.files import Segment, read_labels, write_labels
from eventpipe.labelling.state import SAVE, LabelState
from recorders.reader import open_recording
from tests.labelling.shapes import CLASSES, render_take

pytestmark = pytest.mark.timeout(600)

TINY = ["--set", "progress=false", "--set", "data.T=4", "--set", "data.stride_us=50000",
        "--set", "data.input_size=[32, 32]", "--set", "data.pooling='sum'",
        "--set", "model.embed_dims=[8, 16, 32, 32]", "--set", "model.num_heads=2",
        "--set", "model.mlp_ratio=1", "--set", "model.conv_mlp_ratio=1",
        "--set", "model.extra={v_threshold = 0.1, sep_kernel = 3}",
        "--set", "optim.batch_size=8", "--set", "optim.epochs=6", "--set", "optim.lr=5e-3",
        "--set", "optim.warmup_epochs=0.5", "--set", "optim.clip_grad=0",
        "--set", "data.test_takes=['take4', 'take5']"]


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = main([str(a) for a in argv], out=out, err=err)
    assert rc == 0, err.getvalue()
    return out.getvalue()


def span(h5):
    with open_recording(h5) as rec:
        return rec.info.t_first, rec.info.t_last


def labels_by_keys(duration_us, order):
    """Label a take 2 s per segment as a person would in ``eventpipe label``: pick the
    class (1-3), space, two 1-s seeks, space; s saves."""
    state = LabelState(duration_us, CLASSES)
    for i, cls in enumerate(order):
        state.handle(str(CLASSES.index(cls) + 1))
        state.handle("space")
        for _ in range(2):
            state.handle("right")
        state.handle("space")
    assert state.handle("s") == SAVE
    return state.segments


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    data, videos = root / "data", root / "videos"
    data.mkdir()
    videos.mkdir()
    orders = list(itertools.permutations(CLASSES))
    for k, order in enumerate(orders):
        truth = render_take(videos / f"take{k}.avi", [(c, 2.0) for c in order], seed=k)
        h5 = data / f"take{k}.h5"
        cli("record", f"video:{videos}/take{k}.avi", h5)
        t_first, t_last = span(h5)
        duration_s = (t_last - t_first) / 1e6
        if k == 0:
            segs = labels_by_keys(t_last - t_first, order)
        else:  # video time -> seconds after the first event, the last cut at the end
            segs = [Segment(max(0.0, a - t_first / 1e6), min(duration_s, b - t_first / 1e6), c)
                    for a, b, c in truth]
        write_labels(data / f"take{k}.labels.csv", segs)
    return root


def test_teach_it_your_own_actions(takes, tmp_path):
    data = takes / "data"
    t_first, t_last = span(data / "take0.h5")
    # the keys made 2-s segments, the last one cut at the recording's end by the seek
    assert read_labels(data / "take0.labels.csv") == [
        Segment(0.0, 2.0, CLASSES[0]), Segment(2.0, 4.0, CLASSES[1]),
        Segment(4.0, (t_last - t_first) / 1e6, CLASSES[2])]
    out_dir = tmp_path / "run"
    log = cli("train", "--data", data, "--out-dir", out_dir, *TINY)
    assert "classes 3 | train 89 test 44" in log  # takes 0-3: 12 segments x 7-8 clips
    for f in ("best.pt", "final.pt", "curves.png", "history.json", "train.log"):
        assert (out_dir / f).is_file(), f
    history = json.loads((out_dir / "history.json").read_text())
    assert len(history) == 6
    best = out_dir / "best.pt"
    for k in (4, 5):
        res_path = tmp_path / f"eval{k}.json"
        line = cli("eval", best, "--stream", data / f"take{k}.h5", "--json-out", res_path)
        res = json.loads(res_path.read_text())
        print(f"take{k}: {line.strip()}")  # the figures docs/own_actions.md quotes (pytest -s)
        assert res["windows"] >= 110 and res["switches"] == 2, line
        assert res["window_accuracy"] >= 0.75, line
        assert res["switches_caught"] == 2, line
        assert f"window accuracy {res['window_accuracy']:.4f}" in line
    # run: the same model on the video itself, through the emulator (as camera:0 would be)
    jsonl = tmp_path / "labels.jsonl"
    cli("run", "--model", best, "--source", f"video:{takes}/videos/take4.avi", "--max-speed",
        "--quiet", "--jsonl", jsonl, "--set", "decoder.emit_every=1")
    msgs = [json.loads(x) for x in jsonl.read_text().splitlines() if x]
    labels = [m["label"] for m in msgs if m.get("type", "label") == "label"]
    assert len(labels) >= 100 and set(labels) <= set(CLASSES) and len(set(labels)) == 3
