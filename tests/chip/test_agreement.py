"""The chip follows the float model: labels on synthetic test clips, spikes layer by layer."""

import numpy as np
import pytest

import snn
from snn.backends.chip.agreement import Agreement

from .conftest import SHIPPED

pytestmark = pytest.mark.timeout(900)


def test_clip_labels_and_spikes_agree(shipped_program):
    from eventpipe.runtime.chip_counts import count_clips

    model, _ = snn.load_checkpoint(SHIPPED)
    clips = count_clips(12, seed=0, split="test")          # one clip per class
    a = Agreement(shipped_program, model)
    a.clips([c[:, None] for c in clips])
    assert a.labels == 12
    assert a.top1 >= 11 / 12
    per = a.per_layer()
    assert len(per) == sum(op.kind == "lif" for op in shipped_program.ops)
    # quantisation flips few spikes in the first layers; divergence grows with depth but stays small
    assert per["ConvBlock1_1.0.Conv.lif1"] > 0.99
    assert min(per.values()) > 0.8


def test_stream_spikes_agree(shipped_program, stream_frames):
    model, _ = snn.load_checkpoint(SHIPPED)
    b = Agreement(shipped_program, model)
    b.stream(stream_frames[:20].astype(np.int32))
    assert b.labels == 20
    per = b.per_layer()
    assert per["ConvBlock1_1.0.Conv.lif1"] > 0.99 and min(per.values()) > 0.8
