"""Folding pieces against their unfolded definitions (random BN statistics, seeded)."""

from __future__ import annotations

import pytest
import torch

from snn.backends.cpu import Pointwise, SpikeConv2d
from snn.compile import fold_conv_bn, fold_repconv, fold_repconv_chain
from snn.models import RepConv

from .conftest import randomize_bn


def _rep(cin, cout, seed):
    torch.manual_seed(seed)
    seq = torch.nn.Sequential(RepConv(cin, cout), torch.nn.BatchNorm2d(cout))
    return randomize_bn(seq, seed).eval()


@pytest.mark.parametrize("cin,cout", [(8, 8), (6, 10)])
def test_repconv_dense_and_chain_equal_reference(cin, cout):
    seq = _rep(cin, cout, 0)
    x = (torch.rand(2, cin, 7, 9) < 0.3).float()
    with torch.no_grad():
        ref = seq(x)
        dense = fold_repconv(seq[0], seq[1])
        chain = fold_repconv_chain([seq[0]], [seq[1]])
        assert dense.kernel_size == (3, 3) and dense.padding == (1, 1)
        torch.testing.assert_close(dense(x), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(chain(x), ref, atol=1e-5, rtol=1e-5)


def test_fused_qkv_chain_equals_three_repconvs():
    seqs = [_rep(8, 8, s) for s in range(3)]
    x = (torch.rand(1, 8, 5, 5) < 0.4).float()
    with torch.no_grad():
        fused = fold_repconv_chain([s[0] for s in seqs], [s[1] for s in seqs])
        torch.testing.assert_close(fused(x), torch.cat([s(x) for s in seqs], 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conv_cls,shape", [(torch.nn.Conv2d, (2, 6, 5, 5)), (torch.nn.Conv1d, (3, 6, 11))])
def test_conv_bn_fold_and_pointwise(conv_cls, shape):
    torch.manual_seed(1)
    conv = conv_cls(6, 12, 1, bias=True)
    bn = randomize_bn(torch.nn.BatchNorm2d(12) if conv_cls is torch.nn.Conv2d else torch.nn.BatchNorm1d(12)).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        folded = fold_conv_bn(conv, bn)
        torch.testing.assert_close(folded(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(Pointwise(folded)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride,k,pad", [(1, 3, 1), (2, 3, 1), (2, 7, 3)])
def test_spike_conv_equals_dense(stride, k, pad):
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(5, 9, k, stride, pad)
    x = torch.poisson(torch.full((2, 5, 13, 12), 0.1))  # sparse counts incl. values > 1
    sc = SpikeConv2d(conv, max_density=1.0, min_out_channels=0)
    with torch.no_grad():
        torch.testing.assert_close(sc(x), conv(x), atol=1e-5, rtol=1e-5)
        assert sc.sparse_calls == 1
        dense_in = torch.rand(1, 5, 8, 8) + 0.1
        sc.max_density = 0.15
        torch.testing.assert_close(sc(dense_in), conv(dense_in), atol=0, rtol=0)
        assert sc.sparse_calls == 1  # dense input took the dense conv
