"""A stepping session: one model, many streams, one timestep per frame.

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

from .models.state import ModelState, clone_state
from .neurons import LIFState

__all__ = ["StreamingSession", "cat_states", "split_state"]


def cat_states(states: list[Mapping[str, LIFState]]) -> ModelState:
    """Concatenate batch-row states (same model) along the batch dimension."""
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("states come from different models (neuron names differ)")
    return {k: LIFState(*(torch.cat(parts, 0) for parts in zip(*(s[k] for s in states))))
            for k in keys}


def split_state(state: Mapping[str, LIFState], n: int) -> list[ModelState]:
    """Split a batch state into ``n`` batch-1 states (views, no copies)."""
    out: list[ModelState] = [{} for _ in range(n)]
    for k, st in state.items():
        per_field = [t.split(1, 0) for t in st]
        for i in range(n):
            out[i][k] = LIFState(*(f[i] for f in per_field))
    return out


class StreamingSession:
    """Step a model over frames from several streams, keeping state per stream."""

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
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
            logits, new = self.model.step(x, state)
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
