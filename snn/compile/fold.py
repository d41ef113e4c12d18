"""Inference folding: BatchNorm into convolutions, RepConv chains into one 3x3 conv.

``fold_model(model)`` returns a folded deep copy (eval only; the original is untouched) made of
plain torch modules (``nn.Conv1d`` / ``nn.Conv2d`` with bias, ``nn.Identity`` where a BN was), so
that any backend can read its weights:

* ``conv -> BN`` pairs (downsampling, SepConv pointwise convs, conv-block 3x3 convs, MLP 1x1 convs)
  become one conv with bias;
* ``RepConv -> BN`` (1x1 -> BN with BN(0) border padding -> depthwise 3x3 -> 1x1 -> BN -> BN)
  becomes one 3x3 conv with zero padding 1 (``repconv="dense"``) - exact because the border pad
  value is what the 1x1 conv + BN produce for zero input - or a BN-free 1x1 -> dw 3x3 -> 1x1 chain
  (``repconv="chain"``, the CPU default: ~4x fewer multiply-adds);
* the Q, K and V convs of each attention block (same input) are fused into one conv (chain).

Folding is computed in float64 and cast back to the parameter dtype.
"""

from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..models import (BNAndPad, ChannelMLP, ConvBlock, Downsampling, MetaSpikeFormer, RepConv, SepConv,
                      SpikeDrivenSelfAttention)
from .modules import FusedQKVAttention


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> Tuple[Tensor, Tensor]:
    """(scale, shift) of an eval-mode BatchNorm, in float64."""
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    std = torch.sqrt(var + bn.eps)
    w = bn.weight.double() if bn.affine else torch.ones_like(var)
    b = bn.bias.double() if bn.affine else torch.zeros_like(var)
    s = w / std
    return s, b - mean * s


def _new_conv(like: nn.Module, weight: Tensor, bias: Tensor) -> nn.Module:
    conv = copy.deepcopy(like)
    dtype = like.weight.dtype
    conv.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return conv


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A conv (Conv1d/Conv2d) equal to ``bn(conv(x))`` in eval mode."""
    s, t = _bn_affine(bn)
    w = conv.weight.double()
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(s)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return _new_conv(conv, w * s.view(shape), b * s + t)


def _repconv_terms(rep: RepConv, outer_bn: Optional[nn.Module]):
    """float64 pieces of ``outer_bn(rep(x))``: a [C, Cin], s1, b1 (= pad value BN(0)), d [C,3,3], p [Co, C], s2, b2."""
    conv1, bnpad, tail = rep.body[0], rep.body[1], rep.body[2]
    if not isinstance(bnpad, BNAndPad) or bnpad.pad_pixels != 1:
        raise ValueError("not a RepConv body: expected 1x1 conv -> BNAndPad(1) -> (dw 3x3, 1x1, BN)")
    dw, pw, bn2 = tail[0], tail[1], tail[2]
    a = conv1.weight.double()[:, :, 0, 0]
    s1, b1 = _bn_affine(bnpad.bn)
    d = dw.weight.double()[:, 0]
    p = pw.weight.double()[:, :, 0, 0]
    s2, b2 = _bn_affine(bn2)
    if outer_bn is not None:
        s3, b3 = _bn_affine(outer_bn)
        s2, b2 = s2 * s3, b2 * s3 + b3
    return a, s1, b1, d, p, s2, b2


def fold_repconv(rep: RepConv, outer_bn: Optional[nn.Module] = None) -> nn.Conv2d:
    """One dense 3x3 conv (zero padding 1) equal to ``outer_bn(rep(x))`` in eval mode.

    Exact because the BN border padding (BN(0) = b1) is what 1x1 conv + BN give for a zero input.
    """
    a, s1, b1, d, p, s2, b2 = _repconv_terms(rep, outer_bn)
    dtype = rep.body[0].weight.dtype
    # W[o, i, kh, kw] = s2[o] * sum_c p[o, c] * d[c, kh, kw] * s1[c] * a[c, i]
    w = torch.einsum("oc,ckl,ci->oikl", p * s2[:, None], d, s1[:, None] * a)
    bias = s2 * (p @ (b1 * d.sum((1, 2)))) + b2
    conv = nn.Conv2d(a.shape[1], p.shape[0], 3, padding=1, bias=True)
    conv.weight = nn.Parameter(w.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return conv


def fold_attn_conv(seq: nn.Sequential) -> nn.Conv2d:
    """One dense 3x3 conv equal to an attention conv ``seq`` (``RepConv -> BN`` or, for
    ``attn_conv="dense"`` models, ``Conv2d 3x3 -> BN``) in eval mode."""
    if isinstance(seq[0], RepConv):
        return fold_repconv(seq[0], seq[1])
    return fold_conv_bn(seq[0], seq[1])


def fold_repconv_chain(reps, outer_bns) -> nn.Sequential:
    """``outer_bn(rep(x))`` for one or more RepConvs sharing the input, as a BN-free chain:
    1x1 conv -> depthwise 3x3 (zero padding 1) -> grouped 1x1 conv with bias.

    Same function as :func:`fold_repconv` with ~(2C^2 + 9C) instead of 9C^2 multiply-adds per
    pixel; the BN(0) border becomes the constant ``b1 * sum(d)`` moved into the last bias.
    """
    terms = [_repconv_terms(r, b) for r, b in zip(reps, outer_bns)]
    dtype = reps[0].body[0].weight.dtype
    g = len(terms)
    cin, mid, cout = terms[0][0].shape[1], terms[0][0].shape[0], terms[0][4].shape[0]
    a = torch.cat([s1[:, None] * a for a, s1, *_ in terms])  # [g*mid, cin]
    d = torch.cat([t[3] for t in terms])  # [g*mid, 3, 3]
    p = torch.cat([t[5][:, None] * t[4] for t in terms])  # [g*cout, mid]
    bias = torch.cat([s2 * (pp @ (b1 * dd.sum((1, 2)))) + b2 for _, _, b1, dd, pp, s2, b2 in terms])
    c1 = nn.Conv2d(cin, g * mid, 1, bias=False)
    c1.weight = nn.Parameter(a[:, :, None, None].to(dtype), requires_grad=False)
    dw = nn.Conv2d(g * mid, g * mid, 3, padding=1, groups=g * mid, bias=False)
    dw.weight = nn.Parameter(d[:, None].to(dtype), requires_grad=False)
    pw = nn.Conv2d(g * mid, g * cout, 1, groups=g, bias=True)
    pw.weight = nn.Parameter(p[:, :, None, None].to(dtype), requires_grad=False)
    pw.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return nn.Sequential(c1, dw, pw)


def _fold_attention(attn: SpikeDrivenSelfAttention, repconv: str) -> FusedQKVAttention:
    pairs = [(attn.q_conv[0], attn.q_conv[1]), (attn.k_conv[0], attn.k_conv[1]), (attn.v_conv[0], attn.v_conv[1])]
    dense_model = not isinstance(attn.q_conv[0], RepConv)
    if repconv == "dense" or dense_model:  # a dense-conv model keeps its kernels in either mode
        convs = [fold_attn_conv(seq) for seq in (attn.q_conv, attn.k_conv, attn.v_conv)]
        qkv = nn.Conv2d(convs[0].in_channels, 3 * convs[0].out_channels, 3, padding=1, bias=True)
        qkv.weight = nn.Parameter(torch.cat([c.weight for c in convs]), requires_grad=False)
        qkv.bias = nn.Parameter(torch.cat([c.bias for c in convs]), requires_grad=False)
        proj = fold_attn_conv(attn.proj_conv)
    else:
        qkv = fold_repconv_chain([r for r, _ in pairs], [b for _, b in pairs])
        proj = fold_repconv_chain([attn.proj_conv[0]], [attn.proj_conv[1]])
    return FusedQKVAttention(attn, qkv, proj)


REPCONV_MODES = ("chain", "dense")


@torch.no_grad()
def fold_model(model: MetaSpikeFormer, repconv: str = "chain") -> MetaSpikeFormer:
    """Folded eval-only copy of ``model``: the same function in eval mode up to float rounding
    (see ``docs/model.md``: identical spikes on the golden vector, not bit-exact in general).

    ``repconv="dense"`` folds each RepConv (+ its BN) into one 3x3 conv (the re-parameterised form,
    good for accelerators); ``"chain"`` (default, fastest on CPU) keeps 1x1 -> depthwise 3x3 -> 1x1
    with every BN folded, which needs ~4x fewer multiply-adds than the dense 3x3.  The Q/K/V convs
    of each attention block become one :class:`~snn.compile.modules.FusedQKVAttention` conv.

    The copy's ``train()`` raises, ``is_folded`` is True and its parameters need no gradient.
    Fast execution is a backend's business (e.g. :func:`snn.backends.cpu.build`).
    """
    if repconv not in REPCONV_MODES:
        raise ValueError(f"repconv must be one of {REPCONV_MODES}, got {repconv!r}")
    if not isinstance(model, MetaSpikeFormer):
        raise TypeError(f"fold_model takes a MetaSpikeFormer, got {type(model).__name__}")
    if model.is_folded:
        raise ValueError("this model is already folded; fold the original model")
    folded = copy.deepcopy(model).eval()
    for m in list(folded.modules()):
        if isinstance(m, Downsampling):
            m.encode_conv, m.encode_bn = fold_conv_bn(m.encode_conv, m.encode_bn), nn.Identity()
        elif isinstance(m, SepConv):
            m.pwconv1, m.bn1 = fold_conv_bn(m.pwconv1, m.bn1), nn.Identity()
            m.pwconv2, m.bn2 = fold_conv_bn(m.pwconv2, m.bn2), nn.Identity()
        elif isinstance(m, ConvBlock):
            m.conv1, m.bn1 = fold_conv_bn(m.conv1, m.bn1), nn.Identity()
            m.conv2, m.bn2 = fold_conv_bn(m.conv2, m.bn2), nn.Identity()
        elif isinstance(m, ChannelMLP):
            m.fc1_conv, m.fc1_bn = fold_conv_bn(m.fc1_conv, m.fc1_bn), nn.Identity()
            m.fc2_conv, m.fc2_bn = fold_conv_bn(m.fc2_conv, m.fc2_bn), nn.Identity()
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpikeDrivenSelfAttention):
                setattr(parent, name, _fold_attention(child, repconv))
    for p in folded.parameters():
        p.requires_grad_(False)
    folded.inference_only = True
    return folded
