"""Leaky integrate-and-fire neurons with explicit state.

Semantics follow spikingjelly's ``MultiStepLIFNode(tau=2, detach_reset=True)`` used by the
official Spike-driven Transformer V2 code:

    H[t] = V[t-1] + (X[t] - V[t-1]) / tau          (decay_input=True, v_reset = 0)
    S[t] = (H[t] >= V_th)                           (sigmoid surrogate gradient, alpha = 4)
    V[t] = H[t] * (1 - S[t])                        (hard reset to 0, reset detached)

The membrane is never stored on the module: it is passed in as an :class:`LIFState` (``None``
means a neuron at rest) and the updated state is returned.  The multi-step form (input
``[T, ...]``) and the single-step form (input ``[...]``) run the same per-step kernel
:func:`lif_step`, so stepping frame by frame reproduces the sequence form bit for bit.
"""

from __future__ import annotations

import abc
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from ._fused import fused_eligible, lif_seq_fused

__all__ = [
    "LIFState",
    "SigmoidSurrogate",
    "spike_fn",
    "lif_step",
    "lif_multistep",
    "SpikingNeuron",
    "LIFNode",
    "MultiSpikeNode",
]


class LIFState(NamedTuple):
    """Membrane potential after the last step (post-reset), shape ``[B, ...]`` (no T axis)."""

    v: Tensor


class SigmoidSurrogate(torch.autograd.Function):
    """Heaviside forward, ``alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x))`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad * (ctx.alpha * sg * (1.0 - sg)), None


def spike_fn(x: Tensor, alpha: float = 4.0) -> Tensor:
    """``x >= 0`` as a float spike; differentiable via the sigmoid surrogate when needed."""
    if torch.is_grad_enabled() and x.requires_grad:
        return SigmoidSurrogate.apply(x, alpha)
    return (x >= 0).to(x.dtype)


def lif_step(
    x: Tensor,
    v: Optional[Tensor],
    tau: float = 2.0,
    v_threshold: float = 1.0,
    soft_reset: bool = False,
    decay_input: bool = True,
    detach_reset: bool = True,
    alpha: float = 4.0,
) -> Tuple[Tensor, Tensor]:
    """One LIF update. ``x``: input current ``[B, ...]``; ``v``: membrane or ``None`` (rest).

    Returns ``(spikes, new_v)``.
    """
    if v is None:
        v = torch.zeros_like(x)
    if decay_input:
        h = v + (x - v) / tau
    else:
        h = v - v / tau + x
    s = spike_fn(h - v_threshold, alpha)
    r = s.detach() if detach_reset else s
    if soft_reset:
        v_new = h - r * v_threshold
    else:
        v_new = h * (1.0 - r)
    return s, v_new


def lif_multistep(
    x_seq: Tensor, v: Optional[Tensor], fused: bool = True, **kw
) -> Tuple[Tensor, Tensor]:
    """Apply :func:`lif_step` over the leading T axis of ``x_seq``.

    Without autograd on CPU this runs the fused one-pass kernel (:mod:`snn.neurons._fused`),
    which does the same arithmetic; ``fused=False`` forces the tensor-op path.
    """
    if fused and fused_eligible(x_seq):
        return lif_seq_fused(
            x_seq, v, kw.get("tau", 2.0), kw.get("v_threshold", 1.0), kw.get("soft_reset", False),
            kw.get("decay_input", True),
        )
    if x_seq.shape[0] == 1:
        s, v = lif_step(x_seq[0], v, **kw)
        return s.unsqueeze(0), v
    out = []
    for t in range(x_seq.shape[0]):
        s, v = lif_step(x_seq[t], v, **kw)
        out.append(s)
    return torch.stack(out, 0), v  # type: ignore[return-value]


class SpikingNeuron(nn.Module, abc.ABC):
    """Base class of stateful neurons: ``forward(x_seq, state) -> (spikes, state)``.

    ``state_key`` is set by the owning model to the module's qualified name; the model's state
    dict of membranes is keyed by it.
    """

    state_key: str = ""

    @abc.abstractmethod
    def forward(self, x_seq: Tensor, state=None):
        """``x_seq`` ``[T, ...]`` -> (spikes ``[T, ...]``, new state)."""

    def single_step(self, x: Tensor, state=None):
        s, st = self(x.unsqueeze(0), state)
        return s[0], st


class LIFNode(SpikingNeuron):
    """Multi-step LIF neuron; input ``[T, B, ...]``, state :class:`LIFState` or ``None``."""

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        soft_reset: bool = False,
        decay_input: bool = True,
        detach_reset: bool = True,
        surrogate_alpha: float = 4.0,
    ) -> None:
        super().__init__()
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1, got {tau}")
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.soft_reset = bool(soft_reset)
        self.decay_input = bool(decay_input)
        self.detach_reset = bool(detach_reset)
        self.surrogate_alpha = float(surrogate_alpha)

    def forward(self, x_seq: Tensor, state: Optional[LIFState] = None) -> Tuple[Tensor, LIFState]:
        v = None if state is None else state.v
        if v is not None and v.shape != x_seq.shape[1:]:
            raise ValueError(
                f"{self.state_key or 'LIFNode'}: state shape {tuple(v.shape)} does not match "
                f"input frame shape {tuple(x_seq.shape[1:])}"
            )
        s, v = lif_multistep(
            x_seq,
            v,
            tau=self.tau,
            v_threshold=self.v_threshold,
            soft_reset=self.soft_reset,
            decay_input=self.decay_input,
            detach_reset=self.detach_reset,
            alpha=self.surrogate_alpha,
        )
        return s, LIFState(v)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, soft_reset={self.soft_reset}, "
            f"decay_input={self.decay_input}"
        )


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad


class MultiSpikeNode(SpikingNeuron):
    """Integer multi-spike neuron (SDT-V3 style): ``round(clamp(x, 0, D))`` per step.

    Stateless: the state passes through unchanged (``None``).  The gradient is straight-through
    inside ``[0, D]`` (zero outside, from the clamp).  ``v_threshold`` is accepted for drop-in
    compatibility with :class:`LIFNode` and scales the input (``x / v_threshold``).
    """

    def __init__(self, max_spikes: int = 4, v_threshold: float = 1.0, **_ignored) -> None:
        super().__init__()
        if max_spikes < 1:
            raise ValueError("max_spikes must be >= 1")
        self.max_spikes = int(max_spikes)
        self.v_threshold = float(v_threshold)

    def forward(self, x_seq: Tensor, state=None):
        x = x_seq / self.v_threshold if self.v_threshold != 1.0 else x_seq
        return _RoundSTE.apply(torch.clamp(x, 0, self.max_spikes)), None

    def extra_repr(self) -> str:
        return f"max_spikes={self.max_spikes}"
