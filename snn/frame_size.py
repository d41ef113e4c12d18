"""Frames of another size than the one a model was trained for: a typed warning and error.

A Meta-SpikeFormer runs at any input size (convolutions and attention over tokens), so a frame
of the wrong size does not fail: the model answers, and the answers mean little.  A model loaded
from one of our checkpoints knows its size (``model.input_size``, (W, H), from the checkpoint's
input recipe); :meth:`MetaSpikeFormer.step <snn.models.MetaSpikeFormer.step>` warns
(:class:`FrameSizeWarning`) at the first frame of each other size, and
:class:`~snn.streaming.StreamingSession` refuses such a frame (:class:`FrameSizeError`).
Setting ``model.input_size`` to another size says that size is meant.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple

__all__ = ["FrameSizeError", "FrameSizeWarning", "frame_wh", "warn_if_other_size"]


class FrameSizeWarning(UserWarning):
    """A frame of another size than the model's checkpoint recipe went into the model."""


class FrameSizeError(ValueError):
    """A frame of another size than the one a streaming session runs at."""


def frame_wh(x: Any) -> Tuple[int, int]:
    """(W, H) of a frame or frame batch ``[..., H, W]``."""
    return int(x.shape[-1]), int(x.shape[-2])


def warn_if_other_size(model: Any, x: Any, stacklevel: int = 3) -> None:
    """:class:`FrameSizeWarning` once per size when ``x``'s (W, H) differs from
    ``model.input_size`` (nothing when the model does not know its size)."""
    want: Optional[Tuple[int, int]] = getattr(model, "input_size", None)
    if want is None:
        return
    got = frame_wh(x)
    if got == tuple(want):
        return
    seen = model.__dict__.setdefault("_frame_sizes_warned", set())
    if got in seen:
        return
    seen.add(got)
    warnings.warn(FrameSizeWarning(
        f"a frame of {got[0]}x{got[1]} (W x H) went into a model whose checkpoint recipe is "
        f"{want[0]}x{want[1]}: it was not trained at this size and its answers may mean little "
        f"(bin the events at {want[0]}x{want[1]}, or set model.input_size = {got} to run it at "
        f"this size on purpose)"), stacklevel=stacklevel)
