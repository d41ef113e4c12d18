"""The LIF fused into the finish of the spike conv whose map only it reads.

A conv in ``set`` mode whose output map is read by one op, the LIF right after it, need not write
that map: as each output position's sums are finished (shift, bias, saturation to the accumulator:
the conv's :func:`~snn.backends.chip.kernels._emit_range`), :func:`emit_lif` feeds the value
straight into the membrane update and the position's spike address list - the LIF op's own
arithmetic (:func:`~snn.backends.chip.kernels._lif_span`), in the same order, so the results and
every counter are those of the two ops apart.  The int32 map is neither written nor read again.

The LIF's arrays travel as one tuple, :func:`lif_args` (``None`` where a conv is not fused: the
kernels test ``lif is None``, which numba resolves when it compiles them, so an unfused conv runs
the code it ran before).  Its saturations and spikes are added into ``lcnt`` (int64 ``[2]``).
"""

from __future__ import annotations

import numba
import numpy as np

from .compress import LANES, compress32
from .exponent import weigh
from .kernels import _JIT, _shr


def lif_args(v, theta, in_shift, mem_lo, mem_hi, half_up, v_new, chan, npos):
    """The fused LIF's arrays and constants, as the conv kernels take them: membranes ``v`` and
    ``v_new`` ``[B, H, W, C]``, thresholds, the LIF's attributes, its address lists ``chan``
    ``[B, H * W * C]`` (passed flat) and counts ``npos [B, H * W]``."""
    return (v, theta, np.int64(in_shift), np.int64(mem_lo), np.int64(mem_hi), bool(half_up), v_new,
            chan.reshape(-1), npos)


@numba.njit(inline="always", **_JIT)
def emit_lif(tacc, tlo, b, oy, ox, o0, o1, shift, rnd, bias, lo, hi, lif, flag, lcnt):  # pragma: no cover
    """Outputs ``o`` in ``[o0, o1)`` of position ``(oy, ox)``: ``x = sat(bias + (tacc + tlo + rnd) >> shift)``
    (as :func:`~snn.backends.chip.kernels._emit_range` with ``add`` off; signed weight exponents),
    then the LIF of ``lif`` on ``x``; the spiking channels are appended to the position's address list (started afresh
    where ``o0 == 0``: blocks of outputs come in increasing order, each a multiple of ``LANES``
    from the start).  ``flag``: ``C + LANES`` uint8 scratch.  Returns the conv's saturations."""
    v, theta, in_shift, mlo, mhi, half_up, v_new, chan, npos = lif
    _, H, W, C = v.shape
    n_sat = 0
    m_sat = 0
    uo = np.uint64(o0)
    for k in range(np.uint64(o1 - o0)):
        o = uo + k
        x = weigh(np.int64(tacc[o]) + np.int64(tlo[o]) + rnd[o], shift[0, o], shift[1, o], tacc[o]) + bias[o]
        n_sat += (x < lo) + (x > hi)
        x = min(max(x, lo), hi)
        h = _shr(np.int64(v[b, oy, ox, o]) + (x << in_shift), 1, half_up)
        m_sat += (h < mlo) + (h > mhi)
        h = min(max(h, mlo), mhi)
        s = h >= theta[o]
        v_new[b, oy, ox, o] = 0 if s else h
        flag[o] = s
    p = oy * W + ox
    base = (b * H * W + p) * C
    k0 = 0 if o0 == 0 else np.int64(npos[b, p])
    k = k0
    for c0 in range(o0, o1, LANES):  # 32 channels per compress-store
        k += compress32(chan, base + k, flag, c0, min(LANES, o1 - c0))
    npos[b, p] = k
    lcnt[0] += m_sat
    lcnt[1] += k - k0
    return n_sat
