"""A stepping session: one :class:`~snn.stepper.Stepper`, many streams, one timestep per frame.

Each stream keeps its own membranes (a batch-1 :data:`ModelState`); frames
that are ready at the same time from several streams run as one batch, their
states concatenated row-wise and split again afterwards, so a stream's state
never depends on which other streams shared its batch.  Streams can be reset
(a silent camera), snapshotted and restored.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from torch import Tensor

from .state import ModelState, cat_states, clone_state, split_state
from .stepper import Stepper

__all__ = ["StreamingSession", "cat_states", "split_state"]


class StreamingSession:
    """Step a :class:`~snn.stepper.Stepper` over frames from several streams, keeping state per
    stream.  The stepper is used as given (build it for its device with
    :func:`~snn.stepper.make_stepper`); frames are moved to ``device``."""

    def __init__(self, stepper: Stepper, *, device: str | torch.device = "cpu"):
        if not callable(getattr(stepper, "step", None)):
            raise TypeError(f"StreamingSession needs a Stepper (an object with step(x, state)), "
                            f"got {type(stepper).__name__}")
        self.stepper = stepper
        self.device = torch.device(device)
        self.states: dict[Hashable, ModelState] = {}
        self.steps: dict[Hashable, int] = {}

    @torch.inference_mode()
    def step(self, frames: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Advance every stream in ``frames`` (each ``[C, H, W]``) by one timestep.

        Returns the per-step logits ``[classes]`` of each stream.
        """
        out: dict[Hashable, Tensor] = {}
        warm = [s for s in frames if s in self.states]
        cold = [s for s in frames if s not in self.states]
        for group, state in ((warm, cat_states([self.states[s] for s in warm]) if warm else None),
                             (cold, None)):
            if not group:
                continue
            x = torch.stack([self._frame(frames[s]) for s in group]).to(self.device)
            logits, new = self.stepper.step(x, state)
            if isinstance(logits, tuple):  # distillation head in training mode
                logits = (logits[0] + logits[1]) / 2
            for sid, st, lg in zip(group, split_state(new, len(group)), logits):
                self.states[sid] = st
                self.steps[sid] = self.steps.get(sid, 0) + 1
                out[sid] = lg
        return out

    def _frame(self, f) -> Tensor:
        t = torch.as_tensor(f)
        if t.dim() != 3:
            raise ValueError(f"a frame must be [C, H, W], got {tuple(t.shape)}")
        return t.to(torch.float32)

    def reset(self, stream: Hashable | None = None) -> None:
        """Forget a stream's membranes (all streams when ``stream`` is None)."""
        if stream is None:
            self.states.clear()
            self.steps.clear()
        else:
            self.states.pop(stream, None)
            self.steps.pop(stream, None)

    def snapshot(self) -> dict[Hashable, ModelState]:
        return {s: clone_state(st) for s, st in self.states.items()}

    def restore(self, snap: Mapping[Hashable, ModelState]) -> None:
        self.states = {s: clone_state(st) for s, st in snap.items()}
        self.steps = {s: self.steps.get(s, 0) for s in snap}
