"""The one place the chip backend imports folding from (BN into convs, RepConv into one 3x3 conv)."""

from snn.compile import fold_attn_conv, fold_conv_bn, fold_repconv  # noqa: F401
