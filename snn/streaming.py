"""A stepping session: one :class:`~snn.stepper.Stepper`, many streams, one timestep per frame.

Each stream keeps its own membranes (a batch-1 :data:`ModelState`); frames
that are ready at the same time from several streams run as one batch, their
states concatenated row-wise and split again afterwards, so a stream's state
never depends on which other streams shared its batch.  Streams can be reset
(a silent camera), snapshotted and restored.

One session runs one frame size: the stepper's ``input_size`` (a model loaded from a
checkpoint knows the size it was trained at), else ``input_size=``, else the size of its
first frame.  A frame of another size is refused (:class:`~snn.frame_size.FrameSizeError`)
before anything runs.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Optional, Tuple

import torch
from torch import Tensor

from .frame_size import FrameSizeError, frame_wh
from .state import ModelState, cat_states, clone_state, split_state
from .stepper import Stepper

__all__ = ["FrameSizeError", "StreamingSession", "cat_states", "split_state"]


class StreamingSession:
    """Step a :class:`~snn.stepper.Stepper` over frames from several streams, keeping state per
    stream.  The stepper is used as given (build it for its device with
    :func:`~snn.stepper.make_stepper`); frames are moved to ``device``.

    ``input_size``: the frame size (W, H) this session runs at; default the stepper's
    ``input_size`` (its checkpoint recipe's), else the first frame's.  Giving another size
    than the stepper's runs it at that size on purpose (the model then warns once,
    :class:`~snn.frame_size.FrameSizeWarning`)."""

    def __init__(self, stepper: Stepper, *, device: str | torch.device = "cpu",
                 input_size: Optional[Tuple[int, int]] = None):
        if not callable(getattr(stepper, "step", None)):
            raise TypeError(f"StreamingSession needs a Stepper (an object with step(x, state)), "
                            f"got {type(stepper).__name__}")
        self.stepper = stepper
        self.device = torch.device(device)
        self.states: dict[Hashable, ModelState] = {}
        self.steps: dict[Hashable, int] = {}
        if input_size is not None:
            self.input_size, self._size_from = _wh(input_size), "input_size="
        elif getattr(stepper, "input_size", None) is not None:
            self.input_size, self._size_from = _wh(stepper.input_size), "the model's checkpoint recipe"
        else:
            self.input_size, self._size_from = None, ""

    @torch.inference_mode()
    def step(self, frames: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Advance every stream in ``frames`` (each ``[C, H, W]``) by one timestep.

        Returns the per-step logits ``[classes]`` of each stream.
        """
        out: dict[Hashable, Tensor] = {}
        frames = {s: self._frame(s, f) for s, f in frames.items()}  # all checked before any runs
        warm = [s for s in frames if s in self.states]
        cold = [s for s in frames if s not in self.states]
        for group, state in ((warm, cat_states([self.states[s] for s in warm]) if warm else None),
                             (cold, None)):
            if not group:
                continue
            x = torch.stack([frames[s] for s in group]).to(self.device)
            logits, new = self.stepper.step(x, state)
            if isinstance(logits, tuple):  # distillation head in training mode
                logits = (logits[0] + logits[1]) / 2
            for sid, st, lg in zip(group, split_state(new, len(group)), logits):
                self.states[sid] = st
                self.steps[sid] = self.steps.get(sid, 0) + 1
                out[sid] = lg
        return out

    def _frame(self, stream: Hashable, f) -> Tensor:
        t = torch.as_tensor(f)
        if t.dim() != 3:
            raise ValueError(f"stream {stream!r}: a frame must be [C, H, W], got {tuple(t.shape)}")
        wh = frame_wh(t)
        if self.input_size is None:
            self.input_size, self._size_from = wh, f"set by the first frame, stream {stream!r}"
        elif wh != self.input_size:
            w, h = self.input_size
            raise FrameSizeError(
                f"stream {stream!r}: frame {tuple(t.shape)} is {wh[0]}x{wh[1]} (W x H), but this "
                f"session runs {w}x{h} ({self._size_from}); bin the events at {w}x{h}, or make "
                f"a session with input_size={wh} to run the model at that size on purpose")
        return t.to(torch.float32)

    def reset(self, stream: Hashable | None = None) -> None:
        """Forget a stream's membranes (all streams when ``stream`` is None)."""
        if stream is None:
            self.states.clear()
            self.steps.clear()
            if self._size_from.startswith("set by the first frame"):
                self.input_size = None  # no state left at that size: the next frame sets it
        else:
            self.states.pop(stream, None)
            self.steps.pop(stream, None)

    def snapshot(self) -> dict[Hashable, ModelState]:
        return {s: clone_state(st) for s, st in self.states.items()}

    def restore(self, snap: Mapping[Hashable, ModelState]) -> None:
        self.states = {s: clone_state(st) for s, st in snap.items()}
        self.steps = {s: self.steps.get(s, 0) for s in snap}


def _wh(size) -> Tuple[int, int]:
    if len(size) != 2:
        raise ValueError(f"input_size must be (W, H), got {size!r}")
    return int(size[0]), int(size[1])
