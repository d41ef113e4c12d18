"""The dense integer reference of the chip: plain int64 numpy, every neuron and synapse visited.

It defines what a step computes; the event-driven :class:`~snn.backends.chip.executor.Executor` must
agree with it bit for bit (spikes, membranes, logits, counters).  The state layout is the
executor's: ``{key: [B, H, W, C]}`` membranes.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from .program import Program
from .stats import Stats, weight_bytes


def shr(x: np.ndarray, k, half_up: bool) -> np.ndarray:
    """Arithmetic shift right by ``k`` (array or int), rounding down or half up; a negative ``k``
    (a signed weight exponent) shifts left by ``-k``, exactly: where that could pass int64 the
    result holds Python integers (an object array)."""
    x = np.asarray(x, np.int64)
    k = np.asarray(k, np.int64)
    r, left = np.maximum(k, 0), np.maximum(-k, 0)
    if half_up:
        x = np.where(r > 0, (x + (np.int64(1) << np.maximum(r - 1, 0))) >> r, x)
    else:
        x = x >> r
    if not left.any():
        return x
    if int(np.abs(x).max(initial=0)) << int(left.max()) >= 1 << 62:
        return x.astype(object) << left.astype(object)
    return x << left


def _saturate(x: np.ndarray, bits: int) -> Tuple[np.ndarray, int]:
    """``x`` (int64, or Python integers) clipped to a signed ``bits``-bit range, as int64; and how
    many values were clipped."""
    lim = (1 << (bits - 1)) - 1
    y = np.clip(x, -lim - 1, lim)
    return y.astype(np.int64), int(np.count_nonzero(y != x))


def _fanout(h: int, w: int, k: int, s: int, p: int, ho: int, wo: int) -> np.ndarray:
    """How many output positions read each input position (the taps that land inside the output)."""
    fy = np.zeros(h, np.int64)
    fx = np.zeros(w, np.int64)
    for ky in range(k):
        for y in range(h):
            t = y + p - ky
            if t >= 0 and t % s == 0 and t // s < ho:
                fy[y] += 1
        for x in range(w):
            t = x + p - ky
            if t >= 0 and t % s == 0 and t // s < wo:
                fx[x] += 1
    return fy[:, None] * fx[None, :]


def _conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int, ho: int, wo: int) -> np.ndarray:
    """Dense int64 conv, ``x [B, Ci, H, W]``, ``w [Co, Ci/g, k, k]`` -> ``[B, Co, Ho, Wo]``."""
    B, ci, h, wd = x.shape
    co, cig, k, _ = w.shape
    xp = np.zeros((B, ci, h + 2 * pad, wd + 2 * pad), np.int64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    out = np.zeros((B, co, ho, wo), np.int64)
    cog = co // groups
    w = w.astype(np.int64)
    for g in range(groups):
        xs = xp[:, g * cig:(g + 1) * cig]
        wg = w[g * cog:(g + 1) * cog]
        for ky in range(k):
            for kx in range(k):
                patch = xs[:, :, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
                out[:, g * cog:(g + 1) * cog] += np.einsum("bihw,oi->bohw", patch, wg[:, :, ky, kx])
    return out


def reference_step(program: Program, frame, state: Optional[Dict[str, np.ndarray]] = None, *,
                   record: bool = False):
    """One timestep of ``program`` on integer counts ``frame [B, C, H, W]``.

    Returns ``(logits [B, classes] int64, new state, stats)``; ``record`` keeps every LIF op's
    spike map in ``stats.record`` (``[B, C, H, W]`` uint8).
    """
    frame = program.check_frame(frame)
    B = frame.shape[0]
    state = program.check_state(state, B)
    nb = program.profile.numerics
    half_up = nb.rounding == "half_up"
    stats = Stats.empty(program, record)
    bufs: Dict[str, np.ndarray] = {"frame": frame.astype(np.int64)}
    new_state: Dict[str, np.ndarray] = {}
    for i, op in enumerate(program.ops):
        src = bufs[op.src]
        if op.kind == "input":
            clip = int(op.attrs["clip"])
            c = np.clip(src, 0, clip)
            stats.add(i, "saturations", np.count_nonzero(c != src))
            bufs[op.dst] = op.arrays["lut"].astype(np.int64)[c]
        elif op.kind == "conv":
            w = op.arrays["weight"]
            k, s, p, g = (int(op.attrs[a]) for a in ("kernel", "stride", "pad", "groups"))
            co, ho, wo = program.buffers[op.dst]
            acc = _conv(src, w, s, p, g, ho, wo)
            val = shr(acc, op.arrays["shift"].astype(np.int64)[None, :, None, None], half_up)
            val = val + op.arrays["bias"].astype(np.int64)[None, :, None, None]
            if op.attrs["mode"] == "add":
                val = val + bufs[op.dst]
            val, n_sat = _saturate(val, nb.accumulator_bits)
            bufs[op.dst] = val
            stats.add(i, "saturations", n_sat)
            fan = _fanout(src.shape[2], src.shape[3], k, s, p, ho, wo)
            synapses = int(((src != 0) * fan[None, None]).sum()) * (co // g)
            stats.add(i, "ac" if op.attrs["src_kind"] == "spike" else "mac", synapses)
            stats.add(i, "weight_bytes", weight_bytes(synapses, nb.weight_bits))
        elif op.kind == "lif":
            key = op.attrs["state"]
            v = state[key].astype(np.int64).transpose(0, 3, 1, 2)
            x = src << int(op.attrs["in_shift"])
            h, n_sat = _saturate(shr(v + x, 1, half_up), nb.membrane_bits)
            spk = h >= op.arrays["theta"].astype(np.int64)[None, :, None, None]
            v_new = np.where(spk, 0, h)
            new_state[key] = v_new.transpose(0, 2, 3, 1).astype(program.membrane_dtype)
            bufs[op.dst] = spk.astype(np.int64)
            stats.add(i, "saturations", n_sat)
            stats.add(i, "neuron_updates", v.size)
            stats.add(i, "spikes", spk.sum())
            if record:
                stats.record[op.name] = spk.astype(np.uint8)
        elif op.kind == "attn":
            heads = int(op.attrs["heads"])
            C = src.shape[1] // 3
            d = C // heads
            N = src.shape[2] * src.shape[3]
            tok = src.reshape(B, 3, heads, d, N)  # [B, qkv, head, d, N]
            q, kk, vv = tok[:, 0], tok[:, 1], tok[:, 2]
            m = np.einsum("bhin,bhjn->bhij", kk, vv)           # K^T V: counts
            y = np.einsum("bhin,bhij->bhjn", q, m)             # Q M: row sums
            y, n_sat = _saturate(y.reshape(B, C, *src.shape[2:]), nb.accumulator_bits)
            bufs[op.dst] = y
            stats.add(i, "attn_increments", m.sum())
            stats.add(i, "attn_row_adds", q.sum())
            stats.add(i, "saturations", n_sat)
        elif op.kind == "pool":
            tot = shr(src.sum((2, 3)), int(op.attrs["shift"]), half_up)
            y, n_sat = _saturate(tot[:, :, None, None], nb.accumulator_bits)
            bufs[op.dst] = y
            stats.add(i, "other_adds", src.size)
            stats.add(i, "saturations", n_sat)
        else:  # pragma: no cover - validate() rejects unknown kinds
            raise ValueError(op.kind)
    logits = bufs[program.output].reshape(B, -1)
    return logits, new_state, stats
