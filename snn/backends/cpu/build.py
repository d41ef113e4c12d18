"""Build the CPU backend's model: fold (:mod:`snn.compile`), 1x1 convs as GEMMs, the event-driven
conv for spike-fed 3x3 convs, and the fast path's runners on every block they can take."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...compile import REPCONV_MODES, FusedQKVAttention, fold_model
from ...models import ConvBlock, Downsampling, MetaSpikeFormer, TransformerBlock
from ...neurons import LIFNode, SpikingNeuron
from .layout import WEIGHT_PRECISIONS
from .modules import FastBlock, Pointwise
from .runners import FastConvBlock, FastDownsampling, FastTransformerBlock
from .spikeconv import SpikeConv2d
from .threads import ThreadSync

__all__ = ["build", "fast_runners", "install"]


@torch.no_grad()
def build(model: MetaSpikeFormer, *, repconv: str = "chain", fast: bool = True, spike_conv: bool = True,
          max_density: float = 0.06, weights: str = "fp32", threads: Optional[int] = None) -> MetaSpikeFormer:
    """The model folded and prepared for CPU inference (a copy; eval only; the original untouched).

    * folding as :func:`snn.compile.fold_model` (``repconv``);
    * 1x1 convs as GEMMs (:class:`~.modules.Pointwise`);
    * ``spike_conv``: the 3x3 convs fed by spikes (conv blocks, downsampling) wrapped in
      :class:`~.spikeconv.SpikeConv2d`, which scatters the non-zero inputs when their density is
      below ``max_density`` (the dense conv otherwise) - for the blocks the fast path does not take;
    * ``fast`` (needs ``repconv="chain"`` and LIF neurons): every downsampling, conv block and
      ``sdsa3`` transformer block becomes a :class:`~.modules.FastBlock` running the event-driven
      fast path on CPU float32 input without autograd (see :func:`install`).
      ``weights="bf16"`` (not the default; **not exact**) stores the fast path's gather weights as
      bfloat16 (float32 sums).  ``threads`` pins numba's pool size (default: torch's intra-op
      thread count at each step).

    The result is a :class:`~snn.models.MetaSpikeFormer` (``step``, ``forward_sequence``, ``run``
    work as on the definition) and so a :class:`~snn.stepper.Stepper`.
    """
    if weights not in WEIGHT_PRECISIONS:
        raise ValueError(f"weights must be one of {WEIGHT_PRECISIONS}, got {weights!r}")
    if repconv not in REPCONV_MODES:
        raise ValueError(f"repconv must be one of {REPCONV_MODES}, got {repconv!r}")
    sync = ThreadSync(threads)  # checks ``threads`` before any work
    folded = fold_model(model, repconv=repconv)
    if spike_conv:
        for m in folded.modules():
            if isinstance(m, Downsampling):
                m.encode_conv = SpikeConv2d(m.encode_conv, max_density)
            elif isinstance(m, ConvBlock):
                m.conv1, m.conv2 = SpikeConv2d(m.conv1, max_density), SpikeConv2d(m.conv2, max_density)
    for parent in list(folded.modules()):
        if isinstance(parent, SpikeConv2d):
            continue
        for name, child in list(parent.named_children()):
            if Pointwise.applies_to(child):
                setattr(parent, name, Pointwise(child))
    if fast and repconv == "chain":
        install(folded, weights=weights, threads=sync)
    return folded


def _runner(m: nn.Module, weights: str, sync: ThreadSync):
    if isinstance(m, Downsampling):
        return FastDownsampling(m, weights, sync)
    if isinstance(m, ConvBlock):
        return FastConvBlock(m, weights, sync)
    if isinstance(m, TransformerBlock):
        a = m.attn
        if isinstance(a, FusedQKVAttention) and a.mode == "sdsa3" and isinstance(a.qkv_conv, (nn.Sequential, nn.Conv2d)):
            return FastTransformerBlock(m, weights, sync)
    return None


def install(folded: MetaSpikeFormer, *, weights: str = "fp32", threads: Optional[ThreadSync] = None) -> int:
    """Wrap every block of a folded model (``repconv="chain"``) that the fast path can run in a
    :class:`~.modules.FastBlock` (in place); returns how many.  Nothing is wrapped when a neuron is
    not a :class:`~snn.neurons.LIFNode` (e.g. ``multispike``)."""
    if weights not in WEIGHT_PRECISIONS:
        raise ValueError(f"weights must be one of {WEIGHT_PRECISIONS}, got {weights!r}")
    if not folded.is_folded:
        raise ValueError("install() takes a folded model (snn.compile.fold_model)")
    if not all(isinstance(n, LIFNode) for n in folded.modules() if isinstance(n, SpikingNeuron)):
        return 0
    sync = threads if threads is not None else ThreadSync()
    n = 0
    for parent in list(folded.modules()):
        if isinstance(parent, FastBlock):
            continue
        for name, child in list(parent.named_children()):
            fast = _runner(child, weights, sync)
            if fast is not None:
                setattr(parent, name, FastBlock(child, fast))
                n += 1
    return n


def fast_runners(model: nn.Module) -> list:
    """The fast-path runners of a built model, in module order (each has a ``calls`` count)."""
    return [m.runner for m in model.modules() if isinstance(m, FastBlock)]
