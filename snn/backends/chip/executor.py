"""The event-driven executor: one synchronous timestep per call, inside it only active spikes work.

Each LIF op leaves per-position address lists of its spikes; a conv gathers, for each output
position, the weight rows that the spikes of its receptive field select (one row per (spike, kernel
tap)) and sums them - no pass over silent inputs.  Graded inputs (the first layer's codes, the
depthwise conv's output) are scanned and only non-zero values multiply their rows.  Results equal
:func:`~snn.backends.chip.reference.reference_step` bit for bit, on one thread or several.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional

import time

import numba
import numpy as np

from . import exponent as EXP
from . import fusedlif as FL
from . import kernels as K
from . import scatter as GS
from . import pairconv as PC
from . import segconv as SG
from . import spikeconv as SC
from .stats import IDX, Stats, weight_bytes

if TYPE_CHECKING:  # annotations only
    from .program import Program


_I32 = np.zeros(1, np.int32)  # dtype token of the int32 accumulator (read only)


def _row_weights(w: np.ndarray, groups: int, lanes: int = 1) -> np.ndarray:
    """``[Co, Ci/g, k, k]`` -> ``[Ci, k, k, Co/g]``: the row a spike on input ``ci`` adds at each tap
    (int8 where the weights fit, so a row of 64 weights is one cache line); with one group, rows are
    padded with zero weights to a multiple of ``lanes``."""
    co, cig, k, _ = w.shape
    cog = co // groups
    dt = np.int8 if int(np.abs(w.astype(np.int64)).max(initial=0)) <= 127 else np.int16
    pad = -cog % lanes if groups == 1 else 0
    out = np.zeros((cig * groups, k, k, cog + pad), dt)
    for g in range(groups):
        out[g * cig:(g + 1) * cig, :, :, :cog] = w[g * cog:(g + 1) * cog].transpose(1, 2, 3, 0)
    return np.ascontiguousarray(out)


def int16_flush(w: np.ndarray) -> int:
    """Rows of spike weights ``w [Co, Ci/g, k, k]`` that an int16 accumulator can sum exactly before
    it must be flushed into the wide one: never (:data:`~snn.backends.chip.kernels.FLUSH_NEVER`)
    where the static bound - the largest sum of ``|w|`` over the fan-in of an output channel - fits
    int16; else ``32767 // max|w|``."""
    a = np.abs(w.astype(np.int64)).reshape(w.shape[0], -1)
    if int(a.sum(1).max(initial=0)) <= 32767:
        return K.FLUSH_NEVER
    return 32767 // int(a.max())


class Executor:
    """Runs a :class:`Program`: ``logits, state, stats = ex.step(frame, state)``.

    ``frame``: integer counts ``[B, C, H, W]``; ``state``: ``None`` (rest) or the dict returned by
    the previous step (membranes ``[B, H, W, C]``, never modified in place); ``logits``: int64
    ``[B, classes]`` (times ``program.logit_scale`` for the float model's units).
    """

    #: ops with less work than this (synapses of the dense-equivalent conv; neurons of a LIF op)
    #: stay on the calling thread even with ``threads > 1`` (a parallel region costs ~10 us)
    PARALLEL_MIN_SYNAPSES = 4_000_000
    PARALLEL_MIN_NEURONS = 32_768
    #: spike convs (one group) whose int8 weights pass the L2 cache (2 MiB) take their output blocks outermost,
    #: so that a block's weight columns stay in L2 while every position reads them
    BLOCK_OUTER_MIN_BYTES = 2 << 20
    #: steps (after one warm-up step) over which ``threads > 1`` times each op split and unsplit
    TUNE_STEPS = 6
    #: an op stays split only if that takes at most this fraction of its unsplit time
    TUNE_GAIN = 0.9
    #: dense spike convs with a fan-in (``K * K * C_in``) up to this sum all (spike, tap) rows of a
    #: position in one register pass (segconv); wider ones, whose positions mostly pass the int16
    #: flush bound, go tap by tap (spikeconv: measured faster there)
    SEGMENTS_MAX_FAN_IN = 2048
    #: a spike conv (set mode) whose map only the next op, a LIF, reads runs that LIF in its finish
    #: (:mod:`~snn.backends.chip.fusedlif`: the int32 map is neither written nor read)
    FUSE_LIF = True
    #: a dense spike conv's rows are padded with zero weights to a multiple of this many outputs
    #: (16: a last register block of 16 int16 lanes where the outputs are an odd multiple of 16)
    ROW_LANES = 16

    def __init__(self, program: Program, *, threads: int = 1, parallel_min: Optional[int] = None,
                 tune: bool = True):
        """``threads``: the convs and neuron updates of large ops split their output positions over
        this many numba threads (same results, bit for bit).  ``parallel_min``: if given, the work
        from which an op runs in parallel (both thresholds; 0: every op).  ``tune`` (with
        ``threads > 1``): during the first steps, time each such op split and unsplit and keep it
        split only where that is faster (:meth:`thread_plan`); off, every such op stays split."""
        if isinstance(threads, bool) or int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads)
        self.program = program.validate()
        nb = program.profile.numerics
        self.half_up = nb.rounding == "half_up"
        self.acc_lo, self.acc_hi = -(1 << (nb.accumulator_bits - 1)), (1 << (nb.accumulator_bits - 1)) - 1
        self.mem_lo, self.mem_hi = -(1 << (nb.membrane_bits - 1)), (1 << (nb.membrane_bits - 1)) - 1
        min_syn = self.PARALLEL_MIN_SYNAPSES if parallel_min is None else int(parallel_min)
        min_neu = self.PARALLEL_MIN_NEURONS if parallel_min is None else int(parallel_min)
        self.kinds = {"frame": "count"}
        bound = {"frame": 0}  # per buffer, the largest |value| it can hold (the int32 sums' choice)
        self._prep = []
        self._offs_size, self._offs_wide = 0, False
        inputs = set()  # the buffers written by input ops (codes of the frame's counts)
        for op in program.ops:
            p: Dict = {}
            if op.kind == "input":
                inputs.add(op.dst)
                p["lut"] = op.arrays["lut"].astype(np.int32)
                bound[op.dst] = int(p["lut"].max(initial=0))
                self.kinds[op.dst] = "map"
            elif op.kind == "conv":
                self._prep_conv(op, p, bound, op.src in inputs, min_syn)
                self.kinds[op.dst] = "map"
            elif op.kind == "lif":
                p["theta"] = op.arrays["theta"].astype(np.int64)
                c, h, w = program.buffers[op.dst]
                p["par"] = self.threads > 1 and h * w > 1 and c * h * w >= min_neu
                self.kinds[op.dst] = "spikes"
            elif op.kind == "attn":
                c, h, w = program.buffers[op.dst]
                bound[op.dst] = min(self.acc_hi, h * w * (c // int(op.attrs["heads"])))
                self.kinds[op.dst] = "map"
            elif op.kind == "pool":
                bound[op.dst] = self.acc_hi
                self.kinds[op.dst] = "map"
            self._prep.append(p)
        if self.FUSE_LIF:
            self._fuse_lifs()
        self._arena: Dict[int, Dict[str, np.ndarray]] = {}
        # the thread plan, chosen by measurement: ops that may split run alternately split and on the
        # calling thread for TUNE_STEPS steps after a warm-up step; then each keeps the faster
        self._tune = {i: [np.inf, np.inf] for i, p in enumerate(self._prep) if p.get("par")}
        self._tune_left = self.TUNE_STEPS + 1 if self._tune and tune else 0
        self.weight_bits = nb.weight_bits

    def _prep_conv(self, op, p: Dict, bound: Dict[str, int], reads_input: bool, min_syn: int) -> None:
        """A conv op's kernel choice and its arrays, laid out once (``p``); ``bound[op.dst]`` set."""
        program = self.program
        w = op.arrays["weight"]
        g = int(op.attrs["groups"])
        if op.attrs["src_kind"] == "spike":
            p["wt"] = _row_weights(w, g, self.ROW_LANES)
        else:  # products in int32 lanes: rows widened once, here (one group: padded to 16 lanes)
            p["wt"] = _row_weights(w, g, 16 if g == 1 else 1).astype(np.int32)
        cig, cog = w.shape[1], w.shape[0] // g
        p["og"] = (np.arange(cig * g, dtype=np.int64) // cig) * cog
        k_exp = op.arrays["shift"].astype(np.int64)  # signed weight exponents: >> k, or << -k
        p["shift"], p["rnd"] = EXP.split(k_exp, self.half_up)
        p["bias"] = op.arrays["bias"].astype(np.int64)
        p["spike"] = op.attrs["src_kind"] == "spike"
        src_max = 1 if p["spike"] else bound.get(op.src, self.acc_hi)
        p["wsum"] = int(np.abs(w.astype(np.int64)).reshape(w.shape[0], -1).sum(1).max(initial=0))
        p["acc"] = np.zeros(1, np.int32 if p["wsum"] * src_max < (1 << 31) else np.int64)
        p["flush"] = int16_flush(w)
        co, ho, wo = program.buffers[op.dst]
        p["par"] = self.threads > 1 and ho * wo > 1 and ho * wo * co * w[0].size >= min_syn
        k, stride = int(op.attrs["kernel"]), int(op.attrs["stride"])
        pad = int(op.attrs["pad"])
        if p["spike"] and cig == 1 and cog == 1 and stride == 1 and k <= 8:  # depthwise
            ci, h, wd = program.buffers[op.src]
            wr = np.zeros((co, k, 8), np.int32)
            wr[:, :, :k] = w[:, 0, :, ::-1]
            p["dw"] = wr
            p["fx"] = np.array([sum(0 <= x + pad - kx < wo for kx in range(k)) for x in range(wd)], np.int64)
            p["cm"] = (co, ho, wd + 2 * pad + 8)
        if not p["spike"] and g == 1 and reads_input:  # the first layer: sparse codes, scattered
            p["scatter"] = (ho, wo, p["wt"].shape[3])
        if p["spike"] and "dw" not in p:
            p["blocked"] = g == 1 and p["wt"].nbytes >= self.BLOCK_OUTER_MIN_BYTES
            p["segs"] = g == 1 and w[0].size <= self.SEGMENTS_MAX_FAN_IN
            ci, h, wd = program.buffers[op.src]
            self._offs_size = max(self._offs_size, ci * h * wd)
            self._offs_wide |= p["wt"].size >= (1 << 31)
        if (not p["spike"] and "scatter" not in p and g == 1 and k == 1 and pad == 0
                and src_max <= 32767 and p["wsum"] * src_max < (1 << 31)):  # int16 pairs (pairconv)
            p["pairs"] = PC.pair_weights(w)
        bound[op.dst] = self.acc_hi
        if p["spike"] and g > 1 and op.attrs["mode"] == "set":  # a depthwise map: |x| <= sum |w| >> k + |b|
            b = EXP.scaled_bound(np.abs(w.astype(np.int64)).reshape(co, -1).sum(1), k_exp) + np.abs(p["bias"])
            bound[op.dst] = int(min(self.acc_hi, b.max(initial=0)))

    def _fuse_lifs(self) -> None:
        """Marks each spike conv (not depthwise, ``set`` mode) whose output buffer is written by it
        alone and read only by the next op, a LIF (which does not write the conv's input), as
        running that LIF (``p["lif"]``: the LIF's index); the LIF op is then skipped."""
        ops = self.program.ops
        readers: Dict[str, int] = {}
        writers: Dict[str, int] = {}
        for op in ops:
            readers[op.src] = readers.get(op.src, 0) + 1
            writers[op.dst] = writers.get(op.dst, 0) + 1
        for i, (op, p) in enumerate(zip(ops[:-1], self._prep)):
            nxt = ops[i + 1]
            if (op.kind == "conv" and p["spike"] and "dw" not in p and op.attrs["mode"] == "set"
                    and nxt.kind == "lif" and nxt.src == op.dst and nxt.dst != op.src
                    and readers.get(op.dst) == 1 and writers[op.dst] == 1 and op.dst != self.program.output):
                p["lif"] = i + 1
                self._prep[i + 1]["fused"] = True
                self._prep[i + 1]["par"] = False  # runs inside the conv, on the conv's threads

    def fused_lifs(self) -> int:
        """How many LIF ops run inside the conv before them (:attr:`FUSE_LIF`)."""
        return sum(1 for p in self._prep if p.get("fused"))

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
            elif kind == "spikes":  # channels of the spikes at each position, and how many
                arena[name] = np.zeros((B, h * w * c), np.int16 if c <= 32767 else np.int32)
                arena[name + "#n"] = np.zeros((B, h * w), np.int32)
        for i, p in enumerate(self._prep):
            if "cm" in p:  # the depthwise convs' channel-major scratch
                arena[f"#cm{i}"] = np.zeros(p["cm"], np.int32)
            if "scatter" in p:  # the scattered conv's accumulator map (int64; int32 steps use its first half)
                arena[f"#am{i}"] = np.zeros(int(np.prod(p["scatter"])), np.int64)
        # the spike convs' row offsets (one per spike of the input, laid out like its address lists)
        arena["#offs"] = np.zeros(max(self._offs_size, 1), np.int64 if self._offs_wide else np.int32)
        self._arena = {B: arena}  # one batch size at a time: memory stays bounded
        return arena

    def _threads_on(self) -> int:
        """Sets numba's thread count (for the calling thread) to ours; returns the previous one."""
        prev = numba.get_num_threads()
        n = min(self.threads, numba.config.NUMBA_NUM_THREADS)
        if prev != n:
            numba.set_num_threads(n)
        return prev

    def step(self, frame, state: Optional[Dict[str, np.ndarray]] = None, *, record: bool = False,
             times: Optional[np.ndarray] = None):
        """One timestep; returns ``(logits [B, classes] int64, new state, stats)``.  ``times``: if
        given, a float array of one entry per op, to which each op's time (s) is added: the calling
        thread's CPU time with one thread, else wall time."""
        if self.threads == 1 or (self._tune_left == 0 and not any(p.get("par") for p in self._prep)):
            return self._step(frame, state, record, times)  # nothing runs split: no thread switching
        prev = self._threads_on()
        try:
            if self._tune_left > 0:
                return self._tuning_step(frame, state, record, times)
            return self._step(frame, state, record, times)
        finally:  # the caller's numba setting (e.g. the float fast path's) is left as it was
            if numba.get_num_threads() != prev:
                numba.set_num_threads(prev)

    def _tuning_step(self, frame, state, record, times):
        """A step of the thread plan's measurement: the candidate ops split on odd steps, unsplit on
        even ones (wall time per op); after the last, each keeps the faster (same results either way)."""
        self._tune_left -= 1
        mode = self._tune_left % 2  # 1: split
        warm = self._tune_left == self.TUNE_STEPS
        for i in self._tune:
            self._prep[i]["par"] = bool(mode)
        t = np.zeros(len(self.program.ops))
        out = self._step(frame, state, record, t)
        if times is not None:
            times += t
        if not warm:
            for i, best in self._tune.items():
                best[mode] = min(best[mode], t[i])
        if self._tune_left == 0:
            for i, (t_one, t_split) in self._tune.items():
                self._prep[i]["par"] = bool(t_split <= self.TUNE_GAIN * t_one)
        return out

    def thread_plan(self) -> Dict[str, int]:
        """``{"split": ops that run on several threads, "candidates": ops that may, "tuning": steps
        of measurement left}`` (the plan is final once ``tuning`` is 0)."""
        split = sum(1 for p in self._prep if p.get("par")) if self.threads > 1 else 0
        return {"split": split if self._tune_left == 0 else -1, "candidates": len(self._tune),
                "tuning": self._tune_left}

    # ------------------------------------------------------------------ step
    def _step(self, frame, state, record, times=None):
        prog = self.program
        frame = prog.check_frame(frame)
        B = frame.shape[0]
        state = prog.check_state(state, B)
        buf = self._buffers(B)
        stats = Stats.empty(prog, record)
        cnt = stats.counts
        new_state: Dict[str, np.ndarray] = {}
        hu = self.half_up
        acc_lo, acc_hi = np.int64(self.acc_lo), np.int64(self.acc_hi)
        clock = time.thread_time if self.threads == 1 else time.perf_counter  # CPU time where it is all ours
        t0 = clock() if times is not None else 0.0
        lcnt = None  # the counters of the LIF fused into the conv before it
        for i, (op, p) in enumerate(zip(prog.ops, self._prep)):
            if times is not None and i > 0:  # the previous op's time
                t1 = clock()
                times[i - 1] += t1 - t0
                t0 = t1
            if op.kind == "input":
                cnt[i, IDX["saturations"]] = K.input_codes(frame, p["lut"], np.int64(op.attrs["clip"]), buf[op.dst])
            elif op.kind == "conv":
                lcnt = self._conv(i, op, p, buf, state, new_state, cnt[i], acc_lo, acc_hi)
            elif op.kind == "lif":
                self._lif(op, p, buf, state, new_state, cnt[i], lcnt)
                if record:
                    stats.record[op.name] = self.spike_map(op.dst, B)
            elif op.kind == "attn":
                c, h, w = prog.buffers[op.dst]
                y = buf[op.dst].reshape(B, h * w, c)
                inc, rows, n_sat = K.attention(buf[op.src], buf[op.src + "#n"], h * w, c, int(op.attrs["heads"]), y,
                                               acc_lo, acc_hi)
                cnt[i, IDX["attn_increments"]] = inc
                cnt[i, IDX["attn_row_adds"]] = rows
                cnt[i, IDX["saturations"]] = n_sat
            elif op.kind == "pool":
                src = buf[op.src]
                out = buf[op.dst].reshape(B, -1)
                cnt[i, IDX["saturations"]] = K.pool(src, int(op.attrs["shift"]), hu, acc_lo, acc_hi, out)
                cnt[i, IDX["other_adds"]] = src.size
        if times is not None:
            times[len(prog.ops) - 1] += clock() - t0
        logits = buf[prog.output].reshape(B, -1).astype(np.int64)
        return logits, new_state, stats

    def _conv(self, i, op, p, buf, state, new_state, cnt, acc_lo, acc_hi):
        """Op ``i``, a conv, on the kernel chosen for it at construction; its counters into ``cnt``
        (the op's row); returns the counters of the LIF fused into it (``[saturations, spikes]``)."""
        prog, parts = self.program, self.threads
        s, pad = int(op.attrs["stride"]), int(op.attrs["pad"])
        add = op.attrs["mode"] == "add"
        lcnt = None
        if "dw" in p:
            ci, h, w = prog.buffers[op.src]
            args = (buf[op.src], buf[op.src + "#n"], h, w, ci, p["dw"], pad, p["fx"], p["shift"], p["rnd"],
                    p["bias"], buf[op.dst], add, acc_lo, acc_hi, buf[f"#cm{i}"])
            n, n_sat = K.conv_dw_par(*args, parts) if p["par"] else K.conv_dw(*args)
            cnt[IDX["ac"]] = n
        elif p["spike"]:
            ci, h, w = prog.buffers[op.src]
            lif, lcnt = self._lif_args(p, state, buf, new_state)
            if p.get("segs"):
                args = (buf[op.src], buf[op.src + "#n"], h, w, ci, p["wt"], s, pad, p["flush"], p["shift"],
                        p["rnd"], p["bias"], buf[op.dst], add, acc_lo, acc_hi, p["acc"], buf["#offs"], p["blocked"],
                        lif, lcnt)
                n, n_sat = SG.conv_segs_par(*args, parts) if p["par"] else SG.conv_segs(*args)
            else:
                args = (buf[op.src], buf[op.src + "#n"], h, w, ci, p["wt"], p["og"], s, pad, p["flush"],
                        p["shift"], p["rnd"], p["bias"], buf[op.dst], add, acc_lo, acc_hi, p["acc"], buf["#offs"],
                        p["blocked"], lif, lcnt)
                n, n_sat = SC.conv_spikes_par(*args, parts) if p["par"] else SC.conv_spikes(*args)
            cnt[IDX["ac"]] = n
        else:
            n, n_sat = self._graded(i, op, p, buf, s, pad, add, acc_lo, acc_hi)
            cnt[IDX["mac"]] = n
        cnt[IDX["weight_bytes"]] = weight_bytes(n, self.weight_bits)
        cnt[IDX["saturations"]] = n_sat
        return lcnt

    def _graded(self, i, op, p, buf, s, pad, add, acc_lo, acc_hi):
        """A conv over graded values (the first layer's codes, a map): scattered, int16 pairs or
        plain int32 products; ``(MACs, saturations)``."""
        parts = self.threads
        acc = p["acc"]
        if acc.dtype == np.int64 and p["wsum"] * int(K.absmax(buf[op.src])) < (1 << 31):
            acc = _I32  # this step's inputs are small enough for exact int32 sums
        if "scatter" in p:
            am = buf[f"#am{i}"]
            am = (am if acc.dtype == np.int64 else am.view(np.int32)[:am.size]).reshape(p["scatter"])
            args = (buf[op.src], p["wt"], s, pad, p["shift"], p["rnd"], p["bias"], buf[op.dst], add,
                    acc_lo, acc_hi, am)
            return GS.conv_scatter_par(*args, parts) if p["par"] else GS.conv_scatter(*args)
        if "pairs" in p:
            args = (buf[op.src], p["pairs"], s, p["shift"], p["rnd"], p["bias"], buf[op.dst], add, acc_lo, acc_hi)
            return PC.conv_pairs_par(*args, parts) if p["par"] else PC.conv_pairs(*args)
        args = (buf[op.src], p["wt"], p["og"], s, pad, p["shift"], p["rnd"], p["bias"], buf[op.dst], add,
                acc_lo, acc_hi, acc)
        return K.conv_graded_par(*args, parts) if p["par"] else K.conv_graded(*args)

    def _lif(self, op, p, buf, state, new_state, cnt, lcnt) -> None:
        """A LIF op (or, fused, the counters of the conv before it that ran it: ``lcnt``)."""
        key = op.attrs["state"]
        if p.get("fused"):
            v_new = new_state[key]
            n_sat, n_spk = int(lcnt[0]), int(lcnt[1])
        else:
            v_new = np.empty_like(state[key])
            args = (buf[op.src], state[key], p["theta"], int(op.attrs["in_shift"]), np.int64(self.mem_lo),
                    np.int64(self.mem_hi), self.half_up, v_new, buf[op.dst], buf[op.dst + "#n"])
            n_sat, n_spk = K.lif_par(*args, self.threads) if p["par"] else K.lif(*args)
            new_state[key] = v_new
        cnt[IDX["saturations"]] = n_sat
        cnt[IDX["spikes"]] = n_spk
        cnt[IDX["neuron_updates"]] = v_new.size

    def _lif_args(self, p, state, buf, new_state):
        """``(lif, lcnt)`` for a spike conv: the arrays of the LIF fused into it, with its new
        membranes put in ``new_state`` (``None`` where none is), and its counters ``[saturations, spikes]``."""
        lcnt = np.zeros(2, np.int64)
        if "lif" not in p:
            return None, lcnt
        op = self.program.ops[p["lif"]]
        key = op.attrs["state"]
        v_new = new_state[key] = np.empty_like(state[key])
        return FL.lif_args(state[key], self._prep[p["lif"]]["theta"], op.attrs["in_shift"], self.mem_lo, self.mem_hi,
                           self.half_up, v_new, buf[op.dst], buf[op.dst + "#n"]), lcnt

    def spike_map(self, name: str, B: int) -> np.ndarray:
        """The spikes of LIF buffer ``name`` after the last step, as ``[B, C, H, W]`` uint8."""
        c, h, w = self.program.buffers[name]
        buf = self._arena[B]
        chan, npos = buf[name], buf[name + "#n"]
        out = np.zeros((B, h * w, c), np.uint8)
        for b in range(B):
            p = np.repeat(np.arange(h * w), npos[b])
            k = np.arange(p.size) - np.repeat(np.cumsum(npos[b]) - npos[b], npos[b])
            out[b, p, chan[b, p * c + k]] = 1
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
