"""Mapping onto a profile's cores, violations, and the energy estimates."""

import json

import numpy as np
import pytest

import snn.chip
from snn.backends.chip.energy import dense_flops, energy
from snn.backends.chip.executor import Executor
from snn.backends.chip.profile import load_profile


@pytest.fixture(scope="module")
def frames(stream_frames):
    return stream_frames[:4].astype(np.int64).reshape(4, 1, 2, 64, 64)


def test_generic_report_maps_everything(shipped_program, frames):
    rep = shipped_program.report(frames)
    assert rep.violations == [] and rep.unmapped == []
    convs = [r for r in rep.layers if r["kind"] == "conv"]
    assert [r["core"] for r in convs] == list(range(len(convs)))
    stem = rep.layers[1]
    assert stem["layer"] == "downsample1_1.encode_conv"
    # 8 x 32 x 32 neurons, each reading 2 x 7 x 7 inputs; 784 int8 weights + 8 int32 biases
    assert (stem["neurons"], stem["synapses"], stem["params"], stem["weight_bytes"]) == (8192, 8192 * 98, 784, 816)
    lif = rep.layers[2]
    assert lif["state_bytes"] == 8192 * 2   # int16 membranes
    json.dumps(rep.to_dict())
    text = rep.to_text()
    assert "0 violation(s)" in text and "paper convention" in text


def test_speck_report_names_what_cannot_map(shipped_program, frames):
    prog = snn.chip.compile(shipped_program.meta["source"], profile="speck",
                            calibration=[frames.reshape(4, 1, 2, 64, 64)])
    rep = prog.report()
    assert rep.unmapped == ["block3.0.attn.attn", "block4.0.attn.attn"]
    v = "\n".join(rep.violations)
    assert "block3.0.attn.attn: spike-spike products" in v
    assert "ConvBlock1_1.0.Conv.pwconv2: multiplies graded" in v
    # 9 cores, one layer each: the first 9 convs that fit get cores, the rest are reported
    cores = [r["core"] for r in rep.layers if r["kind"] == "conv" and r["core"] is not None]
    assert len(cores) == len(set(cores)) == 9
    assert "no free core holds it" in v
    # the sinabs kernel memory formula on the stem: c_in * 2^(ceil(log2(49)) + ceil(log2(8))) = 2 * 64 * 8
    assert rep.layers[1]["kernel_entries"] == 1024
    # neuron memory: 8 * 2^(5 + 5)
    assert rep.layers[1]["neuron_entries"] == 8192


def test_energy_by_hand(shipped_program, frames):
    prog = shipped_program
    e = prog.profile.energy
    _, _, st = Executor(prog).step(frames[0])
    en = energy(prog, st)
    fl = dense_flops(prog)
    # the stem reads graded codes: the paper counts its dense FLOPs as MACs
    assert en["downsample1_1.encode_conv"]["paper_pj"] == pytest.approx(e.e_mac_pj * fl["downsample1_1.encode_conv"])
    # exact: the MACs it really did
    mac = st.layer("downsample1_1.encode_conv")["mac"]
    assert en["downsample1_1.encode_conv"]["exact_pj"] == pytest.approx(e.e_mac_pj * mac)
    # a spiking conv: paper = E_AC * input firing rate * dense FLOPs; exact = E_AC * accumulates
    name = "ConvBlock1_1.0.conv1"
    lif = st.layer("ConvBlock1_1.0.lif1")
    rate = lif["spikes"] / lif["neuron_updates"]
    assert en[name]["paper_pj"] == pytest.approx(e.e_ac_pj * rate * fl[name])
    assert en[name]["exact_pj"] == pytest.approx(e.e_ac_pj * st.layer(name)["ac"])
    assert en[name]["memory_pj"] == pytest.approx(e.e_read_pj_per_byte * st.layer(name)["weight_bytes"])
    # for spike-fed convs the exact count equals the paper's estimate up to border taps
    assert st.layer(name)["ac"] <= rate * fl[name] * 1.0001


def test_report_plot(shipped_program, frames, tmp_path):
    rep = shipped_program.report(frames[:2])
    rep.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="per-step"):
        shipped_program.report().plot(tmp_path / "x.png")


def test_speck_profile_values():
    sp = load_profile("speck")
    assert sp.cores.kernel_memory_per_core[5] == 65536 and sp.cores.neuron_memory_per_core[0] == 65536
