"""Synthetic clips for calibration and the chip report are made a batch at a time
(``eventpipe.runtime.chip_counts.ClipBatches``): the same clips, the same program and the same
counts as one batch of all of them, with memory bounded by the batch, not by ``--calibration`` /
``--clips`` (before, ``chip compile --calibration N`` held N clips and ran them as one batch:
a large N was 'out of memory', exit 1)."""

import hashlib
import json

import numpy as np

import snn.chip
from eventpipe.runtime.chip_counts import ClipBatches, count_clips

CKPT = "snn/weights/meta_spikeformer_tiny_synthetic.pt"
KW = dict(seed=3, split="train", sensor_size=(128, 128), input_size=(64, 64), T=8, clip=255, channels="halves")


def _digest(prog) -> str:
    h = hashlib.sha256(json.dumps(prog.to_json(), sort_keys=True).encode())
    for op in prog.ops:
        for k in sorted(op.arrays):
            h.update(np.ascontiguousarray(op.arrays[k]).tobytes())
    return h.hexdigest()


def test_batches_are_the_clips_of_one_call():
    whole = count_clips(11, **KW)
    parts = list(ClipBatches(11, batch=4, **KW))
    assert [p.shape[1] for p in parts] == [4, 4, 3] and len(ClipBatches(11, batch=4, **KW)) == 3
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole.transpose(1, 0, 2, 3, 4))
    again = list(ClipBatches(11, batch=4, **KW))  # iterable again: the same clips
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_calibration_in_batches_compiles_the_same_program():
    one = snn.chip.compile(CKPT, profile="generic", calibration=[count_clips(6, **KW).transpose(1, 0, 2, 3, 4)])
    parts = snn.chip.compile(CKPT, profile="generic", calibration=ClipBatches(6, batch=4, **KW))
    assert _digest(one) == _digest(parts)
    other = snn.chip.compile(CKPT, profile="generic", calibration=ClipBatches(6, batch=4, **dict(KW, seed=4)))
    assert _digest(other) != _digest(one)  # the control: other clips, another program


def test_report_over_batches_counts_as_one_batch():
    prog = snn.chip.compile(CKPT)
    frames = count_clips(3, **dict(KW, split="test")).transpose(1, 0, 2, 3, 4)
    one = prog.report(frames).to_dict()
    parts = prog.report(ClipBatches(3, batch=2, **dict(KW, split="test"))).to_dict()
    assert one["per_step"] == parts["per_step"]
    assert prog.report(list(frames)).to_dict()["per_step"] == one["per_step"]  # a list of steps: one run
    assert [r.get("step") for r in one["layers"]] == [r.get("step") for r in parts["layers"]]


def test_many_clips_show_a_progress_bar(capsys, monkeypatch):
    """From ClipBatches.PROGRESS_FROM clips on (256; here lowered to 3) a bar on stderr counts
    them; fewer say nothing."""
    assert ClipBatches.PROGRESS_FROM == 256  # docs/chip.md
    list(ClipBatches(2, batch=2, **KW))
    assert "synthetic clips" not in capsys.readouterr().err
    monkeypatch.setattr(ClipBatches, "PROGRESS_FROM", 3)
    list(ClipBatches(3, batch=2, **KW))
    err = capsys.readouterr().err
    assert "synthetic clips" in err and "3/3" in err, err
