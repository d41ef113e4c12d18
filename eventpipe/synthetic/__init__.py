"""Synthetic event-camera action clips and a live stream (see ``docs/synthetic.md``)."""

from eventpipe.synthetic.actors import CLASS_NAMES, label_index
from eventpipe.synthetic.clips import (
    SyntheticActionDataset,
    clip_seed,
    frame_times_us,
    make_clip,
    render_clip,
)
from eventpipe.synthetic.stream import StreamPacket, SyntheticStream

__all__ = [
    "CLASS_NAMES",
    "StreamPacket",
    "SyntheticActionDataset",
    "SyntheticStream",
    "clip_seed",
    "frame_times_us",
    "label_index",
    "make_clip",
    "render_clip",
]
