"""Float32's reach over a program: a worst-case bound on every integer sum, from the weights alone.

On the ``pow2`` grid (profile ``exact``) the float model's conv sums are the chip's integers times
power-of-two scales, and float32 holds them exactly while they need at most 24 significant bits:
while every partial sum of a conv, the residual stream it adds into, an attention count and a pooled
sum stays below ``2^24`` units (:data:`FLOAT32_EXACT`).  :func:`value_bounds` bounds each op's value
in its integer units, per output channel, from the integer weights, biases and exponents, the input
table's largest code and the bounds of the buffers it reads (a spike is 1):

* ``conv``: ``max(A_c, D_c)`` with ``A_c = sum |w[c, i]| * X_i`` over the kernel (every partial sum
  of the products, whatever their order) and ``D_c = |A_c >> k_c| + |bias_c|`` (plus the bound of
  the stream before the add, mode ``add``) - what the stream holds after the write;
* ``attn``: ``N * d`` (``M = K^T V`` counts at most ``N`` tokens, a row sum of ``Q M`` at most ``d`` of them);
* ``pool``: ``N * X_c`` (the token sum before its shift);
* ``input``: the table's largest code; ``lif``: the spikes, 1.

Bounds are sound (no input reaches past them) and loose: every input at its largest, every weight's
sign aligned, and a residual stream's bound the sum of all its writers' - the chip's saturation is
not assumed, as the float model does not saturate.  Values are float64 (exact below 2^53; only their
comparison with 2^24 matters above).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict

import numpy as np

if TYPE_CHECKING:  # annotations only
    from .program import Op, Program

#: float32 holds every integer up to 2^24 exactly (24 significant bits)
FLOAT32_EXACT = float(1 << 24)


def _conv_bound(op: "Op", src: np.ndarray, prev: np.ndarray) -> np.ndarray:
    w = np.abs(op.arrays["weight"].astype(np.float64))  # [Co, Ci/g, k, k]
    co, cig = w.shape[:2]
    g = int(op.attrs["groups"])
    x = np.ones(cig * g) if op.attrs["src_kind"] == "spike" else np.broadcast_to(src, (cig * g,))
    # the input channels each output channel reads: group (c // (Co/g)), then its Ci/g channels
    xin = x.reshape(g, cig)[np.arange(co) // (co // g)]                  # [Co, Ci/g]
    acc = (w.sum((2, 3)) * xin).sum(1)
    k = op.arrays["shift"].astype(np.int64)
    shifted = np.where(k >= 0, np.floor(acc / 2.0 ** np.maximum(k, 0)) + (k > 0), acc * 2.0 ** np.maximum(-k, 0))
    held = shifted + np.abs(op.arrays["bias"].astype(np.float64))
    if op.attrs["mode"] == "add":
        held = held + prev
    return np.maximum(acc, held)


def value_bounds(program: "Program") -> Dict[str, np.ndarray]:
    """``{op name: bound per output channel}`` (float64 ``[C]``) on ``|value|`` in the op's integer
    units, as described in the module docstring; a buffer written twice (a residual stream) carries
    the bound of its last write."""
    buf: Dict[str, np.ndarray] = {"frame": np.zeros(program.buffers["frame"][0])}
    out: Dict[str, np.ndarray] = {}
    for op in program.ops:
        c, h, w = program.buffers[op.dst]
        src = buf.get(op.src, np.zeros(1))
        if op.kind == "input":
            b = np.full(c, float(np.abs(op.arrays["lut"].astype(np.float64)).max(initial=0)))
        elif op.kind == "conv":
            b = _conv_bound(op, src, buf.get(op.dst, np.zeros(c)))
        elif op.kind == "attn":
            b = np.full(c, float(h * w * (c // int(op.attrs["heads"]))))
        elif op.kind == "pool":
            _, sh, sw = program.buffers[op.src]
            b = np.broadcast_to(src, (c,)) * float(sh * sw)
        else:  # lif: spikes
            b = np.ones(c)
        buf[op.dst] = out[op.name] = np.asarray(b, np.float64)
    return out


def float32_reach(program: "Program") -> Dict[str, float]:
    """``{op name: largest bound over its channels}`` for the ops that sum (conv, attn, pool)."""
    bounds = value_bounds(program)
    return {op.name: float(bounds[op.name].max(initial=0)) for op in program.ops
            if op.kind in ("conv", "attn", "pool")}


def past_float32(program: "Program") -> Dict[str, float]:
    """The summing ops whose bound passes :data:`FLOAT32_EXACT`, with their bounds, in program order."""
    return {name: b for name, b in float32_reach(program).items() if b > FLOAT32_EXACT}


def warn_past_float32(program: "Program") -> None:
    """On a ``pow2`` program (the exact grid), a :class:`~.errors.Float32ReachWarning` naming the
    first op whose bound passes 2^24 (and how many more)."""
    import math
    import warnings

    from .errors import Float32ReachWarning

    if program.profile.numerics.scale_grid != "pow2":
        return
    past = past_float32(program)
    if not past:
        return
    name, bound = next(iter(past.items()))
    more = f" (and {len(past) - 1} more: {', '.join(list(past)[1:4])}{', ...' if len(past) > 4 else ''})" \
        if len(past) > 1 else ""
    warnings.warn(Float32ReachWarning(
        f"profile {program.profile.name}: the worst-case sum of {name} (2^{math.log2(bound):.2f} units) passes "
        f"float32's 2^24{more}: the float model may not compute the chip's integers there (docs/chip.md, "
        f"'The exact grid'; `eventpipe chip report` lists every layer's bound)"), stacklevel=3)
