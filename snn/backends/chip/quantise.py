"""Quantisation: the float graph of :mod:`~snn.backends.chip.lower` -> an integer :class:`Program`.

Every buffer holds integers with a real scale per channel (real value = integer x scale):

* spikes: 1; the first layer's input codes: ``u_in`` (the input table's step, see :func:`input_table`);
* a conv output: ``S[c] = max over the convs writing the buffer of max|W[c] * u_src| / (2^(b-1) - 1)``
  (symmetric int-b weights per output channel).  The residual stream of a stage is written by
  several convs (the downsampling conv, then each block's SepConv / MLP / attention projection):
  they all add into the stream at its common scale, the coarsest of their own per-channel scales,
  so their integer sums add directly.  A writer whose weights are finer than the stream keeps its
  full int-b precision with a per-output-channel weight exponent ``k``: its weights are
  ``round(W * u_src * 2^k / S)`` and its sum is shifted right by ``k`` before the add (as Loihi's
  weight exponent; one shift per output neuron, not per synapse).  The scale is raised where calibration saw values the membrane width
  cannot hold (``max|x| / (2^(m-1) - 1)``) or a bias the accumulator cannot hold;
* a buffer read by a LIF is coarse enough that the integer threshold fits with headroom
  (``theta <= 2^(m-2)``) and that the calibrated inputs fit (``max|x| <= 2^(m-1) - 1``);
* the attention's ``Q (K^T V)``: counts, real scale ``0.125``; its neuron adds up to ``attn_frac_bits``
  fractional bits (as many as the threshold and the calibrated counts leave room for) (``x << f``) and the 0.125 scale and the 0.5 threshold fold into one integer
  threshold ``0.5 / (0.125 / 2^f) = 4 * 2^f``;
* the head's token sum: ``S[c] * 2^shift / N`` (sum over the N tokens, shifted right).

A LIF reading a buffer with membrane scale ``s`` fires at ``h >= ceil(V_th / s)``.
The logits (head output) share one scale so that the integer argmax is the label.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import numpy as np

from .errors import CompileError
from .lower import Graph
from .profile import Profile
from .program import Op, Program

NORMS = ("counts", "binary", "log1p")


def _qlog1p_bits(norm) -> Optional[int]:
    """``N`` of a ``qlog1p:N`` normalisation (``round(log1p(x) 2^N) / 2^N``), else None."""
    if isinstance(norm, str) and norm.startswith("qlog1p:"):
        try:
            n = int(norm[7:])
        except ValueError:
            n = -1
        if not 0 <= n <= 16:
            raise CompileError("input", f"input normalisation {norm!r}: N must be an integer in [0, 16]")
        return n
    return None


def qlog1p_codes(counts, scale: float, bits: int):
    """Integer codes ``round(log1p(count * scale) * 2^bits)`` computed as the float model's input is
    (float32 torch: the codes times ``2^-bits`` ARE the float model's input values)."""
    import torch

    x = torch.as_tensor(np.asarray(counts), dtype=torch.float32) * float(scale)
    return torch.round(torch.log1p(x) * float(2 ** bits)).to(torch.int64).numpy()


def input_table(encoding: Mapping, input_bits: int, pow2: bool = False):
    """``(lut, u_in)``: integer codes of the counts ``0..clip`` and the real value of one code step.

    The float model reads ``norm(count * scale)``; the chip reads ``lut[count] * u_in``.  ``log1p``
    is not an integer function, but over integer counts it is a table: the chip's first layer reads
    the counts and looks up a ``input_bits``-bit code (exact up to the code step).  ``qlog1p:N`` is
    that table already (the float model reads ``round(log1p(x) 2^N) / 2^N``): exact, ``u_in = 2^-N``.
    ``pow2``: the code step is a power of two.
    """
    norm, scale, clip = encoding["norm"], float(encoding["scale"]), int(encoding["clip"])
    step = _pow2_up if pow2 else (lambda v: v)
    top = (1 << input_bits) - 1
    q = _qlog1p_bits(norm)
    if q is not None:
        lut = qlog1p_codes(np.arange(clip + 1), scale, q)
        if lut[-1] <= top:
            return lut.astype(np.int32), 2.0 ** -q
        # narrower codes (speck's 8 bits): the table's values coded coarser, as log1p is (not exact)
        f = lut * 2.0 ** -q
        u = float(step(f[-1] / top))
        return np.round(f / u).astype(np.int32), u
    if str(norm).startswith("clip:"):
        cap = float(norm[5:])
        c = np.arange(clip + 1, dtype=np.float64)
        f = np.minimum(c * scale, cap)
        if np.allclose(f, np.round(f)) and f[-1] <= top:
            return np.round(f).astype(np.int32), 1.0
        u = float(step(f[-1] / top)) if f[-1] > 0 else 1.0
        return np.round(f / u).astype(np.int32), u
    if norm not in NORMS:
        raise CompileError("input", f"input normalisation {norm!r} is not one of {NORMS}")
    if clip < 1 or clip > 65535:
        raise CompileError("input", f"count clip {clip} outside [1, 65535]")
    if not scale > 0:
        raise CompileError("input", f"count scale {scale} must be > 0")
    c = np.arange(clip + 1, dtype=np.float64)
    if norm == "binary":
        return (c * scale > 0).astype(np.int32), 1.0
    if norm == "counts":
        if clip <= top and not pow2:
            return c.astype(np.int32), scale
        u = float(step(max(clip * scale / top, scale) if pow2 else clip * scale / top))
        return np.round(c * scale / u).astype(np.int32), u
    f = np.log1p(c * scale)
    u = float(step(f[-1] / top))
    return np.round(f / u).astype(np.int32), u


def _limits(profile: Profile):
    return _limits_of(profile.numerics)


def _limits_of(nb):
    return (1 << (nb.weight_bits - 1)) - 1, (1 << (nb.membrane_bits - 1)) - 1, (1 << (nb.accumulator_bits - 1)) - 1


def _src_scale_matrix(op: Op, u_src: np.ndarray) -> np.ndarray:
    """``U[co, j]``: scale of the input channel that weight column j of output co reads."""
    w = op.arrays["weight"]
    co, cig = w.shape[:2]
    g = op.attrs["groups"]
    group = np.arange(co) // (co // g)
    return u_src[group[:, None] * cig + np.arange(cig)[None, :]]


def _pow2_up(x: np.ndarray) -> np.ndarray:
    """The smallest power of two >= x (x > 0; 0 where x <= 0)."""
    x = np.asarray(x, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 2.0 ** np.ceil(np.log2(np.where(x > 0, x, 1.0))), 0.0)


def _conv_buffer_scale(c: int, writers, rng, th, is_output: bool, pow2: bool, qmax: int, mem_lim: int,
                       acc_lim: int) -> np.ndarray:
    """Per-channel scale of a buffer the convs ``writers`` (``[(op, u_src)]``) add into.

    Fitted grid: the coarsest writer's natural scale (``max|W u| / qmax``); pow2 grid: the finest
    writer's, rounded up to a power of two.  Either is raised where the calibrated LIF inputs
    ``rng`` would not fit the membrane, where the LIF threshold ``th`` would not fit with room
    above it (``theta <= 2^(m-2)``) or where a bias would not fit the accumulator.  The logits
    share one scale so that the integer argmax is the label."""
    nat_all = []
    floor = np.zeros(c)
    for w, u_src in writers:
        u = _src_scale_matrix(w, u_src)
        nat_all.append(np.abs(w.arrays["weight"] * u[:, :, None, None]).reshape(c, -1).max(1) / qmax)
        floor = np.maximum(floor, 4.0 * np.abs(w.arrays["bias"]) / acc_lim)
    if rng is not None:
        floor = np.maximum(floor, rng / mem_lim)
    if th is not None:  # the threshold itself must fit with room above it: theta <= 2^(m-2)
        floor = np.maximum(floor, th / (mem_lim // 2))
    if not pow2:
        s = np.maximum(np.max(nat_all, 0), floor)
        if is_output:
            s = np.full(c, s.max())
        return np.where(s > 0, s, 1.0)
    nat = np.stack([_pow2_up(n) for n in nat_all])
    s = np.where(nat > 0, nat, np.inf).min(0)  # the finest writer with any weight
    s = np.where(np.isfinite(s), s, 0.0)
    s = np.maximum(s, _pow2_up(floor))
    if is_output:
        s = np.full(c, s[s > 0].min() if np.any(s > 0) else 1.0)
    return np.where(s > 0, s, 1.0)


def _exact_in_shift(threshold: np.ndarray, s_src: np.ndarray, mem_lim: int) -> Optional[int]:
    """pow2 grid: the fewest fractional membrane bits ``f`` with ``V_th / (s_src 2^-f)`` an integer
    that fits the membrane with room above it (``<= 2^(m-2)``) for every channel - the chip's
    ``theta`` is then the float threshold exactly - or None when a threshold is no such binary
    fraction (e.g. 0.1; the bits are then chosen as on the fitted grid)."""
    f = 0
    for t, s in zip(np.broadcast_to(np.asarray(threshold, np.float64), np.shape(s_src)), np.asarray(s_src, np.float64)):
        b = 0
        while t / s * 2.0 ** b != np.round(t / s * 2.0 ** b):
            b += 1
            if t / s * 2.0 ** b > mem_lim // 2:
                return None
        f = max(f, b)
    return f


def _quantise_conv(op: Op, s_dst: np.ndarray, s_src: np.ndarray, pinned_shift, nb, pow2: bool):
    """``(integer conv op, distance of its scaled weights and bias from the grid)``: per output
    channel the weights use the full int-b range at ``2^k`` times the buffer's resolution and the
    sum is shifted by ``k`` before it is added (a weight exponent).  Fitted grid: ``k >= 0`` (finer
    writers shift right); pow2 grid: ``k <= 0`` (a writer coarser than its buffer shifts left,
    exact; one finer than the buffer - raised by calibration - rounds its weights to the buffer's
    grid instead of flooring its sums)."""
    qmax, _, acc_lim = _limits_of(nb)
    u = _src_scale_matrix(op, s_src)
    w_eff = op.arrays["weight"] * u[:, :, None, None]
    peak = np.abs(w_eff).reshape(len(s_dst), -1).max(1)
    with np.errstate(divide="ignore"):
        k = np.floor(np.log2(qmax * s_dst / np.where(peak > 0, peak, np.inf)) + 1e-9)
    k = np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0)
    k = (np.clip(k, -30, 0) if pow2 else np.clip(k, 0, 30)).astype(np.int32)
    if pinned_shift is not None:
        k = np.asarray(pinned_shift, np.int32).reshape(-1)
    wf = w_eff * (2.0 ** k / s_dst)[:, None, None, None]
    bf = op.arrays["bias"] / s_dst
    wq = np.round(wf)
    off_grid = max(float(np.max(np.abs(wf - wq), initial=0.0)), float(np.max(np.abs(bf - np.round(bf)), initial=0.0)),
                   float(np.max(np.abs(wq), initial=0.0)) - qmax)
    wq = np.clip(wq, -qmax, qmax).astype(np.int8 if nb.weight_bits <= 8 else np.int16)
    bq = np.clip(np.round(bf), -acc_lim, acc_lim).astype(np.int32)
    return Op("conv", op.name, op.src, op.dst, dict(op.attrs), {"weight": wq, "bias": bq, "shift": k}), off_grid


def _quantise_lif(op: Op, s_src: np.ndarray, after_attention: bool, rng: Optional[np.ndarray],
                  pinned_shift: Optional[int], nb, pow2: bool) -> Op:
    """The integer LIF op reading a buffer of scale ``s_src``: its input shift ``f`` (fractional
    membrane bits: the input is shifted left before the leak, so the threshold, the leak's rounding
    and the membrane are finer than the synaptic sums - as many bits as the threshold and the inputs
    seen in calibration ``rng`` leave room for; on the pow2 grid exactly those that make ``theta``
    an integer) and its threshold ``theta = ceil(V_th / (s_src 2^-f))``."""
    mem_lim = (1 << (nb.membrane_bits - 1)) - 1
    th = op.arrays["threshold"]
    shift = int(op.attrs["in_shift"]) + (nb.attn_frac_bits if after_attention else nb.lif_frac_bits)
    exact_shift = _exact_in_shift(th, s_src, mem_lim) if pow2 else None
    if exact_shift is not None:
        shift = max(int(op.attrs["in_shift"]), exact_shift)
    else:
        if rng is not None:  # inputs seen in calibration must fit the membrane with the extra bits
            peak = float(np.max(rng / s_src))
            while shift > 0 and peak * 2 ** shift > mem_lim / 2:
                shift -= 1
        while shift > 0 and float(np.max(th / s_src)) * 2 ** shift > mem_lim // 2:
            shift -= 1
    if pinned_shift is not None:
        shift = int(pinned_shift)
    theta = np.ceil(th / (s_src / 2.0 ** shift) - 1e-9)
    if theta.max() > mem_lim:
        raise CompileError(op.name, f"threshold {int(theta.max())} does not fit {nb.membrane_bits}-bit "
                                    "membranes (weights too small for the threshold at this width)")
    attrs = dict(op.attrs, in_shift=shift, v_threshold=[float(t) for t in th])
    return Op("lif", op.name, op.src, op.dst, attrs, {"theta": np.maximum(theta, 1).astype(np.int32)})


class _Scales:
    """Each buffer's per-channel scale (units per integer step), resolved from its writers on demand;
    also the pooling shifts the scales imply (``extra[pool op] = {"shift": k}``)."""

    def __init__(self, graph: Graph, profile: Profile, ranges: Mapping[str, np.ndarray], u_in: float, pins: Mapping):
        self.graph, self.ranges = graph, ranges
        self.qmax, self.mem_lim, self.acc_lim = _limits(profile)
        self.pow2 = profile.numerics.scale_grid == "pow2"
        self.writers: Dict[str, list] = {}
        self.readers: Dict[str, list] = {}
        for op in graph.ops:
            self.writers.setdefault(op.dst, []).append(op)
            self.readers.setdefault(op.src, []).append(op)
        self.scale: Dict[str, np.ndarray] = {"input": np.full(graph.buffers["input"][0], u_in)}
        self.extra: Dict[str, dict] = {}
        for b, v in (pins.get("scales") or {}).items():
            if b not in graph.buffers:
                raise CompileError(b, "pinned scale for a buffer the model does not have")
            self.scale[b] = np.asarray(v, np.float64).reshape(-1)
        for name, v in (pins.get("pool_shift") or {}).items():
            self.extra[name] = {"shift": int(v)}

    def lif_range(self, buf: str) -> Optional[np.ndarray]:
        """Per-channel calibrated max |x| of the LIF(s) reading ``buf``, if any."""
        out = None
        for r in self.readers.get(buf, []):
            if r.kind != "lif":
                continue
            parts = [self.ranges.get(k) for k in r.attrs["float_keys"]]
            if any(p is None for p in parts):
                continue
            v = np.concatenate([np.asarray(p, np.float64).reshape(-1) for p in parts])
            out = v if out is None else np.maximum(out, v)
        return out

    def lif_threshold(self, buf: str) -> Optional[np.ndarray]:
        out = None
        for r in self.readers.get(buf, []):
            if r.kind == "lif":
                t = r.arrays["threshold"]
                out = t if out is None else np.maximum(out, t)
        return out

    def writer(self, buf: str):
        """The first op writing ``buf`` (``None``: none)."""
        return self.writers.get(buf, [None])[0]

    def _pool(self, buf: str, pool) -> np.ndarray:
        """A token sum's scale and shift: on ``pow2`` no shift (exact; the head LIF's threshold
        absorbs 1/n); fitted, the shift that keeps the calibrated peak and the head threshold in
        half the membrane range."""
        src = self.resolve(pool.src)
        n = pool.attrs["n"]
        rng = self.lif_range(buf)
        if self.pow2:
            shift = 0
        elif rng is not None:
            peak = float(np.max(rng * n / src))
            shift = max(0, math.ceil(math.log2(max(peak, 1.0) / (self.mem_lim / 2))))
        else:
            shift = max(0, round(math.log2(n)))
        th = self.lif_threshold(buf)
        if th is not None and not self.pow2:  # the head threshold must fit too
            need = float(np.max(th * n / (src * (self.mem_lim // 2))))
            shift = max(shift, math.ceil(math.log2(max(need, 1.0))))
        self.extra[pool.name] = {"shift": shift}
        return src * (2.0 ** shift) / n

    def resolve(self, buf: str) -> np.ndarray:
        if buf in self.scale:
            return self.scale[buf]
        c = self.graph.buffers[buf][0]
        ws = self.writers.get(buf, [])
        if self.graph.kinds[buf] == "spike":
            s = np.ones(c)
        elif ws and ws[0].kind == "attn":
            s = np.full(c, ws[0].attrs["scale"])
        elif ws and ws[0].kind == "pool":
            s = self._pool(buf, ws[0])
        elif ws and all(w.kind == "conv" for w in ws):
            s = _conv_buffer_scale(c, [(w, self.resolve(w.src)) for w in ws], self.lif_range(buf),
                                   self.lif_threshold(buf), buf == self.graph.output, self.pow2,
                                   self.qmax, self.mem_lim, self.acc_lim)
        else:
            raise CompileError(buf, f"buffer written by {[w.kind for w in ws]} has no scale rule")
        self.scale[buf] = s
        return s


def quantise(graph: Graph, profile: Profile, encoding: Mapping, ranges: Optional[Mapping[str, np.ndarray]] = None,
             meta: Optional[dict] = None, pins: Optional[Mapping] = None) -> Program:
    """Integer program from a float graph; ``ranges``: per-channel max |LIF input| seen in calibration,
    keyed by the float model's neuron names (``None``: scales from the weights alone).

    ``pins``: the choices of an earlier compile to reuse instead of deriving them (a snapped model's,
    :mod:`~snn.backends.chip.snap`): ``scales`` per buffer, ``shift`` per conv op (the weight
    exponents), ``in_shift`` per LIF op, ``pool_shift`` per pool op; the program's
    ``meta["grid_residual"]`` is then the largest distance of a scaled weight or bias of the ops in
    ``pins["ops"]`` from its integer (0 up to float rounding for the model the pins came from)."""
    ranges = dict(ranges or {})
    pins = dict(pins or {})
    nb = profile.numerics
    pow2 = nb.scale_grid == "pow2"
    lut, u_in = input_table(encoding, nb.input_bits, pow2)
    sc = _Scales(graph, profile, ranges, u_in, pins)
    residual = 0.0
    ops = []
    for op in graph.ops:
        if op.kind == "input":
            ops.append(Op("input", op.name, op.src, op.dst, {"clip": int(encoding["clip"])}, {"lut": lut}))
        elif op.kind == "conv":
            q, off_grid = _quantise_conv(op, sc.resolve(op.dst), sc.resolve(op.src),
                                         (pins.get("shift") or {}).get(op.name), nb, pow2)
            if op.name in (pins.get("ops") or ()):  # off the grid, or clipped: the pins do not fit
                residual = max(residual, off_grid)
            ops.append(q)
        elif op.kind == "lif":
            writer = sc.writer(op.src)
            ops.append(_quantise_lif(op, sc.resolve(op.src), writer is not None and writer.kind == "attn",
                                     sc.lif_range(op.src), (pins.get("in_shift") or {}).get(op.name), nb, pow2))
        elif op.kind == "attn":
            sc.resolve(op.dst)
            ops.append(Op("attn", op.name, op.src, op.dst, dict(op.attrs), {}))
        elif op.kind == "pool":
            sc.resolve(op.dst)
            ops.append(Op("pool", op.name, op.src, op.dst, dict(op.attrs, **sc.extra[op.name]), {}))
        else:  # pragma: no cover - lower() emits only the kinds above
            raise CompileError(op.name, f"unknown op kind {op.kind}")
    for b in graph.buffers:
        if b != "frame":
            sc.resolve(b)
    meta = dict(meta or {})
    meta["encoding"] = dict(encoding)
    meta["input_step"] = u_in
    meta["scales"] = {b: [float(x) for x in s] for b, s in sc.scale.items()}
    meta["kinds"] = dict(graph.kinds)
    meta["calibrated"] = bool(ranges)
    if pins:
        meta["grid_residual"] = residual
    prog = Program(ops, dict(graph.buffers), graph.output, float(sc.scale[graph.output][0]), profile, meta)
    return prog.validate()
