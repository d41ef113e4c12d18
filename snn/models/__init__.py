"""Meta-SpikeFormer, the definition: layers, token mixers, blocks, the network, the registry and the
official-checkpoint loader.  How a model is folded (:mod:`snn.compile`) or run fast
(:mod:`snn.backends`) is not known here."""

from .attention import ATTN_CONVS, ATTN_MODES, SpikeDrivenSelfAttention
from .blocks import ChannelMLP, ConvBlock, Downsampling, SepConv, TransformerBlock
from .layers import BNAndPad, RepConv, per_frame
from .metaspikeformer import HEAD_INPUTS, STAGES, MetaSpikeFormer
from .official import infer_config, load_official, unwrap_state_dict
from .registry import create_model, list_models, recipe, register_model

__all__ = [
    "ATTN_CONVS",
    "ATTN_MODES",
    "BNAndPad",
    "ChannelMLP",
    "ConvBlock",
    "Downsampling",
    "HEAD_INPUTS",
    "MetaSpikeFormer",
    "RepConv",
    "STAGES",
    "SepConv",
    "SpikeDrivenSelfAttention",
    "TransformerBlock",
    "create_model",
    "infer_config",
    "list_models",
    "load_official",
    "per_frame",
    "recipe",
    "register_model",
    "unwrap_state_dict",
]
