"""NIR export: what maps is written, the attention is a named cut, nir.read reads it back."""

import json

import numpy as np
import pytest

import snn
import snn.chip

nir = pytest.importorskip("nir")

from .conftest import SHIPPED  # noqa: E402


def test_export_and_read_back(tmp_path):
    model, meta = snn.load_checkpoint(SHIPPED)
    path = tmp_path / "m.nir"
    snn.chip.export_nir(model, path, input_size=(64, 64))
    g = nir.read(str(path))
    kinds = {}
    for name, node in g.nodes.items():
        kinds.setdefault(type(node).__name__, []).append(name)
    assert len(kinds["LIF"]) == len(model.state_keys()) - 4  # q, k and v neurons: one node per block
    assert "block3.0.attn.attn.cut_in" in g.nodes and "block4.0.attn.attn.cut_out" in g.nodes
    assert isinstance(g.nodes["block3.0.attn.attn.cut_in"], nir.Output)
    # the folded stem equals BN(conv) of the model
    stem = g.nodes["downsample1_1.encode_conv"]
    conv, bn = model.downsample1_1.encode_conv, model.downsample1_1.encode_bn
    s = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().numpy()
    np.testing.assert_allclose(stem.weight, conv.weight.detach().numpy() * s[:, None, None, None], rtol=1e-5,
                               atol=1e-6)
    # the residual stream: the LIF after the first SepConv reads the stem and the SepConv's output conv
    into = sorted(a for a, b in g.edges if b == "ConvBlock1_1.0.lif1")
    assert into == ["ConvBlock1_1.0.Conv.pwconv2", "downsample1_1.encode_conv"]
    lif = g.nodes["ConvBlock1_1.0.lif1"]
    assert np.all(lif.tau == 2.0) and np.all(lif.v_threshold == np.float32(0.5 + 2.0 ** -22))  # the exact grid's
    cuts = json.loads(g.metadata["cuts"])
    assert [c["op"] for c in cuts] == ["input", "block3.0.attn.attn", "block4.0.attn.attn"]
