"""Modules that exist only in folded models."""

from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn

from ..models import SpikeDrivenSelfAttention, per_frame

__all__ = ["FusedQKVAttention"]


class FusedQKVAttention(SpikeDrivenSelfAttention):
    """A folded :class:`~snn.models.attention.SpikeDrivenSelfAttention`: the Q, K and V convs (and
    their BNs) as one conv ``qkv_conv`` (3 * dim outputs: Q, K, V), the projection folded as
    ``proj_conv``; the neurons (and so the state keys) and the attention product are the
    original's.  ``qkv_conv`` is a chain ``nn.Sequential(1x1, dw 3x3, grouped 1x1)`` or one dense
    3x3 ``nn.Conv2d`` (see :func:`~snn.compile.fold.fold_model`)."""

    def __init__(self, attn: SpikeDrivenSelfAttention, qkv_conv: nn.Module, proj_conv: nn.Module) -> None:
        # not SpikeDrivenSelfAttention.__init__: that would build the unfolded convs
        nn.Module.__init__(self)
        self.dim, self.num_heads, self.mode, self.scale = attn.dim, attn.num_heads, attn.mode, attn.scale
        self.head_lif = attn.head_lif
        self.qkv_conv = qkv_conv
        self.q_lif, self.k_lif, self.v_lif = attn.q_lif, attn.k_lif, attn.v_lif
        self.attn_lif = attn.attn_lif
        self.proj_conv = proj_conv
        self.train(attn.training)

    def project_qkv(self, s: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        q, k, v = per_frame(self.qkv_conv, s).chunk(3, dim=2)
        return q, k, v
