"""Folded (cpu backend, and plain fold_model) vs unfolded top-1 on the shipped model, over a short
seeded synthetic stream as the runtime would feed it (benchmarks/fold_agreement.py measures more)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import snn

WEIGHTS = Path(__file__).resolve().parents[2] / "snn" / "weights" / "meta_spikeformer_tiny_synthetic.pt"


def _stream_frames(meta, seed=0, seconds=2.5):
    from eventpipe.represent import apply, recipe_from_checkpoint
    from eventpipe.synthetic import SyntheticStream

    recipe = recipe_from_checkpoint(meta)
    sensor = tuple(meta["extra"]["sensor_size"])
    ev = np.concatenate([p.events for p in SyntheticStream(seed=seed, sensor_size=sensor, duration_s=seconds,
                                                           switch_every_s=1.0, packet_us=50_000)])
    n = (int(seconds * 1e6) - recipe.window_us) // recipe.stride_us + 1
    return apply(recipe, ev, sensor, t0=0, n_windows=n)[:, None]  # [steps, 1, C, H, W]


def _top1(stepper, frames):
    out, state = [], None
    with torch.no_grad():
        for x in frames:
            logits, state = stepper.step(x, state)
            out.append(logits)
    return torch.cat(out)  # [steps, classes]


def test_folded_top1_equals_unfolded_on_the_shipped_model():
    model, meta = snn.load_checkpoint(WEIGHTS)
    frames = _stream_frames(meta)
    assert frames.shape[0] == 49 and frames.abs().sum() > 0
    exact = _top1(snn.make_stepper(model, "float"), frames)
    classes = exact.argmax(-1)
    assert len(set(classes.tolist())) >= 2  # the stream switches class: the check is not vacuous
    # the cpu backend (the runtime's folded path) agrees step for step
    assert torch.equal(_top1(snn.make_stepper(model, "cpu"), frames).argmax(-1), classes)
    # plain fold_model rounds differently again; a spike at its threshold can flip and carry on
    # for a few steps (docs/model.md, "How exact is folding"): the stage-3 weights agree on 45
    # of these 49 steps (seeds 1, 2: 49), the stage-2 weights on 49 (seed 2: 47)
    agree = int((_top1(snn.fold_model(model), frames).argmax(-1) == classes).sum())
    assert agree >= 44, f"fold_model agrees with the unfolded model on {agree}/49 steps"
