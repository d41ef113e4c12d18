"""Explicit model state: a ``dict`` mapping neuron names to their :class:`LIFState`.

Rows along dim 0 of every membrane are batch elements, i.e. independent streams.  This module holds
the state type, the :class:`StepContext` a forward pass threads it through, and the row helpers
(snapshot, reset / select / merge rows, concatenate / split batches) that every
:class:`~snn.stepper.Stepper` and :class:`~snn.streaming.StreamingSession` share.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Union

import torch
from torch import Tensor

from .neurons import LIFState

ModelState = Dict[str, LIFState]

__all__ = ["ModelState", "StepContext", "cat_states", "clone_state", "merge_rows", "reset_rows", "select_rows",
           "split_state"]


class StepContext:
    """Carries the incoming state, collects the outgoing state (and optional recordings)."""

    def __init__(
        self,
        state: Optional[Mapping[str, LIFState]] = None,
        record_spikes: bool = False,
        record_features: bool = False,
    ) -> None:
        self.prev = dict(state) if state is not None else {}
        self.new: ModelState = {}
        self.spikes: Optional[Dict[str, Tensor]] = {} if record_spikes else None
        self.features: Optional[Dict[str, Tensor]] = {} if record_features else None

    def run(self, neuron, x: Tensor) -> Tensor:
        key = neuron.state_key
        s, st = neuron(x, self.prev.get(key))
        if st is not None:
            self.new[key] = st
        if self.spikes is not None:
            self.spikes[key] = s.detach()
        return s

    def feature(self, name: str, x: Tensor) -> None:
        if self.features is not None:
            self.features[name] = x.detach()


def clone_state(state: Optional[Mapping[str, LIFState]]) -> Optional[ModelState]:
    """A deep copy (snapshot) of ``state``."""
    if state is None:
        return None
    return {k: LIFState(*(t.clone() for t in v)) for k, v in state.items()}


def _rows(index: Union[int, Iterable[int], Tensor], n: int, device) -> Tensor:
    if isinstance(index, Tensor) and index.dtype == torch.bool:
        if index.numel() != n:
            raise ValueError(f"row mask has {index.numel()} entries, batch has {n}")
        return index.to(device)
    idx = torch.as_tensor([index] if isinstance(index, int) else list(index), dtype=torch.long)
    if idx.numel() and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"row index out of range for batch of {n}")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[idx] = True
    return mask.to(device)


def reset_rows(
    state: Optional[Mapping[str, LIFState]], rows: Union[int, Iterable[int], Tensor]
) -> Optional[ModelState]:
    """Return a new state with the given batch rows at rest (0); other rows untouched."""
    if state is None:
        return None
    out: ModelState = {}
    for k, st in state.items():
        fields = []
        for t in st:
            m = _rows(rows, t.shape[0], t.device).view(-1, *([1] * (t.dim() - 1)))
            fields.append(torch.where(m, torch.zeros_like(t), t))
        out[k] = LIFState(*fields)
    return out


def select_rows(state: Optional[Mapping[str, LIFState]], rows) -> Optional[ModelState]:
    """The sub-state of the given batch rows (e.g. to move one stream elsewhere)."""
    if state is None:
        return None
    idx = torch.as_tensor([rows] if isinstance(rows, int) else list(rows), dtype=torch.long)
    return {k: LIFState(*(t.index_select(0, idx.to(t.device)) for t in st)) for k, st in state.items()}


def merge_rows(state: Mapping[str, LIFState], rows, sub: Mapping[str, LIFState]) -> ModelState:
    """Write ``sub`` (a state of ``len(rows)`` rows) into ``rows`` of ``state`` (a new dict)."""
    idx = torch.as_tensor([rows] if isinstance(rows, int) else list(rows), dtype=torch.long)
    out: ModelState = {}
    for k, st in state.items():
        fields = []
        for t, u in zip(st, sub[k]):
            t = t.clone()
            t[idx.to(t.device)] = u
            fields.append(t)
        out[k] = LIFState(*fields)
    return out


def cat_states(states: List[Mapping[str, LIFState]]) -> ModelState:
    """Concatenate batch-row states (same model) along the batch dimension."""
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("states come from different models (neuron names differ)")
    return {k: LIFState(*(torch.cat(parts, 0) for parts in zip(*(s[k] for s in states))))
            for k in keys}


def split_state(state: Mapping[str, LIFState], n: int) -> List[ModelState]:
    """Split a batch state into ``n`` batch-1 states (views, no copies)."""
    out: List[ModelState] = [{} for _ in range(n)]
    for k, st in state.items():
        per_field = [t.split(1, 0) for t in st]
        for i in range(n):
            out[i][k] = LIFState(*(f[i] for f in per_field))
    return out
