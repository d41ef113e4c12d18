"""Energy per step: the Spike-driven Transformer papers' convention beside our exact counts.

Paper convention (Yao et al., after Horowitz 2014, 45 nm): ``E = E_MAC * FLOPs(first layer) +
E_AC * sum_l fr_l * FLOPs_l``, with ``FLOPs_l`` the dense multiply-accumulates of layer ``l`` and
``fr_l`` the firing rate of its input; neurons and memory are not counted.

Exact: every accumulate (``ac``, attention increments, ``d`` adds per attention row, the token sum)
at ``e_ac_pj``, every multiply-accumulate at ``e_mac_pj``, every membrane update at ``e_neuron_pj``.
Memory traffic apart: weight bytes read plus membranes read and written, at ``e_read_pj_per_byte``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict

import numpy as np

from .stats import IDX, Stats

if TYPE_CHECKING:  # annotations only (program.py -> report.py -> this module)
    from .program import Program


def dense_flops(program: Program) -> Dict[str, int]:
    """Dense multiply-accumulates per op and step (batch 1): what a non-spiking layer would do."""
    out = {}
    for op in program.ops:
        if op.kind == "conv":
            co, ho, wo = program.buffers[op.dst]
            w = op.arrays["weight"]
            out[op.name] = int(co * w.shape[1] * w.shape[2] * w.shape[3] * ho * wo)
        elif op.kind == "attn":
            c, h, w = program.buffers[op.dst]
            d = c // int(op.attrs["heads"])
            out[op.name] = int(2 * h * w * d * c)  # K^T V and Q (K^T V), per head d x d x N each
    return out


def energy(program: Program, stats: Stats, batch: int = 1) -> Dict[str, Dict[str, float]]:
    """Per-op energy (pJ per step and stream) from ``stats`` of one step over ``batch`` rows."""
    e = program.profile.energy
    mem_bytes = np.dtype(program.membrane_dtype).itemsize
    flops = dense_flops(program)
    rates = {}
    for i, op in enumerate(program.ops):
        if op.kind == "lif":
            n = stats.counts[i, IDX["neuron_updates"]]
            rates[op.dst] = stats.counts[i, IDX["spikes"]] / n if n else 0.0
    out = {}
    for i, op in enumerate(program.ops):
        c = {k: float(stats.counts[i, j]) / batch for k, j in IDX.items()}
        d = 0
        if op.kind == "attn":
            ch = program.buffers[op.dst][0]
            d = ch // int(op.attrs["heads"])
        exact = (e.e_ac_pj * (c["ac"] + c["attn_increments"] + d * c["attn_row_adds"] + c["other_adds"])
                 + e.e_mac_pj * c["mac"] + e.e_neuron_pj * c["neuron_updates"])
        memory = e.e_read_pj_per_byte * (c["weight_bytes"] + 2 * mem_bytes * c["neuron_updates"])
        paper = 0.0
        if op.name in flops:
            if op.kind == "conv" and op.attrs["src_kind"] == "graded":
                paper = e.e_mac_pj * flops[op.name]          # the encoding layer (and graded maps): MACs
            else:
                paper = e.e_ac_pj * rates.get(op.src, 0.0) * flops[op.name]
        out[op.name] = {"paper_pj": paper, "exact_pj": exact, "memory_pj": memory}
    return out
