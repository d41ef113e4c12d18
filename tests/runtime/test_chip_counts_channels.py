"""The chip's count frames follow the checkpoint's channels: a ``halves`` model is calibrated and
checked on half-window counts, not on OFF/ON counts (eventpipe.runtime.chip_counts)."""

import numpy as np

from eventpipe.runtime.chip_counts import count_clips, count_stream


def test_halves_clips_hold_the_same_events_split_by_time_not_polarity():
    kw = dict(seed=0, split="train", sensor_size=(64, 64), input_size=(32, 32), T=4, clip=32767)
    pol = count_clips(2, **kw).astype(np.int64)
    hal = count_clips(2, channels="halves", **kw).astype(np.int64)
    assert pol.shape == hal.shape == (2, 4, 2, 32, 32)
    # every window's events are all there in both (no pooled pixel saturates at 32767) ...
    assert np.array_equal(pol.sum(2), hal.sum(2)) and pol.sum() > 1000
    # ... but split differently: the channels are not OFF/ON
    assert not np.array_equal(pol, hal)


def test_overlapping_halves_stream_windows_share_a_half():
    counts, truth = count_stream(20000, seconds=1.0, sensor_size=(64, 64), input_size=(32, 32),
                                 channels="halves")
    assert len(counts) == len(truth) == 18              # 100 ms windows every 50 ms in 1 s
    assert np.array_equal(counts[1:, 0], counts[:-1, 1]) and counts.sum() > 0


def test_fine_tune_data_and_tools_take_the_checkpoints_channels():
    """What the chip tools read from a checkpoint (its recipe's channels), and the fine-tune data
    made with them: the same halves counts as count_clips/count_stream give."""
    from pathlib import Path

    import snn
    from eventpipe.runtime.chip_counts import checkpoint_channels
    from snn.backends.chip.finetune import synthetic_data

    shipped = Path(snn.__file__).parent / "weights" / "meta_spikeformer_tiny_synthetic.pt"
    _, meta = snn.load_checkpoint(str(shipped))
    assert checkpoint_channels(meta) == meta["recipe"]["channels"] == "halves"
    assert checkpoint_channels({"input_size": [64, 64]}) == "polarity"     # old files: OFF/ON
    kw = dict(sensor_size=(64, 64), input_size=(32, 32), T=4)
    data = synthetic_data(2, 1, 1.0, 8, channels="halves", **kw)
    clips = count_clips(2, seed=0, split="train", channels="halves", **kw)
    assert np.array_equal(data.clips, clips.transpose(1, 0, 2, 3, 4))
    stream, _ = count_stream(10000, seconds=1.0, sensor_size=(64, 64), input_size=(32, 32), channels="halves")
    assert np.array_equal(data.runs[:, 0], stream[:8])
    assert not np.array_equal(synthetic_data(2, 0, channels="polarity", **kw).clips, data.clips)
