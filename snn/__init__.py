"""Spiking neural networks: LIF neurons, the Meta-SpikeFormer definition, its folded form, execution
backends behind one :class:`Stepper` protocol, and streaming over many streams.

Rooms (no import runs back up this list): ``neurons`` -> ``state`` -> ``models`` (definition) ->
``compile`` (folding) -> ``backends`` (``cpu``, ...) -> ``stepper`` (protocol + backend table) ->
``streaming``.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .compile import fold_model
from .frame_size import FrameSizeError, FrameSizeWarning
from .models import MetaSpikeFormer, create_model, list_models, load_official
from .neurons import LIFNode, LIFState, MultiSpikeNode, SpikingNeuron, lif_step
from .state import ModelState, StepContext, cat_states, clone_state, merge_rows, reset_rows, select_rows, split_state
from .stepper import BACKENDS, Stepper, make_stepper
from .streaming import StreamingSession

__all__ = [
    "BACKENDS",
    "FrameSizeError",
    "FrameSizeWarning",
    "LIFNode",
    "LIFState",
    "MetaSpikeFormer",
    "ModelState",
    "MultiSpikeNode",
    "SpikingNeuron",
    "StepContext",
    "Stepper",
    "StreamingSession",
    "cat_states",
    "clone_state",
    "create_model",
    "fold_model",
    "lif_step",
    "list_models",
    "load_checkpoint",
    "load_official",
    "make_stepper",
    "merge_rows",
    "reset_rows",
    "save_checkpoint",
    "select_rows",
    "split_state",
]
