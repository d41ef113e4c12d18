"""Compiled forms of a Meta-SpikeFormer definition: inference folding (BatchNorm into convolutions,
RepConv chains into one conv, fused Q/K/V).  Knows :mod:`snn.models`; the models do not know it,
and it knows no backend."""

from .fold import REPCONV_MODES, fold_attn_conv, fold_conv_bn, fold_model, fold_repconv, fold_repconv_chain
from .modules import FusedQKVAttention

__all__ = ["FusedQKVAttention", "REPCONV_MODES", "fold_attn_conv", "fold_conv_bn", "fold_model", "fold_repconv",
           "fold_repconv_chain"]
