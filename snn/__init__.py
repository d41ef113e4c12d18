"""Spiking neural networks: LIF neurons, Meta-SpikeFormer, streaming and chip backend."""

from .checkpoint import load_checkpoint, save_checkpoint
from .models import (
    MetaSpikeFormer,
    ModelState,
    clone_state,
    create_model,
    fold_model,
    list_models,
    load_official,
    reset_rows,
    select_rows,
)
from .neurons import LIFNode, LIFState, MultiSpikeNode, SpikingNeuron, lif_step

__all__ = [
    "LIFNode",
    "LIFState",
    "MetaSpikeFormer",
    "ModelState",
    "MultiSpikeNode",
    "SpikingNeuron",
    "clone_state",
    "create_model",
    "fold_model",
    "lif_step",
    "list_models",
    "load_checkpoint",
    "load_official",
    "reset_rows",
    "save_checkpoint",
    "select_rows",
]
