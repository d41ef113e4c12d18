"""Signed weight exponents: a conv's integer sum, per output channel, shifted right or left.

A conv op's ``shift[o]`` is the weight exponent ``k`` of output channel ``o`` (as Loihi's, signed):
``k >= 0`` shifts the sum right by ``k`` (rounding per profile: ``rnd = 2^(k-1)`` is added first for
``half_up``); ``k < 0`` - a writer whose weight scale is coarser than the buffer it writes - shifts
it left by ``-k``, exactly.  Bias, residual add and saturation to the accumulator follow as for any
``k``.  Exponents are limited to ``[-MAX_EXPONENT, MAX_EXPONENT]`` (:meth:`Program.validate`).

The executor's kernels take the exponents as a pair of non-negative shifts (:func:`split`: row 0
right, row 1 left; one of them 0 per channel) and apply them with :func:`weigh`: ``(a >> r) << l``,
no branch (measured against main's right shift alone on programs without negative exponents:
within about 1-2% of the spike convs' time, ``benchmarks/chip_profile.py`` workloads; a form kept
for unsigned exponents, chosen by a numba overload, measured no faster: the overloads numba would
inline lose values in the fused LIF's finish, and those it does not inline cost a call per output).  A left shift cannot overflow int64 where the sum came from a 32-bit (or narrower)
accumulator (``|a| < 2^32``, ``l <= 30``); from a 64-bit one the shifted value is held to
``+-2^62`` first - beyond the accumulator either way, so it saturates just as the exact value does.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from numba import types
from numba.extending import overload

#: the largest weight exponent, either sign (a sum shifted left by 30 from a 32-bit accumulator still
#: fits int64, with a bias and a residual added)
MAX_EXPONENT = 30


def split(k: np.ndarray, half_up: bool) -> Tuple[np.ndarray, np.ndarray]:
    """``(shift [2, Co], rnd [Co])`` int64 for signed exponents ``k [Co]``: right shifts ``max(k, 0)``,
    left shifts ``max(-k, 0)``, and the half-up rounding term of the right shifts (0 for ``floor``)."""
    k = np.asarray(k, np.int64).reshape(-1)
    right, left = np.maximum(k, 0), np.maximum(-k, 0)
    rnd = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0) if half_up else np.zeros_like(k)
    return np.ascontiguousarray(np.stack([right, left])), rnd.astype(np.int64)


def scaled_bound(bound: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A bound on ``|sum >> k|`` (any rounding) per channel from a bound on ``|sum|``: ``bound >> k``
    (+1: rounding half up) for ``k >= 0``, ``bound << -k`` for ``k < 0``."""
    bound = np.asarray(bound, np.int64)
    k = np.asarray(k, np.int64)
    return np.where(k >= 0, (bound >> np.maximum(k, 0)) + 1, bound << np.maximum(-k, 0))


def weigh(a, right, left, wide):
    """``(a >> right) << left`` (int64 ``a``: the sum plus its rounding term).  ``wide``: an element of
    the accumulator the sum came from - its type alone matters (in jitted code a compile-time choice,
    the overload below): from a 64-bit one the value is held to ``+-2^62`` before the left shift (see
    the module docstring).  Called from Python (tests, tools) it computes the same in Python
    integers and returns an ``np.int64``."""
    v = int(a) >> int(right)
    if np.asarray(wide).dtype.itemsize >= 8:
        lim = 1 << (62 - int(left))
        v = min(max(v, -lim), lim)
    return np.int64(v << int(left))


@overload(weigh)
def _weigh_impl(a, right, left, wide):
    if isinstance(wide, types.Integer) and wide.bitwidth >= 64:
        def held(a, right, left, wide):
            lim = np.int64(1) << (62 - left)
            return min(max(a >> right, -lim), lim) << left
        return held

    def plain(a, right, left, wide):
        return (a >> right) << left
    return plain
