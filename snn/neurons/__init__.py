"""Spiking neurons with explicit, externally held state."""

from .lif import (
    LIFNode,
    LIFState,
    MultiSpikeNode,
    SigmoidSurrogate,
    SpikingNeuron,
    lif_multistep,
    lif_step,
    spike_fn,
)

__all__ = [
    "LIFNode",
    "LIFState",
    "MultiSpikeNode",
    "SigmoidSurrogate",
    "SpikingNeuron",
    "lif_multistep",
    "lif_step",
    "spike_fn",
]
