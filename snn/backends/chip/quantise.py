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


def input_table(encoding: Mapping, input_bits: int):
    """``(lut, u_in)``: integer codes of the counts ``0..clip`` and the real value of one code step.

    The float model reads ``norm(count * scale)``; the chip reads ``lut[count] * u_in``.  ``log1p``
    is not an integer function, but over integer counts it is a table: the chip's first layer reads
    the counts and looks up a ``input_bits``-bit code (exact up to the code step).
    """
    norm, scale, clip = encoding["norm"], float(encoding["scale"]), int(encoding["clip"])
    if str(norm).startswith("clip:"):
        cap = float(norm[5:])
        c = np.arange(clip + 1, dtype=np.float64)
        f = np.minimum(c * scale, cap)
        top = (1 << input_bits) - 1
        if np.allclose(f, np.round(f)) and f[-1] <= top:
            return np.round(f).astype(np.int32), 1.0
        u = float(f[-1] / top) if f[-1] > 0 else 1.0
        return np.round(f / u).astype(np.int32), u
    if norm not in NORMS:
        raise CompileError("input", f"input normalisation {norm!r} is not one of {NORMS}")
    if clip < 1 or clip > 65535:
        raise CompileError("input", f"count clip {clip} outside [1, 65535]")
    if not scale > 0:
        raise CompileError("input", f"count scale {scale} must be > 0")
    c = np.arange(clip + 1, dtype=np.float64)
    top = (1 << input_bits) - 1
    if norm == "binary":
        return (c * scale > 0).astype(np.int32), 1.0
    if norm == "counts":
        if clip <= top:
            return c.astype(np.int32), scale
        u = clip * scale / top
        return np.round(c * scale / u).astype(np.int32), u
    f = np.log1p(c * scale)
    u = float(f[-1] / top)
    return np.round(f / u).astype(np.int32), u


def _limits(profile: Profile):
    nb = profile.numerics
    return (1 << (nb.weight_bits - 1)) - 1, (1 << (nb.membrane_bits - 1)) - 1, (1 << (nb.accumulator_bits - 1)) - 1


def _src_scale_matrix(op: Op, u_src: np.ndarray) -> np.ndarray:
    """``U[co, j]``: scale of the input channel that weight column j of output co reads."""
    w = op.arrays["weight"]
    co, cig = w.shape[:2]
    g = op.attrs["groups"]
    group = np.arange(co) // (co // g)
    return u_src[group[:, None] * cig + np.arange(cig)[None, :]]


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
    residual = 0.0
    qmax, mem_lim, acc_lim = _limits(profile)
    nb = profile.numerics
    writers: Dict[str, list] = {}
    readers: Dict[str, list] = {}
    for op in graph.ops:
        writers.setdefault(op.dst, []).append(op)
        readers.setdefault(op.src, []).append(op)
    lut, u_in = input_table(encoding, nb.input_bits)
    scale: Dict[str, np.ndarray] = {"input": np.full(graph.buffers["input"][0], u_in)}
    extra: Dict[str, dict] = {}
    for b, v in (pins.get("scales") or {}).items():
        if b not in graph.buffers:
            raise CompileError(b, "pinned scale for a buffer the model does not have")
        scale[b] = np.asarray(v, np.float64).reshape(-1)
    for name, v in (pins.get("pool_shift") or {}).items():
        extra[name] = {"shift": int(v)}

    def lif_range(buf: str) -> Optional[np.ndarray]:
        """Per-channel calibrated max |x| of the LIF(s) reading ``buf``, if any."""
        out = None
        for r in readers.get(buf, []):
            if r.kind != "lif":
                continue
            parts = [ranges.get(k) for k in r.attrs["float_keys"]]
            if any(p is None for p in parts):
                continue
            v = np.concatenate([np.asarray(p, np.float64).reshape(-1) for p in parts])
            out = v if out is None else np.maximum(out, v)
        return out

    def lif_threshold(buf: str) -> Optional[np.ndarray]:
        out = None
        for r in readers.get(buf, []):
            if r.kind == "lif":
                t = r.arrays["threshold"]
                out = t if out is None else np.maximum(out, t)
        return out

    def resolve(buf: str) -> np.ndarray:
        if buf in scale:
            return scale[buf]
        c = graph.buffers[buf][0]
        kind = graph.kinds[buf]
        ws = writers.get(buf, [])
        if kind == "spike":
            s = np.ones(c)
        elif ws and ws[0].kind == "attn":
            s = np.full(c, ws[0].attrs["scale"])
        elif ws and ws[0].kind == "pool":
            src = resolve(ws[0].src)
            n = ws[0].attrs["n"]
            rng = lif_range(buf)
            if rng is not None:
                peak = float(np.max(rng * n / src))
                shift = max(0, math.ceil(math.log2(max(peak, 1.0) / (mem_lim / 2))))
            else:
                shift = max(0, round(math.log2(n)))
            th = lif_threshold(buf)
            if th is not None:  # the head threshold must fit too
                need = float(np.max(th * n / (src * (mem_lim // 2))))
                shift = max(shift, math.ceil(math.log2(max(need, 1.0))))
            extra[ws[0].name] = {"shift": shift}
            s = src * (2.0 ** shift) / n
        elif ws and all(w.kind == "conv" for w in ws):
            s = np.zeros(c)
            for w in ws:
                u = _src_scale_matrix(w, resolve(w.src))
                nat = np.abs(w.arrays["weight"] * u[:, :, None, None]).reshape(c, -1).max(1) / qmax
                s = np.maximum(s, nat)
                s = np.maximum(s, 4.0 * np.abs(w.arrays["bias"]) / acc_lim)
            rng = lif_range(buf)
            if rng is not None:
                s = np.maximum(s, rng / mem_lim)
            th = lif_threshold(buf)
            if th is not None:  # the threshold itself must fit with room above it: theta <= 2^(m-2)
                s = np.maximum(s, th / (mem_lim // 2))
            if buf == graph.output:  # one scale for all logits: the integer argmax is the label
                s = np.full(c, s.max())
            s = np.where(s > 0, s, 1.0)
        else:
            raise CompileError(buf, f"buffer written by {[w.kind for w in ws]} has no scale rule")
        scale[buf] = s
        return s

    ops = []
    for op in graph.ops:
        if op.kind == "input":
            ops.append(Op("input", op.name, op.src, op.dst, {"clip": int(encoding["clip"])}, {"lut": lut}))
        elif op.kind == "conv":
            s_dst = resolve(op.dst)
            u = _src_scale_matrix(op, resolve(op.src))
            w_eff = op.arrays["weight"] * u[:, :, None, None]
            peak = np.abs(w_eff).reshape(len(s_dst), -1).max(1)
            # per output channel, the weights use the full int-b range at 2^k times the buffer's
            # resolution; the sum is shifted right by k before it is added (a weight exponent)
            with np.errstate(divide="ignore"):
                k = np.floor(np.log2(qmax * s_dst / np.where(peak > 0, peak, np.inf)) + 1e-9)
            k = np.clip(np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0), 0, 30).astype(np.int32)
            if op.name in (pins.get("shift") or {}):
                k = np.asarray(pins["shift"][op.name], np.int32).reshape(-1)
            wf = w_eff * (2.0 ** k / s_dst)[:, None, None, None]
            bf = op.arrays["bias"] / s_dst
            wq = np.round(wf)
            if op.name in (pins.get("ops") or ()):  # off the grid, or clipped: the pins do not fit
                residual = max(residual, float(np.max(np.abs(wf - wq), initial=0.0)),
                               float(np.max(np.abs(bf - np.round(bf)), initial=0.0)),
                               float(np.max(np.abs(wq), initial=0.0)) - qmax)
            wq = np.clip(wq, -qmax, qmax).astype(np.int8 if nb.weight_bits <= 8 else np.int16)
            bq = np.clip(np.round(bf), -acc_lim, acc_lim).astype(np.int32)
            ops.append(Op("conv", op.name, op.src, op.dst, dict(op.attrs), {"weight": wq, "bias": bq, "shift": k}))
        elif op.kind == "lif":
            s_src = resolve(op.src)
            shift = int(op.attrs["in_shift"])
            writer = writers.get(op.src, [None])[0]
            # fractional membrane bits: the input is shifted left before the leak, so the threshold,
            # the leak's rounding and the membrane are finer than the synaptic sums (as many bits
            # as the threshold and the inputs seen in calibration leave room for)
            shift += nb.attn_frac_bits if writer is not None and writer.kind == "attn" else nb.lif_frac_bits
            rng = lif_range(op.src)
            if rng is not None:  # inputs seen in calibration must fit the membrane with the extra bits
                peak = float(np.max(rng / s_src))
                while shift > 0 and peak * 2 ** shift > mem_lim / 2:
                    shift -= 1
            while shift > 0 and float(np.max(op.arrays["threshold"] / s_src)) * 2 ** shift > mem_lim // 2:
                shift -= 1
            if op.name in (pins.get("in_shift") or {}):
                shift = int(pins["in_shift"][op.name])
            m_scale = s_src / 2.0 ** shift
            theta = np.ceil(op.arrays["threshold"] / m_scale - 1e-9)
            if theta.max() > mem_lim:
                raise CompileError(op.name, f"threshold {int(theta.max())} does not fit {nb.membrane_bits}-bit "
                                            "membranes (weights too small for the threshold at this width)")
            attrs = dict(op.attrs, in_shift=shift, v_threshold=[float(t) for t in op.arrays["threshold"]])
            ops.append(Op("lif", op.name, op.src, op.dst, attrs, {"theta": np.maximum(theta, 1).astype(np.int32)}))
        elif op.kind == "attn":
            resolve(op.dst)
            ops.append(Op("attn", op.name, op.src, op.dst, dict(op.attrs), {}))
        elif op.kind == "pool":
            resolve(op.dst)
            ops.append(Op("pool", op.name, op.src, op.dst, dict(op.attrs, **extra[op.name]), {}))
        else:  # pragma: no cover - lower() emits only the kinds above
            raise CompileError(op.name, f"unknown op kind {op.kind}")
    for b in graph.buffers:
        if b != "frame":
            resolve(b)
    meta = dict(meta or {})
    meta["encoding"] = dict(encoding)
    meta["input_step"] = u_in
    meta["scales"] = {b: [float(x) for x in s] for b, s in scale.items()}
    meta["kinds"] = dict(graph.kinds)
    meta["calibrated"] = bool(ranges)
    if pins:
        meta["grid_residual"] = residual
    prog = Program(ops, dict(graph.buffers), graph.output, float(scale[graph.output][0]), profile, meta)
    return prog.validate()
