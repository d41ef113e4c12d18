"""512-bit vectors for the executor's kernels, and only for them.

LLVM keeps to 256-bit vectors on CPUs that prefer them (the Intel server parts with AVX-512: a
tuning flag, ``prefer-256-bit``), although their 512-bit integer adds are what the executor's row
accumulation wants.  Numba sets CPU features per process (``NUMBA_CPU_FEATURES``), which would
change every numba kernel in the process; instead, :func:`wide_vectors` - an intrinsic that emits
no code - marks the LLVM function it is called in with ``"prefer-vector-width"="512"`` (what
clang's ``-mprefer-vector-width=512`` does), so the vectoriser may use 512-bit lanes in that
function.  Every kernel of :mod:`~snn.backends.chip.kernels` calls it first (and so does the body
of each ``prange``, which numba outlines into a function of its own); nothing else is affected, and
a CPU without AVX-512 keeps the widths it has.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

#: the LLVM function attribute set on the kernels (as clang writes it)
PREFER_WIDTH = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """Marks the calling jitted function's LLVM function with :data:`PREFER_WIDTH`; no code."""

    def codegen(context, builder, signature, args):
        # llvmlite's attribute set accepts only its list of keyword attributes; a string attribute
        # is written out verbatim, so it goes in through ``set.add``
        set.add(builder.function.attributes, PREFER_WIDTH)
        return context.get_dummy_value()

    return types.void(), codegen
