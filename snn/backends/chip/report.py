"""Mapping a program onto a profile's cores, and the per-layer / per-step report.

Per layer: neurons, synapses (connections) and parameters, weight and state bytes, the core it
lands on, the worst-case sum (``sum_bound``, :mod:`.reach`: on the exact grid the float model
computes the chip's sums exactly while every one stays within 2^24) and the profile's limits it breaks (violations are reported, never hidden: on a conv-only
chip the attention is listed as unmappable).  Per step (when frames are given): ops by kind and the
energy estimate of :mod:`.energy`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Dict, List, Optional

import numpy as np

from .energy import dense_flops, energy
from .reach import FLOAT32_EXACT, float32_reach
from .stats import COUNTERS, Stats

if TYPE_CHECKING:  # annotations only (program.py imports this module)
    from .program import Program


def _kernel_entries(formula: str, cin: int, k: int, cout: int, params: int) -> int:
    if formula == "speck":  # sinabs dynapcnn: c * 2^(ceil(log2(kx*ky)) + ceil(log2(f)))
        return int(cin * 2 ** (math.ceil(math.log2(k * k)) + math.ceil(math.log2(max(cout, 1)))))
    return params


def _neuron_entries(formula: str, c: int, h: int, w: int) -> int:
    if formula == "speck":  # f * 2^(ceil(log2(fy)) + ceil(log2(fx)))
        return int(c * 2 ** (math.ceil(math.log2(h)) + math.ceil(math.log2(w))))
    return c * h * w


@dataclasses.dataclass
class Report:
    profile: str
    layers: List[Dict]
    per_step: Optional[Dict] = None     # totals per step (mean over the frames given)
    unmapped: List[str] = dataclasses.field(default_factory=list)
    exact_grid: bool = False            # a pow2 program: the float model's sums are the chip's within 2^24

    @property
    def past_float32(self) -> List[str]:
        """The layers whose worst-case sum (``sum_bound``) passes float32's 2^24 units."""
        return [r["layer"] for r in self.layers if (r.get("sum_bound") or 0) > FLOAT32_EXACT]

    def _reach_line(self) -> str:
        bounded = [r for r in self.layers if r.get("sum_bound") is not None]
        top = max(bounded, key=lambda r: r["sum_bound"])
        if not self.past_float32:
            return (f"float32 reach: every sum within 2^24 units (largest 2^{math.log2(max(top['sum_bound'], 1)):.2f}, "
                    f"{top['layer']}): the float model computes the chip's sums exactly")
        return (f"float32 reach: {len(self.past_float32)} layer(s) can pass 2^24 units, where the float model may "
                f"not compute the chip's sums: {', '.join(self.past_float32)}")

    @property
    def violations(self) -> List[str]:
        return [f"{r['layer']}: {v}" for r in self.layers for v in r["violations"]]

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self) | {"violations": self.violations, "past_float32": self.past_float32}

    def to_text(self) -> str:
        cols = ["layer", "kind", "neurons", "synapses", "params", "weight_B", "state_B", "core", "sum_log2"]
        if self.per_step:
            cols += ["ac", "mac", "spikes", "paper_pJ", "exact_pJ", "memory_pJ"]
        rows = []
        for r in self.layers:
            e = r.get("step") or {}
            bound = r.get("sum_bound")
            vals = [r["layer"], r["kind"], r["neurons"], r["synapses"], r["params"], r["weight_bytes"],
                    r["state_bytes"], "-" if r["core"] is None else r["core"],
                    "-" if bound is None else f"{math.log2(max(bound, 1)):.2f}"]
            if self.per_step:
                vals += [round(e.get("ac", 0)), round(e.get("mac", 0)), round(e.get("spikes", 0)),
                         f"{e.get('paper_pj', 0):.0f}", f"{e.get('exact_pj', 0):.0f}", f"{e.get('memory_pj', 0):.0f}"]
            rows.append([str(v) for v in vals])
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
        lines.append(f"profile {self.profile}: {sum(r['params'] for r in self.layers)} parameters, "
                     f"{sum(r['weight_bytes'] for r in self.layers)} weight bytes, "
                     f"{sum(r['state_bytes'] for r in self.layers)} state bytes")
        if self.per_step:
            p = self.per_step
            lines.append("per step: " + ", ".join(f"{k} {p[k]:.0f}" for k in COUNTERS))
            lines.append(f"energy per step: paper convention {p['paper_pj'] / 1e6:.3f} uJ, exact counts "
                         f"{p['exact_pj'] / 1e6:.3f} uJ, memory traffic {p['memory_pj'] / 1e6:.3f} uJ (apart)")
        if self.exact_grid:
            lines.append(self._reach_line())
        v = self.violations
        lines.append(f"{len(v)} violation(s)" + (":" if v else ""))
        lines += [f"  {x}" for x in v]
        return "\n".join(lines)

    def plot(self, path) -> None:
        """A per-layer PNG of ops (accumulates, MACs) and energy (paper vs exact)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.layers if r.get("step")]
        if not rows:
            raise ValueError("the report has no per-step counts: build it with frames to plot it")
        names = [r["layer"] for r in rows]
        x = np.arange(len(rows))
        fig, ax = plt.subplots(2, 1, figsize=(max(8, len(rows) * 0.3), 8), sharex=True)
        ax[0].bar(x - 0.2, [r["step"]["ac"] for r in rows], 0.4, label="accumulates")
        ax[0].bar(x + 0.2, [r["step"]["mac"] for r in rows], 0.4, label="MACs")
        ax[0].set_yscale("symlog")
        ax[0].set_ylabel("ops per step")
        ax[0].legend()
        ax[1].bar(x - 0.27, [r["step"]["paper_pj"] for r in rows], 0.27, label="paper convention")
        ax[1].bar(x, [r["step"]["exact_pj"] for r in rows], 0.27, label="exact counts")
        ax[1].bar(x + 0.27, [r["step"]["memory_pj"] for r in rows], 0.27, label="memory traffic")
        ax[1].set_yscale("symlog")
        ax[1].set_ylabel("pJ per step")
        ax[1].legend()
        ax[1].set_xticks(x, names, rotation=90, fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _counted(program: Program, frames):
    """The executor's counters summed over ``frames`` (one run ``[N, B, C, H, W]`` or an iterable
    of runs, each from rest) and the number of steps x rows they hold."""
    from .executor import Executor

    ex = Executor(program)
    total, steps = None, 0
    # an array, list or tuple is one run (as np.asarray reads it); other iterables yield runs
    for run in ([frames] if isinstance(frames, (np.ndarray, list, tuple)) else frames):
        run = np.asarray(run)
        if run.ndim != 5:
            raise ValueError(f"frames must be integer counts [N, B, C, H, W], got {run.shape}")
        state = None
        for f in run:
            _, state, st = ex.step(f, state)
            total = st if total is None else Stats(total.names, total.kinds, total.counts + st.counts)
        steps += run.shape[0] * run.shape[1]
    if total is None:
        raise ValueError("frames hold no step")
    return total, steps


def _per_step(program: Program, frames, layers: List[dict], flops: Dict[str, float]) -> Dict[str, float]:
    """Ops and energy per step: each layer's row gets ``step``; returns the totals."""
    total, steps = _counted(program, frames)
    mean = Stats(total.names, total.kinds, total.counts)
    en = energy(program, mean, batch=steps)
    per_step = {k: 0.0 for k in COUNTERS} | {"paper_pj": 0.0, "exact_pj": 0.0, "memory_pj": 0.0,
                                             "dense_flops": float(sum(flops.values()))}
    for r, row in zip(layers, mean.counts):
        step = {k: float(v) / steps for k, v in zip(COUNTERS, row)} | en[r["layer"]]
        r["step"] = step
        for k in list(per_step):
            if k in step:
                per_step[k] += step[k]
    return per_step


def build_report(program: Program, frames=None) -> Report:
    """``frames``: optional integer counts ``[N, B, C, H, W]`` (N steps from rest; an array, or a list
    of the N steps) for per-step counts, or an iterator / iterable object yielding such runs (each
    from rest; the counts are summed over all of them, e.g. ``ClipBatches``)."""
    prof = program.profile
    cores = prof.cores
    nb = prof.numerics
    mem_b = np.dtype(program.membrane_dtype).itemsize
    flops = dense_flops(program)
    readers: Dict[str, List[str]] = {}
    for op in program.ops:
        readers.setdefault(op.src, []).append(op.name)
    km = list(cores.kernel_memory_per_core) * (cores.count if len(cores.kernel_memory_per_core) == 1 else 1)
    nm = list(cores.neuron_memory_per_core) * (cores.count if len(cores.neuron_memory_per_core) == 1 else 1)
    used = [False] * max(cores.count, 0)
    next_core = 0
    layers, unmapped = [], []
    first_conv = next(op.name for op in program.ops if op.kind == "conv")
    reach = float32_reach(program)
    for op in program.ops:
        c, h, w = program.buffers[op.dst]
        r = {"layer": op.name, "kind": op.kind, "neurons": 0, "synapses": 0, "params": 0, "weight_bytes": 0,
             "state_bytes": 0, "core": None, "violations": [], "sum_bound": reach.get(op.name)}
        if op.kind == "conv":
            wt = op.arrays["weight"]
            params = int(wt.size)
            fan_in = int(np.prod(wt.shape[1:]))
            r.update(neurons=c * h * w, synapses=fan_in * c * h * w, params=params,
                     weight_bytes=(params * nb.weight_bits + 7) // 8 + 4 * c)
            if op.attrs["src_kind"] == "graded" and op.name != first_conv and not cores.supports_graded_input:
                r["violations"].append("multiplies graded (non-binary) inputs; this chip takes spikes only")
            if cores.max_fan_in and fan_in > cores.max_fan_in:
                r["violations"].append(f"fan-in {fan_in} > {cores.max_fan_in}")
            kent = _kernel_entries(cores.memory_formula, wt.shape[1], wt.shape[2], c, params)
            nent = _neuron_entries(cores.memory_formula, c, h, w)
            r["kernel_entries"], r["neuron_entries"] = kent, nent
            if cores.count == 0:
                r["core"] = next_core
                next_core += 1
            else:
                fits = [i for i in range(cores.count) if not used[i]
                        and (km[i] == 0 or kent <= km[i]) and (nm[i] == 0 or nent <= nm[i])
                        and (cores.neurons_per_core == 0 or c * h * w <= cores.neurons_per_core)]
                if fits:
                    # the smallest core that fits, so the big ones stay free for big layers
                    i = min(fits, key=lambda j: (km[j] or 1 << 62, nm[j] or 1 << 62))
                    r["core"] = i
                    if cores.one_layer_per_core:
                        used[i] = True
                else:
                    free = sum(not u for u in used)
                    r["violations"].append(f"no free core holds it (kernel {kent}, neurons {nent} entries; "
                                           f"{free} of {cores.count} cores free)")
        elif op.kind == "lif":
            r.update(neurons=c * h * w, state_bytes=c * h * w * mem_b)
            fo = len(readers.get(op.dst, []))
            if cores.max_fan_out and fo > cores.max_fan_out:
                r["violations"].append(f"spikes go to {fo} layers > {cores.max_fan_out} destinations")
        elif op.kind == "attn":
            if not cores.supports_attention:
                r["violations"].append("spike-spike products (SDSA: Q (K^T V)) cannot map onto this chip")
                unmapped.append(op.name)
        elif op.kind == "input":
            r["params"] = int(op.arrays["lut"].size)
        layers.append(r)
    per_step = None if frames is None else _per_step(program, frames, layers, flops)
    return Report(prof.name, layers, per_step, unmapped, exact_grid=nb.scale_grid == "pow2")
