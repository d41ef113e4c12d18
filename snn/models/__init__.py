"""Meta-SpikeFormer models: architecture, registry, official-checkpoint loader, folding."""

from .fold import fold_model
from .metaspikeformer import MetaSpikeFormer
from .official import infer_config, load_official, unwrap_state_dict
from .registry import create_model, list_models, recipe, register_model
from .state import ModelState, clone_state, merge_rows, reset_rows, select_rows

__all__ = [
    "MetaSpikeFormer",
    "ModelState",
    "clone_state",
    "create_model",
    "fold_model",
    "infer_config",
    "list_models",
    "load_official",
    "merge_rows",
    "recipe",
    "register_model",
    "reset_rows",
    "select_rows",
    "unwrap_state_dict",
]
