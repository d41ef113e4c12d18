"""Small hand-made chip programs for tests (random ones for the property tests)."""

from __future__ import annotations

import numpy as np
import torch

import snn
from snn.backends.chip.profile import profile_from_dict
from snn.backends.chip.program import Op, Program, conv_out_hw


def profile(weight_bits=8, membrane_bits=16, accumulator_bits=24, input_bits=8, rounding="floor", attn_frac_bits=0,
            lif_frac_bits=0, scale_grid="fitted"):
    return profile_from_dict({
        "name": "test", "description": "test",
        "numerics": dict(weight_bits=weight_bits, membrane_bits=membrane_bits, accumulator_bits=accumulator_bits,
                         input_bits=input_bits, rounding=rounding, attn_frac_bits=attn_frac_bits,
                         lif_frac_bits=lif_frac_bits, scale_grid=scale_grid),
        "cores": dict(count=0, neurons_per_core=0, kernel_memory_per_core=[0], neuron_memory_per_core=[0],
                      memory_formula="dense", one_layer_per_core=False, max_fan_in=0, max_fan_out=0,
                      supports_attention=True, supports_graded_input=True),
        "energy": dict(e_ac_pj=0.9, e_mac_pj=4.6, e_neuron_pj=0.9, e_read_pj_per_byte=1.25),
    })


def conv(name, src, dst, w, bias, stride=1, pad=0, groups=1, mode="set", src_kind="spike", shift=None):
    w = np.asarray(w, np.int8)
    co = w.shape[0]
    sh = np.zeros(co, np.int32) if shift is None else np.asarray(shift, np.int32)
    return Op("conv", name, src, dst, {"kernel": w.shape[2], "stride": stride, "pad": pad, "groups": groups,
                                       "mode": mode, "src_kind": src_kind},
              {"weight": w, "bias": np.asarray(bias, np.int32), "shift": sh})


def lif(name, src, theta, in_shift=0):
    return Op("lif", name, src, name, {"state": name, "in_shift": in_shift, "float_keys": [name]},
              {"theta": np.asarray(theta, np.int32)})


def random_program(rng: np.random.Generator, *, weight_bits=8, membrane_bits=16, accumulator_bits=24,
                   rounding="floor", attention=True, depthwise=True, hw=(5, 6), channels=4, heads=2,
                   stride=1, big=False, signed=False) -> Program:
    """A random program using every op kind: input -> conv (graded) -> stream; a spiking conv block
    writing back into the stream; optionally a depthwise -> pointwise (graded) pair and an SDSA
    block; pool -> LIF -> head.  ``big``: weights, biases and thresholds that force saturations.
    ``signed``: weight exponents of either sign per channel (``-6..3``: left shifts too), on every
    conv (the depthwise conv and the head too); else ``0..3`` (depthwise and head: 0)."""
    qmax = (1 << (weight_bits - 1)) - 1
    prof = profile(weight_bits, membrane_bits, accumulator_bits, 8, rounding, int(rng.integers(0, 3)))
    cin = int(rng.integers(1, 3))
    H, W = hw
    C = channels
    bmax = (1 << (accumulator_bits - 2)) if big else 40
    tmax = (1 << (membrane_bits - 2)) if big else 60

    def w(*shape):
        return rng.integers(-qmax, qmax + 1, shape)

    def b(n):
        return rng.integers(-bmax, bmax + 1, n)

    def th(n):
        return rng.integers(1, tmax + 1, n)

    def sh(n):
        return rng.integers(-6 if signed else 0, 4, n)

    def sh0(n):  # the depthwise conv's and the head's: 0 unless signed
        return sh(n) if signed else None

    clip = int(rng.integers(3, 30))
    lut = np.sort(rng.integers(0, 256, clip + 1)).astype(np.int32)
    lut[0] = 0
    ops = [Op("input", "input", "frame", "input", {"clip": clip}, {"lut": lut})]
    buffers = {"frame": (cin, H, W), "input": (cin, H, W)}
    k0 = 3
    ho, wo = conv_out_hw(H, W, k0, stride, 1)
    buffers["s"] = (C, ho, wo)
    ops.append(conv("stem", "input", "s", w(C, cin, k0, k0), b(C), stride, 1, 1, "set", "graded", sh(C)))
    # spiking 3x3 block into the stream
    buffers["l1"] = (C, ho, wo)
    ops.append(lif("l1", "s", th(C)))
    g = int(rng.choice([1, 2])) if C % 2 == 0 else 1
    buffers["c1"] = (2 * C, ho, wo)
    ops.append(conv("c1", "l1", "c1", w(2 * C, C // g, 3, 3), b(2 * C), 1, 1, g, "set", "spike", sh(2 * C)))
    buffers["l2"] = (2 * C, ho, wo)
    ops.append(lif("l2", "c1", th(2 * C)))
    ops.append(conv("c2", "l2", "s", w(C, 2 * C, 1, 1), b(C), 1, 0, 1, "add", "spike", sh(C)))
    if depthwise:
        buffers["l3"] = (C, ho, wo)
        ops.append(lif("l3", "s", th(C)))
        buffers["dw"] = (C, ho, wo)
        ops.append(conv("dw", "l3", "dw", w(C, 1, 3, 3), np.zeros(C), 1, 1, C, "set", "spike", sh0(C)))
        ops.append(conv("pw", "dw", "s", w(C, C, 1, 1), b(C), 1, 0, 1, "add", "graded", sh(C)))
    if attention:
        buffers["hl"] = (C, ho, wo)
        ops.append(lif("hl", "s", th(C)))
        buffers["qkv"] = (3 * C, ho, wo)
        ops.append(conv("qkv", "hl", "qkv", w(3 * C, C, 3, 3), b(3 * C), 1, 1, 1, "set", "spike", sh(3 * C)))
        buffers["ql"] = (3 * C, ho, wo)
        ops.append(lif("ql", "qkv", th(3 * C)))
        buffers["y"] = (C, ho, wo)
        ops.append(Op("attn", "attn", "ql", "y", {"heads": heads, "scale": 0.125}, {}))
        buffers["al"] = (C, ho, wo)
        ops.append(lif("al", "y", rng.integers(1, 8, C), in_shift=int(rng.integers(0, 3))))
        ops.append(conv("proj", "al", "s", w(C, C, 3, 3), b(C), 1, 1, 1, "add", "spike", sh(C)))
    buffers["pool"] = (C, 1, 1)
    ops.append(Op("pool", "pool", "s", "pool", {"shift": int(rng.integers(0, 4)), "n": ho * wo}, {}))
    buffers["hlif"] = (C, 1, 1)
    ops.append(lif("hlif", "pool", th(C)))
    ncls = int(rng.integers(2, 6))
    buffers["logits"] = (ncls, 1, 1)
    ops.append(conv("head", "hlif", "logits", w(ncls, C, 1, 1), b(ncls), 1, 0, 1, "set", "spike", sh0(ncls)))
    return Program(ops, buffers, "logits", 1.0, prof, {"class_names": None}).validate()


def random_state(rng, program: Program, batch: int):
    lim = 1 << (program.profile.numerics.membrane_bits - 1)
    return {k: rng.integers(-lim, lim, (batch,) + program.state_shape(k)).astype(program.membrane_dtype)
            for k in program.state_keys()}


def small_model(**kw):
    """A tiny Meta-SpikeFormer (seeded) for compiler and simulator tests."""
    args = dict(embed_dims=(8, 16, 16, 16), depths=(1, 1), num_classes=5, in_channels=2, T=2, v_threshold=0.5)
    args.update(kw)
    torch.manual_seed(0)
    return snn.create_model("meta_spikeformer_tiny", **args).eval()


def with_trained_batchnorms(model):
    """``model`` with BatchNorms of non-trivial statistics, as training leaves them (torch's seeded RNG)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.3)
    return model
