"""docs/chip.md, the claims no other test held: the input table's worked figures (8-bit codes:
a count of 1 is code 14 for 13.6, 2.6 % off; 16 bits: at most 0.015 %), the two profiles'
numbers, the executor's documented constants, and the program file's header (no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import snn
import snn.chip
from snn.backends.chip.executor import Executor
from snn.backends.chip.quantise import input_table

LOG1P = {"norm": "log1p", "scale": 0.25, "clip": 255}  # the shipped model's log1p(count / 4)


def test_input_table_worked_figures():
    c = np.arange(256, dtype=np.float64)
    f = np.log1p(c / 4)
    lut, u = input_table(LOG1P, 8)
    assert u == pytest.approx(np.log1p(255 / 4) / 255)
    assert f[1] / u == pytest.approx(13.6, abs=0.05) and lut[1] == 14
    assert (lut[1] * u - f[1]) / f[1] == pytest.approx(0.026, abs=0.0005)
    lut16, u16 = input_table(LOG1P, 16)
    rel = np.abs(lut16[1:] * u16 - f[1:]) / f[1:]
    assert rel.max() <= 0.00015


def test_profiles_are_the_documented_ones():
    g = snn.chip.load_profile("generic")
    assert (g.numerics.weight_bits, g.numerics.membrane_bits, g.numerics.lif_frac_bits,
            g.numerics.input_bits, g.numerics.accumulator_bits) == (8, 16, 8, 16, 32)
    assert g.cores.count == 0  # unlimited
    s = snn.chip.load_profile("speck")
    assert s.cores.count == 9 and s.cores.one_layer_per_core and s.cores.max_fan_out == 2
    assert list(s.cores.kernel_memory_per_core) == [k * 1024 for k in
                                                    (16, 16, 16, 32, 32, 64, 64, 16, 16)]
    assert list(s.cores.neuron_memory_per_core) == [k * 1024 for k in
                                                    (64, 64, 64, 32, 32, 16, 16, 16, 16)]
    assert (s.numerics.weight_bits, s.numerics.membrane_bits, s.numerics.input_bits,
            s.numerics.lif_frac_bits) == (8, 16, 8, 0)
    assert not s.cores.supports_attention
    # the energy convention: E_MAC 4.6 pJ, E_AC 0.9 pJ
    assert (g.energy.e_mac_pj, g.energy.e_ac_pj) == (4.6, 0.9)


def test_executor_constants_are_the_documented_ones():
    assert Executor.SEGMENTS_MAX_FAN_IN == 2048
    assert Executor.BLOCK_OUTER_MIN_BYTES == 2 << 20
    assert Executor.TUNE_STEPS == 6 and Executor.TUNE_GAIN == 0.9
    assert Executor.FUSE_LIF is True and Executor.ROW_LANES == 16


def test_program_file_is_json_plus_integer_arrays_without_pickle(tmp_path):
    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1),
                             num_classes=5, in_channels=2, T=2).eval()
    prog = snn.chip.compile(model, input_size=(32, 32), encoding=LOG1P)
    path = tmp_path / "p.npz"
    prog.save(path)
    with np.load(path, allow_pickle=False) as z:  # no pickle needed to read any entry
        desc = json.loads(z["__program__"].tobytes().decode("utf-8"))
        arrays = [k for k in z.files if k != "__program__"]
        assert arrays and all(z[k].dtype.kind in "iu" for k in arrays)
    assert desc["format"] == "eventpipe.snn.chip.program" and desc["version"] == 2


def test_finetune_cli_defaults_are_the_documented_ones():
    """"Defaults: 120 steps of 6 synthetic training clips (of 192) and 4 runs ... per step,
    consistency 3, distillation 1, labels 0.5, AdamW lr 1e-4"; margin off, width 0.02."""
    import argparse

    from eventpipe.cli import chip as chip_cli

    sub = argparse.ArgumentParser().add_subparsers()
    p = chip_cli.add_parser(sub)
    a = p.parse_args(["finetune", "-o", "t.pt"])
    assert (a.steps, a.clips, a.streams, a.lr) == (120, 192, 4, 1e-4)
    assert (a.runs, a.run_windows, a.seed) == (4, 16, 0)
    assert (a.consistency, a.distill, a.hard, a.margin, a.margin_width) == (3.0, 1.0, 0.5, 0.0, 0.02)
    c = p.parse_args(["compile", "-o", "p.npz"])
    assert c.profile == "auto"   # "the profile the checkpoint was snapped for, else generic"
