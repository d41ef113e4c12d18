"""Compiling Meta-SpikeFormers: what maps, how it is quantised, and typed errors for what does not."""

import numpy as np
import pytest
import torch
from torch import nn

import snn
import snn.chip
from snn.backends.chip.compile import encoding_from_meta, normalise
from snn.backends.chip.quantise import input_table

from .conftest import SHIPPED


def small(**kw):
    args = dict(embed_dims=(8, 16, 16, 16), depths=(1, 1), num_classes=5, in_channels=2, T=2)
    args.update(kw)
    torch.manual_seed(0)
    return snn.create_model("meta_spikeformer_tiny", **args).eval()


def test_public_names():
    for name in snn.chip.__all__:
        assert hasattr(snn.chip, name), name


def test_shipped_program_shape(shipped_program):
    prog = shipped_program
    model, meta = snn.load_checkpoint(SHIPPED)
    lif_keys = [k for op in prog.ops if op.kind == "lif" for k in op.attrs["float_keys"]]
    assert sorted(lif_keys) == sorted(model.state_keys())    # every neuron is on the chip, once
    assert prog.class_names == meta["class_names"]
    assert prog.input_shape == (2, 64, 64)
    assert prog.meta["encoding"] == {"norm": "qlog1p:6", "scale": 0.25, "clip": 255}  # snapped: the chip's table
    for op in prog.ops:
        if op.kind == "conv":
            assert op.arrays["weight"].dtype == np.int8
            assert np.abs(op.arrays["weight"].astype(int)).max() <= 127
            # every conv uses (close to) its full weight range: the per-channel exponent does that
            assert np.abs(op.arrays["weight"].astype(int)).max() >= 64, op.name
        if op.kind == "lif":
            assert op.arrays["theta"].min() >= 1
    # the attention neuron: V_th / (0.125 / 2^f) (4 * 2^f for V_th = 0.5; the shipped model's sits
    # 2^-22 above it, so on this fitted grid ceil makes it 4 * 2^f + 1)
    att = [op for op in prog.ops if op.name.endswith("attn_lif")]
    assert att and all((op.arrays["theta"] == np.ceil(np.asarray(op.attrs["v_threshold"]) * 2.0 ** op.attrs["in_shift"]
                                                      / 0.125 - 1e-9)).all() for op in att)
    assert all((op.arrays["theta"] == (4 << op.attrs["in_shift"]) + 1).all() for op in att)


def test_residual_stream_writers_share_its_scale(shipped_program):
    prog = shipped_program
    writers = [op for op in prog.ops if op.kind == "conv" and op.dst == "downsample2"]
    assert [op.attrs["mode"] for op in writers] == ["set"] + ["add"] * (len(writers) - 1)
    assert len(writers) == 5   # downsample, then SepConv and MLP of two conv blocks
    # one scale per channel for the whole stream, and every LIF reading it uses it
    s = np.array(prog.meta["scales"]["downsample2"])
    for op in prog.ops:
        if op.kind == "lif" and op.src == "downsample2":
            # V_th = 0.5 on the membrane scale s / 2^f (f: its fractional bits)
            f = op.attrs["in_shift"]
            np.testing.assert_array_equal(op.arrays["theta"], np.ceil(0.5 * 2.0 ** f / s - 1e-9).astype(int))


def test_input_table_log1p():
    lut, u = input_table({"norm": "log1p", "scale": 0.25, "clip": 255}, 8)
    assert lut[0] == 0 and lut[-1] == 255 and np.all(np.diff(lut) >= 0)
    c = np.arange(256)
    assert np.max(np.abs(lut * u - np.log1p(c * 0.25))) <= u / 2 + 1e-12
    lut, u = input_table({"norm": "counts", "scale": 0.25, "clip": 255}, 8)
    np.testing.assert_array_equal(lut, c)
    assert u == 0.25


def test_encoding_from_checkpoint_recipe():
    _, meta = snn.load_checkpoint(SHIPPED)
    assert encoding_from_meta(meta, (64, 64)) == {"norm": "qlog1p:6", "scale": 0.25, "clip": 255}
    x = normalise(np.array([0, 4, 300]), {"norm": "log1p", "scale": 0.25, "clip": 255})
    np.testing.assert_allclose(x.numpy(), np.log1p([0, 1, 63.75]), rtol=1e-6)


def test_weight_bits_from_the_profile():
    prof = snn.chip.load_profile("generic").to_dict()
    prof["numerics"]["weight_bits"] = 4
    prog = snn.chip.compile(small(), profile=prof, input_size=(32, 32),
                            encoding={"norm": "counts", "scale": 1.0, "clip": 15})
    conv = [op for op in prog.ops if op.kind == "conv"]
    assert max(int(np.abs(op.arrays["weight"].astype(int)).max()) for op in conv) == 7


def test_calibration_raises_scales_to_fit_the_membrane():
    model = small()
    enc = {"norm": "counts", "scale": 1.0, "clip": 255}
    prof = snn.chip.load_profile("generic").to_dict()
    prof["numerics"]["membrane_bits"] = 8
    rng = np.random.default_rng(0)
    cal = rng.integers(0, 200, (2, 2, 2, 32, 32))
    plain = snn.chip.compile(model, profile=prof, input_size=(32, 32), encoding=enc)
    cal_prog = snn.chip.compile(model, profile=prof, input_size=(32, 32), encoding=enc, calibration=[cal])
    s0 = np.array(plain.meta["scales"]["downsample1_1"])
    s1 = np.array(cal_prog.meta["scales"]["downsample1_1"])
    assert np.all(s1 >= s0) and np.any(s1 > s0)
    ex0, ex1 = snn.chip.Executor(plain), snn.chip.Executor(cal_prog)
    st0 = st1 = None
    sat0 = sat1 = 0
    for t in range(2):
        _, st0, a = ex0.step(cal[t], st0)
        _, st1, b = ex1.step(cal[t], st1)
        sat0 += a.layer("ConvBlock1_1.0.Conv.lif1")["saturations"]
        sat1 += b.layer("ConvBlock1_1.0.Conv.lif1")["saturations"]
    assert sat1 < sat0


# ---------------------------------------------------------------------------- what does not map
def _compile(model):
    return snn.chip.compile(model, input_size=(32, 32), encoding={"norm": "counts", "scale": 1.0, "clip": 15})


def test_multispike_neuron_is_refused():
    with pytest.raises(snn.chip.CompileError, match="not a LIF") as e:
        _compile(small(neuron="multispike"))
    assert e.value.layer == "ConvBlock1_1.0.Conv.lif1"


def test_tau_other_than_two_is_refused():
    with pytest.raises(snn.chip.CompileError, match="tau=3") as e:
        _compile(small(tau=3.0))
    assert e.value.layer == "ConvBlock1_1.0.Conv.lif1"


def test_soft_reset_is_refused():
    with pytest.raises(snn.chip.CompileError, match="soft-reset"):
        _compile(small(soft_reset=True))


@pytest.mark.parametrize("mode", ["sdsa1", "sdsa2"])
def test_other_attention_is_refused(mode):
    with pytest.raises(snn.chip.CompileError, match=mode) as e:
        _compile(small(attn_mode=mode))
    assert e.value.layer == "block3.0.attn"


def test_unknown_block_is_refused():
    m = small()
    m.block3[0] = nn.Identity()
    with pytest.raises(snn.chip.CompileError, match="Identity") as e:
        _compile(m)
    assert e.value.layer == "block3.0"


def test_float_only_head_is_refused():
    m = small()
    m.head = nn.Sequential(nn.Linear(16, 5), nn.Softmax(-1))
    with pytest.raises(snn.chip.CompileError, match="Linear head") as e:
        _compile(m)
    assert e.value.layer == "head"


def test_folded_model_is_refused():
    with pytest.raises(snn.chip.CompileError, match="already folded"):
        from snn.compile import fold_model

        _compile(fold_model(small()))


def test_unknown_representation_is_refused():
    with pytest.raises(snn.chip.CompileError, match="representation") as e:
        encoding_from_meta({"extra": {"representation": "timesurface"}}, (64, 64))
    assert e.value.layer == "input"


def test_every_lif_gets_the_fractional_membrane_bits_that_fit(shipped_program):
    """generic: ``lif_frac_bits = 8``: each LIF's input is shifted left by f <= 8 bits before the
    leak, its threshold is ``ceil(V_th / (s / 2^f))`` and stays <= 2^(m-2); with
    ``lif_frac_bits = 0`` no LIF but the attention's shifts."""
    prog = shipped_program
    mem_half = (1 << (prog.profile.numerics.membrane_bits - 1)) // 2
    assert prog.profile.numerics.lif_frac_bits == 8
    shifts = []
    for op in prog.ops:
        if op.kind != "lif" or op.name.endswith("attn_lif"):
            continue
        f = op.attrs["in_shift"]
        s = np.asarray(prog.meta["scales"][op.src])
        vth = np.asarray(op.attrs["v_threshold"])
        np.testing.assert_array_equal(op.arrays["theta"], np.maximum(np.ceil(vth * 2.0 ** f / s - 1e-9), 1))
        assert 0 <= f <= 8 and op.arrays["theta"].max() <= mem_half, op.name
        shifts.append(f)
    assert max(shifts) >= 4          # the membranes are finer than the synaptic sums
    prof = snn.chip.load_profile("generic").to_dict()
    prof["numerics"]["lif_frac_bits"] = 0
    coarse = snn.chip.compile(SHIPPED, profile=prof)
    assert all(op.attrs["in_shift"] == 0 for op in coarse.ops if op.kind == "lif" and not op.name.endswith("attn_lif"))


def test_input_table_sixteen_bits():
    """16-bit codes: the same table rule, error at most half a (much smaller) code step."""
    lut, u = input_table({"norm": "log1p", "scale": 0.25, "clip": 255}, 16)
    c = np.arange(256)
    assert lut[-1] == 65535 and np.all(np.diff(lut) > 0)
    assert np.max(np.abs(lut * u - np.log1p(c * 0.25))) <= u / 2 + 1e-12
    assert u == pytest.approx(np.log1p(255 * 0.25) / 65535)


def test_narrow_membranes_get_coarser_scales():
    prof = snn.chip.load_profile("generic").to_dict()
    prof["numerics"]["membrane_bits"] = 8
    prof["numerics"]["attn_frac_bits"] = 8
    prog = snn.chip.compile(small(), profile=prof, input_size=(32, 32),
                            encoding={"norm": "counts", "scale": 1.0, "clip": 15})
    for op in prog.ops:
        if op.kind == "lif":
            assert 1 <= op.arrays["theta"].max() <= 63, op.name
    att = [op for op in prog.ops if op.name.endswith("attn_lif")]
    assert all(op.attrs["in_shift"] == 3 for op in att)   # 4 * 2^3 = 32 <= 63 < 4 * 2^4


def test_kd_and_feature_heads_compile_and_run():
    for kw in (dict(kd=True), dict(head_input="features"), dict(kd=True, head_input="features")):
        prog = _compile(small(**kw))
        logits, _, _ = snn.chip.Executor(prog).step(np.ones((1, 2, 32, 32), np.int64))
        assert logits.shape == (1, 5)
