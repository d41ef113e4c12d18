"""The one interface every executable form of a model offers, and the table that builds them.

A :class:`Stepper` advances a batch of streams by one timestep: ``step(x, state) -> (logits,
state)`` with ``x`` one frame ``[B, C, H, W]``, ``state`` a :data:`~snn.state.ModelState` (``None``
= at rest; batch rows along dim 0) and ``logits`` ``[B, classes]``.  The state passed in is not
modified.  :class:`~snn.streaming.StreamingSession` and the runtime take any Stepper.

Backends (:func:`make_stepper`):

* ``float``: the model definition itself (:class:`~snn.models.MetaSpikeFormer`), unfolded - the
  official arithmetic, exact;
* ``cpu``: the folded model with the event-driven CPU fast path (:func:`snn.backends.cpu.build`) -
  the same function up to float rounding (``docs/model.md`` measures how often the top class
  agrees with ``float``).

A new backend adds its name to :data:`BACKENDS` and one branch to :func:`make_stepper`; nothing
registers itself at import.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional, Protocol, Tuple, Union, runtime_checkable

import torch
from torch import Tensor

from .state import ModelState

__all__ = ["BACKENDS", "Stepper", "make_stepper"]

BACKENDS = ("float", "cpu")


@runtime_checkable
class Stepper(Protocol):
    """Anything that advances a batch of streams by one frame, state passed in and returned."""

    def step(self, x: Tensor, state: Optional[ModelState] = None) -> Tuple[Tensor, ModelState]:
        ...


def check_backend(backend: Any) -> str:
    """``backend`` if it names a backend; otherwise a ValueError that lists them (closest first)."""
    if backend in BACKENDS:
        return backend
    close = difflib.get_close_matches(str(backend), BACKENDS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown backend {backend!r}{hint} (known: {', '.join(BACKENDS)})")


def make_stepper(model: torch.nn.Module, backend: str = "float", *,
                 device: Union[str, torch.device] = "cpu", **options: Any) -> Stepper:
    """A :class:`Stepper` for ``model`` (an unfolded :class:`~snn.models.MetaSpikeFormer`).

    ``float`` returns the model itself, in eval mode, on ``device``; ``cpu`` a folded copy with the
    fast path (``options`` go to :func:`snn.backends.cpu.build`, e.g. ``weights="bf16"``), on
    ``device`` (off the CPU the folded modules run as torch ops).
    """
    backend = check_backend(backend)
    if backend == "float":
        if options:
            raise TypeError(f"backend 'float' takes no options, got {sorted(options)}")
        return model.eval().to(device)
    if backend == "cpu":
        from .backends.cpu import build

        return build(model, **options).to(device)
    raise RuntimeError(f"backend {backend!r} is listed but not built")  # pragma: no cover
