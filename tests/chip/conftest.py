from pathlib import Path

import pytest

import snn
from snn.backends.chip.compile import compile

SHIPPED = str(Path(snn.__file__).parent / "weights" / "meta_spikeformer_tiny_synthetic.pt")


@pytest.fixture(scope="session")
def stream_frames():
    """Runtime count frames (uint8 ``[N, 2, 64, 64]``) of a short seeded synthetic stream."""
    from eventpipe.runtime.chip_counts import checkpoint_channels, count_stream

    # the input the shipped model was trained on (its recipe's channels), as the runtime feeds it
    return count_stream(20000, seconds=2.0, channels=checkpoint_channels(snn.load_checkpoint(SHIPPED)[1]))[0]


@pytest.fixture(scope="session")
def shipped_program(stream_frames):
    cal = stream_frames[:16].reshape(8, 2, 2, 64, 64)
    return compile(SHIPPED, calibration=[cal])
