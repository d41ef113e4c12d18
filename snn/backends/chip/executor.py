"""The event-driven executor: one synchronous timestep per call, inside it only active spikes work.

Each LIF op leaves an address list of its spikes; a conv reading spikes walks that list and adds
one weight row per (spike, kernel tap) into its outputs - no pass over silent inputs.  Graded
inputs (the first layer's codes, the depthwise conv's output) are scanned and only non-zero values
multiply their rows.  Results equal :func:`~snn.backends.chip.reference.reference_step` bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional

import numpy as np

from . import kernels as K
from .stats import IDX, Stats, weight_bytes

if TYPE_CHECKING:  # annotations only
    from .program import Program


def _scatter_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """``[Co, Ci/g, k, k]`` -> ``[Ci, k, k, Co/g]``: the row a spike on input ``ci`` adds at each tap."""
    co, cig, k, _ = w.shape
    cog = co // groups
    out = np.empty((cig * groups, k, k, cog), w.dtype)
    for g in range(groups):
        out[g * cig:(g + 1) * cig] = w[g * cog:(g + 1) * cog].transpose(1, 2, 3, 0)
    return np.ascontiguousarray(out)


class Executor:
    """Runs a :class:`Program`: ``logits, state, stats = ex.step(frame, state)``.

    ``frame``: integer counts ``[B, C, H, W]``; ``state``: ``None`` (rest) or the dict returned by
    the previous step (membranes ``[B, H, W, C]``, never modified in place); ``logits``: int64
    ``[B, classes]`` (times ``program.logit_scale`` for the float model's units).
    """

    def __init__(self, program: Program, *, threads: int = 1):
        """``threads``: the spike scatters of wide layers (>= 64 outputs per group) split their
        output channels over this many numba threads (same results, bit for bit)."""
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads)
        self.program = program.validate()
        nb = program.profile.numerics
        self.half_up = nb.rounding == "half_up"
        self.acc_lo, self.acc_hi = -(1 << (nb.accumulator_bits - 1)), (1 << (nb.accumulator_bits - 1)) - 1
        self.mem_lo, self.mem_hi = -(1 << (nb.membrane_bits - 1)), (1 << (nb.membrane_bits - 1)) - 1
        self.kinds = {"frame": "count"}
        bound = {"frame": 0}
        self._prep = []
        for op in program.ops:
            p: Dict = {}
            if op.kind == "input":
                p["lut"] = op.arrays["lut"].astype(np.int32)
                bound[op.dst] = int(p["lut"].max(initial=0))
                self.kinds[op.dst] = "map"
            elif op.kind == "conv":
                w = op.arrays["weight"]
                p["wt"] = _scatter_weights(w, int(op.attrs["groups"]))
                p["shift"] = op.arrays["shift"].astype(np.int64)
                p["bias"] = op.arrays["bias"].astype(np.int64)
                src_max = 1 if op.attrs["src_kind"] == "spike" else bound.get(op.src, self.acc_hi)
                worst = int(np.abs(w.astype(np.int64)).reshape(w.shape[0], -1).sum(1).max(initial=0)) * src_max
                p["acc_dtype"] = np.int32 if worst < (1 << 31) else np.int64
                bound[op.dst] = self.acc_hi
                self.kinds[op.dst] = "map"
            elif op.kind == "lif":
                p["theta"] = op.arrays["theta"].astype(np.int64)
                self.kinds[op.dst] = "spikes"
            elif op.kind == "attn":
                c, h, w = program.buffers[op.dst]
                bound[op.dst] = min(self.acc_hi, h * w * (c // int(op.attrs["heads"])))
                self.kinds[op.dst] = "map"
            elif op.kind == "pool":
                bound[op.dst] = self.acc_hi
                self.kinds[op.dst] = "map"
            self._prep.append(p)
        self._arena: Dict[int, Dict[str, np.ndarray]] = {}
        self.weight_bits = nb.weight_bits

    # ------------------------------------------------------------------ buffers
    def _buffers(self, B: int) -> Dict[str, np.ndarray]:
        arena = self._arena.get(B)
        if arena is not None:
            return arena
        arena = {}
        for name, (c, h, w) in self.program.buffers.items():
            kind = self.kinds.get(name)
            if kind == "map":
                arena[name] = np.zeros((B, h, w, c), np.int32)
            elif kind == "spikes":
                arena[name] = np.zeros((B, h * w * c), np.int32)
                arena[name + "#cnt"] = np.zeros(B, np.int32)
        for i, (op, p) in enumerate(zip(self.program.ops, self._prep)):
            if op.kind == "conv":
                c, h, w = self.program.buffers[op.dst]
                arena[f"#acc{i}"] = np.zeros((B, h, w, c), p["acc_dtype"])
        self._arena = {B: arena}  # one batch size at a time: memory stays bounded
        return arena

    # ------------------------------------------------------------------ step
    def step(self, frame, state: Optional[Dict[str, np.ndarray]] = None, *, record: bool = False):
        """One timestep; returns ``(logits [B, classes] int64, new state, stats)``."""
        prog = self.program
        frame = prog.check_frame(frame)
        B = frame.shape[0]
        state = prog.check_state(state, B)
        buf = self._buffers(B)
        stats = Stats.empty(prog, record)
        cnt = stats.counts
        new_state: Dict[str, np.ndarray] = {}
        hu = self.half_up
        for i, (op, p) in enumerate(zip(prog.ops, self._prep)):
            if op.kind == "input":
                cnt[i, IDX["saturations"]] = K.input_codes(frame, p["lut"], np.int64(op.attrs["clip"]), buf[op.dst])
            elif op.kind == "conv":
                acc = buf[f"#acc{i}"]
                acc[...] = 0
                k, s, pad = int(op.attrs["kernel"]), int(op.attrs["stride"]), int(op.attrs["pad"])
                if op.attrs["src_kind"] == "spike":
                    ci, h, w = prog.buffers[op.src]
                    if self.threads > 1 and p["wt"].shape[3] >= 64:
                        n = K.conv_spikes_split(buf[op.src], buf[op.src + "#cnt"], h, w, ci, p["wt"], s, pad, acc,
                                                self.threads)
                    else:
                        n = K.conv_spikes(buf[op.src], buf[op.src + "#cnt"], h, w, ci, p["wt"], s, pad, acc)
                    cnt[i, IDX["ac"]] = n
                else:
                    n = K.conv_graded(buf[op.src], p["wt"], s, pad, acc)
                    cnt[i, IDX["mac"]] = n
                cnt[i, IDX["weight_bytes"]] = weight_bytes(n, self.weight_bits)
                cnt[i, IDX["saturations"]] = K.finish(acc, p["shift"], p["bias"], buf[op.dst], op.attrs["mode"] == "add",
                                                      np.int64(self.acc_lo), np.int64(self.acc_hi), hu)
            elif op.kind == "lif":
                key = op.attrs["state"]
                v_new = np.empty_like(state[key])
                n_sat, n_spk = K.lif(buf[op.src], state[key], p["theta"], int(op.attrs["in_shift"]),
                                     np.int64(self.mem_lo), np.int64(self.mem_hi), hu, v_new, buf[op.dst],
                                     buf[op.dst + "#cnt"])
                new_state[key] = v_new
                cnt[i, IDX["saturations"]] = n_sat
                cnt[i, IDX["spikes"]] = n_spk
                cnt[i, IDX["neuron_updates"]] = v_new.size
                if record:
                    stats.record[op.name] = self.spike_map(op.dst, B)
            elif op.kind == "attn":
                c, h, w = prog.buffers[op.dst]
                y = buf[op.dst].reshape(B, h * w, c)
                inc, rows, n_sat = K.attention(buf[op.src], buf[op.src + "#cnt"], h * w, c, int(op.attrs["heads"]), y,
                                               np.int64(self.acc_lo), np.int64(self.acc_hi))
                cnt[i, IDX["attn_increments"]] = inc
                cnt[i, IDX["attn_row_adds"]] = rows
                cnt[i, IDX["saturations"]] = n_sat
            elif op.kind == "pool":
                src = buf[op.src]
                out = buf[op.dst].reshape(B, -1)
                cnt[i, IDX["saturations"]] = K.pool(src, int(op.attrs["shift"]), hu, np.int64(self.acc_lo),
                                                    np.int64(self.acc_hi), out)
                cnt[i, IDX["other_adds"]] = src.size
        logits = buf[prog.output].reshape(B, -1).astype(np.int64)
        return logits, new_state, stats

    def spike_map(self, name: str, B: int) -> np.ndarray:
        """The spikes of LIF buffer ``name`` after the last step, as ``[B, C, H, W]`` uint8."""
        c, h, w = self.program.buffers[name]
        buf = self._arena[B]
        out = np.zeros((B, h * w * c), np.uint8)
        for b in range(B):
            out[b, buf[name][b, :buf[name + "#cnt"][b]]] = 1
        return out.reshape(B, h, w, c).transpose(0, 3, 1, 2)

    def stepper(self, logits_scale: bool = True) -> "ChipStepper":
        """A view with the ``Stepper`` shape, ``step(x, state) -> (logits, state)`` (float logits)."""
        return ChipStepper(self, logits_scale)


class ChipStepper:
    """The ``Stepper`` shape over an :class:`Executor`: ``step(x, state) -> (logits, state)``.

    ``x``: a frame batch ``[B, C, H, W]`` of integer counts (a tensor or array; float tensors must
    hold whole numbers - the chip reads counts before any normalisation).  ``state``: ``None`` or
    what the last step returned, a dict of :class:`~snn.neurons.LIFState` holding the integer
    membranes ``[B, H, W, C]`` as tensors (shared with NumPy, no copy), so the float model's state
    helpers (concatenate / split / reset rows) work unchanged.  Logits are float32, in the float
    model's units.  The last step's counters are kept in ``last_stats``, their sum in ``total_stats``.
    """

    def __init__(self, executor: Executor, logits_scale: bool = True):
        self.executor = executor
        self.program = executor.program
        self.scale = executor.program.logit_scale if logits_scale else 1.0
        self.class_names = self.program.class_names
        self.last_stats: Optional[Stats] = None
        self.total_stats: Optional[Stats] = None
        self.steps = 0

    # what a torch module offers the runtime: the chip has no training mode and lives on the CPU
    def eval(self) -> "ChipStepper":
        return self

    def to(self, device) -> "ChipStepper":
        if str(device) not in ("cpu", "None"):
            raise ValueError(f"the chip backend runs on the CPU, not {device}")
        return self

    def step(self, x, state=None):
        import torch

        from ...neurons import LIFState

        frame = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if frame.dtype.kind == "f":
            r = np.rint(frame)
            if not np.array_equal(r, frame):
                raise TypeError("the chip backend reads integer event counts; got non-integer frames "
                                "(feed the counts before normalisation)")
            frame = r.astype(np.int32)
        if state is not None:
            state = {k: np.ascontiguousarray(v.v.numpy() if isinstance(v, LIFState) else v) for k, v in state.items()}
        logits, state, stats = self.executor.step(frame, state)
        self.last_stats = stats
        self.total_stats = stats if self.total_stats is None else Stats(
            stats.names, stats.kinds, self.total_stats.counts + stats.counts)
        self.steps += 1
        out = torch.from_numpy(logits.astype(np.float32) * np.float32(self.scale))
        return out, {k: LIFState(torch.from_numpy(v)) for k, v in state.items()}
